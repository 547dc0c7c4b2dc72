"""Train the lecture's SimpleConvNet end to end (the lecture's main, with options).

    python examples/mnist_cnn.py                       # 20 epochs, Adam lr 0.001, batch 100
    python examples/mnist_cnn.py --epochs 1 --init he  # a quick run
    python examples/mnist_cnn.py --limit 2000          # a subset, for a smoke test

Writes metrics.json, learning_curve.png, params.npz and the computation graph
(graph.svg, or graph.dot without Graphviz's `dot`) into --out (default: a new folder under runs/).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tinygrad_cnn import manual_seed  # noqa: E402
from tinygrad_cnn._io import atomic_write  # noqa: E402
from tinygrad_cnn.data import DatasetNotFoundError, load_fashion_mnist, load_mnist  # noqa: E402
from tinygrad_cnn.models import SimpleConvNet  # noqa: E402
from tinygrad_cnn.trainer import Trainer  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Train SimpleConvNet on MNIST or Fashion-MNIST.")
    p.add_argument("--dataset", choices=["auto", "mnist", "fashion-mnist"], default="auto",
                   help="auto: MNIST when on disk or downloadable, else Fashion-MNIST (default: auto)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--optimizer", default="adam", help="sgd, momentum, nesterov, adagrad, rmsprop, adam")
    p.add_argument("--init", default="0.01", help="weight_init_std: a number, 'he' or 'xavier' (default 0.01)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N training and test samples")
    p.add_argument("--eval-samples", type=int, default=1000, help="samples for the per-epoch accuracies")
    p.add_argument("--data-dir", default=None, help="folder with the four IDX files")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output folder (default: runs/<dataset>-<time>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def load_data(dataset: str, data_dir):
    """Returns (name, ((x_train, t_train), (x_test, t_test))) with images (N, 1, 28, 28)."""
    if dataset in ("auto", "mnist"):
        try:
            return "mnist", load_mnist(flatten=False, root=data_dir)
        except DatasetNotFoundError:
            if dataset == "mnist":
                raise
            print("notice: MNIST is not on disk and could not be downloaded; training on Fashion-MNIST "
                  "(Debian package dataset-fashion-mnist) instead", flush=True)
    return "fashion-mnist", load_fashion_mnist(flatten=False, root=data_dir, download=True)


def plot_curves(path: str, trainer: Trainer, title: str) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("notice: matplotlib is not installed; no learning-curve PNG", flush=True)
        return False
    epochs = range(1, len(trainer.test_acc_list) + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, trainer.epoch_loss_list, marker="o")
    ax1.set(xlabel="epoch", ylabel="mean training loss", title="loss")
    ax2.plot(epochs, trainer.train_acc_list, marker="o", label="train")
    ax2.plot(epochs, trainer.test_acc_list, marker="s", label="test")
    ax2.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    ax2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write(path, buf.getvalue())
    return True


def draw_graph(out_dir: str, network, x, t) -> str | None:
    """Draw the training graph of one small batch: graph.svg, or graph.dot without `dot`."""
    try:
        from tinygrad_cnn.viz import save_graph
    except ImportError:  # viz needs the graphviz Python package
        return None
    return save_graph(network.loss(x[:2], t[:2]), os.path.join(out_dir, "graph"), params=network)


def main(argv=None) -> dict:
    args = parse_args(argv)
    manual_seed(args.seed)
    name, ((x_train, t_train), (x_test, t_test)) = load_data(args.dataset, args.data_dir)
    if args.limit:
        x_train, t_train = x_train[:args.limit], t_train[:args.limit]
        x_test, t_test = x_test[:args.limit], t_test[:args.limit]
    out = args.out or os.path.join("runs", f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    os.makedirs(out, exist_ok=True)

    init = args.init if args.init.isalpha() else float(args.init)
    network = SimpleConvNet(input_dim=(1, 28, 28),
                            conv_param={"filter_num": 30, "filter_size": 5, "padding": 1, "bias": False},
                            hidden_size=100, output_size=10, weight_init_std=init)
    trainer = Trainer(network, x_train, t_train, x_test, t_test, epochs=args.epochs,
                      mini_batch_size=args.batch_size, optimizer=args.optimizer,
                      optimizer_param={"lr": args.lr}, evaluate_sample_num_per_epoch=args.eval_samples,
                      verbose=not args.quiet, seed=args.seed)
    print(f"{name}: {len(x_train)} training / {len(x_test)} test images, {args.epochs} epochs, "
          f"{args.optimizer} lr {args.lr}, batch {args.batch_size}, init {args.init} -> {out}", flush=True)
    start = time.perf_counter()
    final = trainer.train()
    metrics = {
        "dataset": name, "config": vars(args), "final_test_accuracy": final,
        "train_seconds": time.perf_counter() - start,
        "epochs": [{"epoch": i + 1, "loss": trainer.epoch_loss_list[i], "train_acc": trainer.train_acc_list[i],
                    "test_acc": trainer.test_acc_list[i], "seconds": trainer.epoch_seconds[i]}
                   for i in range(len(trainer.test_acc_list))],
    }
    network.save_params(os.path.join(out, "params.npz"))
    atomic_write(os.path.join(out, "metrics.json"), json.dumps(metrics, indent=2).encode())
    plot_curves(os.path.join(out, "learning_curve.png"), trainer, f"SimpleConvNet on {name}")
    graph = draw_graph(out, network, x_train, t_train)
    print(f"final test accuracy on {len(x_test)} {name} images: {final:.4f}", flush=True)
    extra = f", {os.path.basename(graph)}" if graph else ""
    print(f"wrote {out}/metrics.json, learning_curve.png, params.npz{extra}")
    return metrics


if __name__ == "__main__":
    main()
