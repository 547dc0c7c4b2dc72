"""SimpleConvNet's graph on a small batch, and the command line that draws it.

    python -m tinygrad_cnn.viz --out graph.svg                 # the training graph
    python -m tinygrad_cnn.viz --expand --out expanded.svg     # every composite op expanded
    python -m tinygrad_cnn.viz --backward --expand conv2d --out backward.svg
"""
from __future__ import annotations

import argparse
import os

import numpy as np

from ..tensor import Tensor
from .graph import draw_graph, write_graph


def simpleconvnet_graph(batch=2, expand=False, backward=False, show_grads=True, **kwargs):
    """(graph, root, net): SimpleConvNet's training graph on `batch` random images, after
    backward (so gradients show). With `backward`, the images require grad and the loss's
    backward runs with create_graph=True: the graph drawn is then `images.grad`'s, the
    backward pass. `kwargs` go to draw_graph."""
    from ..models import SimpleConvNet
    from ..rng import manual_seed
    manual_seed(0)
    net = SimpleConvNet()
    rng = np.random.default_rng(0)
    x = Tensor(rng.random((batch, 1, 28, 28)).astype(np.float32), requires_grad=backward, name="images")
    loss = net.loss(x, rng.integers(0, 10, batch))
    loss.name = "loss"
    loss.backward(retain_graph=True, create_graph=backward)
    root = x.grad if backward else loss
    if backward:
        root.name = "images.grad"
    return draw_graph(root, expand=expand, show_grads=show_grads, **kwargs), root, net


def main(argv=None) -> str:
    """Command line: draw SimpleConvNet's training graph (or its backward pass) to --out."""
    p = argparse.ArgumentParser(prog="python -m tinygrad_cnn.viz", description="Draw SimpleConvNet's graph.")
    p.add_argument("--out", default="graph.svg", help="output file: .svg, .png, .pdf or .dot (default graph.svg)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--expand", nargs="?", const="all", default=None, metavar="OPS",
                   help="draw composite ops as the ops they ran: all of them, or those named (conv2d,cross_entropy)")
    p.add_argument("--backward", action="store_true",
                   help="draw the images' gradient, computed with create_graph=True: the backward pass")
    args = p.parse_args(argv)
    if args.batch < 1:
        p.error(f"--batch must be at least 1, got {args.batch}")
    stem, ext = os.path.splitext(args.out)
    expand = args.expand == "all" or (set(args.expand.split(",")) if args.expand else False)
    try:
        dot, _, _ = simpleconvnet_graph(args.batch, expand=expand, backward=args.backward)
    except ValueError as e:  # an --expand name that is not an op of the graph
        p.error(str(e))
    path = write_graph(dot, stem, format=ext.lstrip(".") or "svg")
    print(f"wrote {path}")
    return path
