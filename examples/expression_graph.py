"""A micrograd-style expression graph: L = (a * b + c) * f, drawn after backward with every
value and gradient.

    python examples/expression_graph.py docs/expression_graph.svg
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tinygrad_cnn import Tensor  # noqa: E402
from tinygrad_cnn.viz import save_graph  # noqa: E402


def main(out="expression_graph.svg"):
    a = Tensor(2.0, requires_grad=True, name="a")
    b = Tensor(-3.0, requires_grad=True, name="b")
    c = Tensor(10.0, requires_grad=True, name="c")
    f = Tensor(-2.0, requires_grad=True, name="f")
    e = a * b
    e.name = "e"
    d = e + c
    d.name = "d"
    L = d * f
    L.name = "L"
    for t in (e, d, L):  # keep the gradients of the intermediates too, as micrograd shows them
        t.retain_grad()
    L.backward()
    stem, ext = os.path.splitext(out)
    path = save_graph(L, stem, format=ext.lstrip(".") or "svg", rankdir="LR")
    print(f"wrote {path}; dL/da = {a.grad.item()}, dL/db = {b.grad.item()}")


if __name__ == "__main__":
    main(*sys.argv[1:])
