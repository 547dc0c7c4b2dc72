"""Graph drawing: SimpleConvNet's graph, names, counts, grouping, collapsing, escaping, rendering."""
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor, nn
from tinygrad_cnn.viz import draw_graph, save_graph, simpleconvnet_graph

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")


def op_labels(dot):
    """Op node labels in id order (ids are numbered in data-flow order)."""
    ops = re.findall(r'^\s*op(\d+) \[label="?([^"\\\s]+)', dot.source, re.M)
    return [name for _, name in sorted(ops, key=lambda x: int(x[0]))]


def test_simpleconvnet_graph_in_data_flow_order_with_parameter_names():
    dot, loss, net = simpleconvnet_graph()
    assert op_labels(dot) == ["conv2d", "relu", "max_pool2d", "reshape", "matmul", "add", "relu", "matmul", "add",
                              "cross_entropy"]
    for name, shape in [("W1", "(30, 1, 5, 5)"), ("b1", "(30,)"), ("W2", "(4320, 100)"), ("b2", "(100,)"),
                        ("W3", "(100, 10)"), ("b3", "(10,)")]:
        assert f'label="{name}\\n{shape} float32' in dot.source
    assert "stride=1" in dot.source and "reduction=mean" in dot.source and "kernel_size=2" in dot.source
    assert "|grad| = " in dot.source  # show_grads after backward


def test_node_and_edge_counts_match_the_graph():
    x = Tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True, name="x")
    w = Tensor(np.ones((3, 4), dtype=np.float32), requires_grad=True, name="w")
    y = ((x @ w).relu() * 2.0).sum()
    dot = draw_graph(y)
    # ops: matmul, relu, mul, sum; tensors: x, w, 3 intermediates, y (the 2.0 constant is part of mul)
    assert (dot.node_count, dot.edge_count) == (4 + 6, 9)
    nodes = re.findall(r"^\s*(?:op|t)\d+ \[", dot.source, re.M)
    edges = re.findall(r"->", dot.source)
    assert len(nodes) == dot.node_count and len(edges) == dot.edge_count
    assert op_labels(dot) == ["matmul", "relu", "mul", "sum"]


def test_module_names_and_grouping():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    loss = F.cross_entropy(model(np.ones((2, 1, 6, 6), dtype=np.float32)), np.array([0, 1]))
    dot = draw_graph(loss, params=model)
    for name in ("0.weight", "0.bias", "3.weight", "3.bias"):
        assert f'label="{name}\\n' in dot.source
    assert dot.source.count("subgraph cluster_") == 1 + 4 + 1  # Sequential, its 4 layers, the legend
    assert 'label="0: Conv2d"' in dot.source and 'label="3: Linear"' in dot.source
    flat = draw_graph(loss, params=model, group_modules=False)
    assert flat.source.count("subgraph cluster_") == 1  # only the legend


def test_large_graph_collapses_into_modules_and_says_so():
    model = nn.Sequential(*[nn.Linear(4, 4) for _ in range(30)])
    out = model(np.ones((2, 4), dtype=np.float32)).sum()
    full = draw_graph(out, params=model, max_nodes=1000)
    assert not full.collapsed and full.node_count > 100
    dot = draw_graph(out, params=model, max_nodes=50)
    assert dot.collapsed and not dot.truncated
    assert "collapsed: " in dot.source and dot.node_count == 31  # 30 layers + the final sum
    assert 'label="29: Linear\\n' in dot.source


def test_graph_of_10000_nodes_without_recursion():
    x = Tensor(np.ones(3), requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    start = time.perf_counter()
    dot = draw_graph(y.sum(), max_nodes=500)
    assert dot.collapsed and dot.truncated and dot.node_count <= 500
    assert "not drawn" in dot.source
    assert time.perf_counter() - start < 60


def test_labels_are_escaped():
    x = Tensor(np.ones(2), requires_grad=True, name='say "hi" <b>\nnext\\line')
    dot = draw_graph((x * x).sum())
    assert '\\"hi\\"' in dot.source and "<b>" in dot.source and "next\\\\line" in dot.source
    if shutil.which("dot"):
        svg = dot.pipe(format="svg").decode()
        assert "&lt;b&gt;" in svg and "next\\line" in svg


def test_bad_arguments():
    with pytest.raises(TypeError):
        draw_graph(np.ones(2))
    with pytest.raises(ValueError, match="rankdir"):
        draw_graph(Tensor([1.0], requires_grad=True).sum(), rankdir="XY")


@needs_dot
def test_render_svg_and_cli(tmp_path):
    dot, loss, net = simpleconvnet_graph()
    svg = dot.pipe(format="svg").decode()
    assert svg.lstrip().startswith("<?xml") and "conv2d" in svg and "W2" in svg
    path = save_graph(loss, str(tmp_path / "g"), params=net)
    assert path.endswith("g.svg") and "<svg" in open(path).read()
    out = tmp_path / "cli.svg"
    subprocess.run([sys.executable, "-m", "tinygrad_cnn.viz", "--out", str(out)], check=True, timeout=120)
    assert "max_pool2d" in out.read_text()


def test_without_dot_writes_dot_text_and_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    import graphviz
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` on PATH
    x = Tensor(np.ones(2), requires_grad=True)
    path = save_graph((x * x).sum(), str(tmp_path / "g"))
    assert path.endswith("g.dot") and "digraph" in open(path).read()
    assert "apt-get install graphviz" in capsys.readouterr().err
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        draw_graph((x * x).sum()).pipe(format="svg")
    assert isinstance(draw_graph((x * x).sum()), graphviz.Digraph)
