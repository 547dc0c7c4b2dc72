"""Train the lecture's SimpleConvNet end to end (the lecture's main, with options).

    python examples/mnist_cnn.py                       # 20 epochs, Adam lr 0.001, batch 100
    python examples/mnist_cnn.py --epochs 1 --init he  # a quick run
    python examples/mnist_cnn.py --limit 2000          # a subset, for a smoke test
    python examples/mnist_cnn.py --data-dir DIR        # the four IDX files in DIR, nothing else

Writes metrics.json, learning_curve.png, params.npz, the computation graph (graph.svg, or
graph.dot without Graphviz's `dot`) and pictures of conv1 (filters_before.png and
filters_after.png: its 30 filters before and after training; feature_maps.png: the first
test image through conv1 and ReLU) into --out (default: a new folder under runs/).
Bad arguments are usage errors (exit 2) before any folder is made. On Ctrl-C (exit 130) or
divergence (exit 1) the folder still gets metrics.json ("status": "interrupted" or
"diverged", the epochs done), params.npz (the last good weights), the learning curve and
the pictures of conv1 so far.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import signal
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tinygrad_cnn.functional as F  # noqa: E402
from tinygrad_cnn import manual_seed  # noqa: E402
from tinygrad_cnn._io import atomic_write  # noqa: E402
from tinygrad_cnn.data import (ChecksumMismatchError, DatasetNotFoundError, load_fashion_mnist,  # noqa: E402
                               load_mnist)
from tinygrad_cnn.models import SimpleConvNet  # noqa: E402
from tinygrad_cnn.trainer import Trainer, TrainingDiverged  # noqa: E402

OPTIMIZERS = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"]
LOADERS = {"mnist": load_mnist, "fashion-mnist": load_fashion_mnist}


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def _init(text: str):
    if text.lower() in ("he", "relu", "xavier", "sigmoid"):
        return text.lower()
    try:
        return _positive_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a positive number, 'he' or 'xavier', got {text!r}") from None


def _existing_folder(text: str) -> str:
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"no such folder: {text}")
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"not a folder: {text}")
    return text


def _output_folder(text: str) -> str:
    """A folder that exists or can be made: nothing in the way, the nearest existing parent writable."""
    path = os.path.abspath(text)
    if os.path.exists(path) and not os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"{text} exists and is not a folder")
    parent = path
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise argparse.ArgumentTypeError(f"cannot make {text}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write to {parent}")
    return text


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (exit status 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parse_args(argv=None):
    p = _Parser(description="Train SimpleConvNet on MNIST or Fashion-MNIST.")
    p.add_argument("--dataset", choices=["auto", "mnist", "fashion-mnist"], default="auto",
                   help="auto: MNIST when on disk or downloadable, else Fashion-MNIST; with --data-dir, "
                        "whichever the files there are (default: auto)")
    p.add_argument("--epochs", type=_int_at_least(1), default=20)
    p.add_argument("--batch-size", type=_int_at_least(1), default=100)
    p.add_argument("--lr", type=_positive_float, default=0.001)
    p.add_argument("--optimizer", type=str.lower, choices=OPTIMIZERS, default="adam")
    p.add_argument("--init", type=_init, default=0.01,
                   help="weight_init_std: a positive number, 'he' or 'xavier' (default 0.01)")
    p.add_argument("--limit", type=_int_at_least(1), default=None,
                   help="use only the first N training and test samples")
    p.add_argument("--eval-samples", type=_int_at_least(1), default=1000,
                   help="samples for the per-epoch accuracies")
    p.add_argument("--data-dir", type=_existing_folder, default=None,
                   help="an existing folder with the four IDX files; only it is searched, and missing "
                        "files are downloaded into it")
    p.add_argument("--no-verify", action="store_true",
                   help="load IDX files that are not the canonical MNIST / Fashion-MNIST ones "
                        "(no SHA-256 check; the dataset is then called 'custom' unless --dataset names it)")
    p.add_argument("--seed", type=_int_at_least(0), default=0)
    p.add_argument("--out", type=_output_folder, default=None,
                   help="output folder (default: runs/<dataset>-<time>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def load_data(dataset: str, data_dir, verify: bool = True):
    """Returns (name, ((x_train, t_train), (x_test, t_test))) with images (N, 1, 28, 28).

    With `data_dir`, only that folder is used (no fallback to another data set); "auto"
    then takes MNIST, or Fashion-MNIST if the files there are Fashion-MNIST's."""
    if data_dir is not None:
        if dataset == "auto" and not verify:
            return "custom", load_mnist(flatten=False, root=data_dir, verify=False)
        names = ["mnist", "fashion-mnist"] if dataset == "auto" else [dataset]
        for name in names:
            try:
                return name, LOADERS[name](flatten=False, root=data_dir, verify=verify)
            except ChecksumMismatchError:
                if name == names[-1]:
                    raise
    if dataset in ("auto", "mnist"):
        try:
            return "mnist", load_mnist(flatten=False, verify=verify)
        except DatasetNotFoundError:
            if dataset == "mnist":
                raise
            print("notice: MNIST is not on disk and could not be downloaded; training on Fashion-MNIST "
                  "(Debian package dataset-fashion-mnist) instead", flush=True)
    return "fashion-mnist", load_fashion_mnist(flatten=False, verify=verify)


def plot_curves(path: str, trainer: Trainer, title: str) -> bool:
    """The learning curve so far: every step's loss (and each epoch's mean), accuracies per epoch."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("notice: matplotlib is not installed; no learning-curve PNG", flush=True)
        return False
    per_epoch = max(trainer.iter_per_epoch, 1)
    steps = [(i + 1) / per_epoch for i in range(len(trainer.train_loss_list))]
    epochs = range(1, len(trainer.test_acc_list) + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(steps, trainer.train_loss_list, lw=0.5, alpha=0.6, label="step")
    ax1.plot(epochs, trainer.epoch_loss_list, marker="o", label="epoch mean")
    ax1.set(xlabel="epoch", ylabel="training loss", title="loss", yscale="log")
    ax1.legend()
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


def draw_conv1(out_dir: str, network, when: str, image=None) -> list[str]:
    """filters_<when>.png: conv1's filters; with an image, feature_maps.png: the image through
    conv1 and ReLU. Returns the file names written ([] without matplotlib)."""
    try:
        import matplotlib  # noqa: F401
        from tinygrad_cnn.viz import plot_feature_maps, plot_filters, save_figure
    except ImportError:  # the learning curve's notice says so
        return []
    fig = plot_filters(network.W1, title=f"conv1's {len(network.W1)} filters {when} training")
    names = [os.path.basename(save_figure(fig, os.path.join(out_dir, f"filters_{when}.png")))]
    if image is not None:
        def conv1(x):
            return F.conv2d(x, network.W1, network.b1, stride=network.stride, padding=network.pad).relu()

        fig = plot_feature_maps(conv1, image, title="a test image through conv1 and ReLU")
        names.append(os.path.basename(save_figure(fig, os.path.join(out_dir, "feature_maps.png"))))
    return names


@contextlib.contextmanager
def sigint_deferred():
    """Ctrl-C is ignored inside the block (the main thread only), so a run folder is written whole."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def write_run(out: str, args, name: str, status: str, trainer: Trainer, network, final, seconds: float) -> dict:
    """metrics.json, params.npz and learning_curve.png in `out`; `status` is the run's."""
    metrics = {
        "status": status, "dataset": name, "config": vars(args),
        "epochs_done": len(trainer.test_acc_list), "iterations_done": trainer.current_iter,
        "final_test_accuracy": final, "train_seconds": seconds,
        "epochs": [{"epoch": i + 1, "loss": trainer.epoch_loss_list[i], "train_acc": trainer.train_acc_list[i],
                    "test_acc": trainer.test_acc_list[i], "seconds": trainer.epoch_seconds[i]}
                   for i in range(len(trainer.test_acc_list))],
    }
    os.makedirs(out, exist_ok=True)  # in case Ctrl-C came before run() made it
    network.save_params(os.path.join(out, "params.npz"))
    atomic_write(os.path.join(out, "metrics.json"), json.dumps(metrics, indent=2).encode())
    suffix = "" if status == "completed" else f" ({status} after {metrics['epochs_done']} epochs)"
    plot_curves(os.path.join(out, "learning_curve.png"), trainer, f"SimpleConvNet on {name}{suffix}")
    return metrics


def run(args) -> int:
    """Load, train, write the run folder; returns the exit status (0, 1 diverged, 130 Ctrl-C)."""
    manual_seed(args.seed)
    name, ((x_train, t_train), (x_test, t_test)) = load_data(args.dataset, args.data_dir, not args.no_verify)
    if args.limit is not None:
        x_train, t_train = x_train[:args.limit], t_train[:args.limit]
        x_test, t_test = x_test[:args.limit], t_test[:args.limit]
    network = SimpleConvNet(input_dim=(1, 28, 28),
                            conv_param={"filter_num": 30, "filter_size": 5, "padding": 1, "bias": False},
                            hidden_size=100, output_size=10, weight_init_std=args.init)
    trainer = Trainer(network, x_train, t_train, x_test, t_test, epochs=args.epochs,
                      mini_batch_size=args.batch_size, optimizer=args.optimizer,
                      optimizer_param={"lr": args.lr}, evaluate_sample_num_per_epoch=args.eval_samples,
                      verbose=not args.quiet, seed=args.seed)
    out = args.out or os.path.join("runs", f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    start, final, status, why, graph = time.perf_counter(), None, "completed", "", None
    try:
        os.makedirs(out, exist_ok=True)  # from here on, the folder gets its files whatever happens
        draw_conv1(out, network, "before")
        print(f"{name}: {len(x_train)} training / {len(x_test)} test images, {args.epochs} epochs, "
              f"{args.optimizer} lr {args.lr}, batch {args.batch_size}, init {args.init} -> {out}", flush=True)
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging run is reported once, below
            final = trainer.train()
    except KeyboardInterrupt:
        status = "interrupted"
    except TrainingDiverged as e:
        status, why = "diverged", f": {e}"
    with sigint_deferred():
        metrics = write_run(out, args, name, status, trainer, network, final, time.perf_counter() - start)
        pictures = draw_conv1(out, network, "after", x_test[0])
        if status == "completed":
            graph = draw_graph(out, network, x_train, t_train)
    if status != "completed":
        print(f"{status} after {metrics['epochs_done']} of {args.epochs} epochs{why}. Wrote {out}/metrics.json, "
              f"params.npz (the last good weights), learning_curve.png{''.join(', ' + p for p in pictures)}",
              file=sys.stderr, flush=True)
        return 130 if status == "interrupted" else 1
    print(f"final test accuracy on {len(x_test)} {name} images: {final:.4f}", flush=True)
    extra = "".join(f", {p}" for p in [*pictures, os.path.basename(graph) if graph else None] if p)
    print(f"wrote {out}/metrics.json, learning_curve.png, params.npz{extra}")
    return 0


def main(argv=None) -> int:
    """The command line: exit status 0, 1 (a data or training error, one line), 2 (usage), 130 (Ctrl-C)."""
    args = parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("interrupted before training started; nothing written", file=sys.stderr)
        return 130
    except ChecksumMismatchError as e:
        print(f"error: {e} (from the command line: --no-verify)", file=sys.stderr)
        return 1
    except (DatasetNotFoundError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
