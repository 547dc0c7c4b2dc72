"""Graph drawing (SimpleConvNet's graph, names without params, expanded composite ops, backward
graphs, values and gradients, counts, grouping, collapsing, escaping, rendering) and the
filter and feature-map pictures."""
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor, nn
from tinygrad_cnn.models import SimpleConvNet
from tinygrad_cnn.viz import draw_graph, plot_feature_maps, plot_filters, save_figure, save_graph, \
    simpleconvnet_graph
from tinygrad_cnn.viz.graph import STYLES

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
LABEL = r'label=("(?:[^"\\]|\\.)*"|[^\s\]]+)'


def _first_line(label):
    return label.strip('"').split("\\n")[0]


def op_nodes(dot):
    """{node id: (first label line, whole label)} of the op nodes, in id order (data-flow order)."""
    found = re.findall(r"^\s*(op\d+) \[" + LABEL, dot.source, re.M)
    return {k: (_first_line(v), v) for k, v in sorted(found, key=lambda x: int(x[0][2:]))}


def op_labels(dot):
    labels = [name for name, _ in op_nodes(dot).values()]
    assert tuple(labels) == dot.op_names
    return labels


def edges(dot):
    """[(tail, head, label)] of the drawn edges."""
    return [(a, b, lab.strip('"')) for a, b, lab in re.findall(r"^\s*(\w+) -> (\w+) \[" + LABEL, dot.source, re.M)]


def node_style(dot, node):
    return re.search(rf"^\s*{node} \[.*$", dot.source, re.M).group(0)


def test_simpleconvnet_graph_in_data_flow_order_with_names_recorded_at_forward():
    dot, loss, net = simpleconvnet_graph()  # no params=: names come from the module the ops ran in
    assert op_labels(dot) == ["conv2d", "relu", "max_pool2d", "reshape", "matmul", "add", "relu", "matmul", "add",
                              "cross_entropy"]
    for name, shape in [("W1", "(30, 1, 5, 5)"), ("b1", "(30,)"), ("W2", "(4320, 100)"), ("b2", "(100,)"),
                        ("W3", "(100, 10)"), ("b3", "(10,)")]:
        assert f'label="{name}\\n{shape} float32' in dot.source
    assert "stride=1" in dot.source and "reduction=mean" in dot.source and "kernel_size=2" in dot.source
    assert "|grad| = " in dot.source  # show_grads after backward
    assert re.search(r'label="loss\\n\(\) float32\\ndata = 2\.\d+', dot.source)  # a scalar shows its value
    assert (dot.node_count, dot.op_count, dot.tensor_count, dot.edge_count) == (18, 10, 8, 17)


def test_every_edge_carries_its_tensors_shape():
    x = Tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True, name="x")
    w = Tensor(np.ones((3, 4), dtype=np.float32), requires_grad=True, name="w")
    y = ((x @ w).relu() * 2.0).sum()
    dot = draw_graph(y)
    # ops: matmul, relu, mul, sum; tensors: x, w, y (intermediates are edges; the 2.0 constant is part of mul)
    assert (dot.node_count, dot.edge_count) == (4 + 3, 6)
    nodes = re.findall(r"^\s*(?:op|t)\d+ \[", dot.source, re.M)
    assert len(nodes) == dot.node_count and len(re.findall("->", dot.source)) == dot.edge_count
    assert op_labels(dot) == ["matmul", "relu", "mul", "sum"]
    assert sorted(lab for _, _, lab in edges(dot)) == ["()", "(2, 3)", "(2, 4)", "(2, 4)", "(2, 4)", "(3, 4)"]


def test_expanded_conv2d_shows_im2col_and_the_column_matrix():
    dot, loss, net = simpleconvnet_graph(expand=True)
    ops = op_nodes(dot)
    assert op_labels(dot) == ["reshape", "reshape", "im2col (unfold)", "cat", "matmul", "reshape", "relu",
                              "window max", "reshape", "matmul", "add", "relu", "matmul", "add", "log_softmax",
                              "nll_loss"]
    im2col = next(k for k, (name, _) in ops.items() if name == "im2col (unfold)")
    # (N, C*KH*KW + 1, OH*OW): the images' columns, one more row of ones for the bias (b1 rides in W's last column)
    cols = F.unfold(Tensor(np.zeros((2, 1, 28, 28), np.float32)), 5).shape
    assert cols == (2, 25, 576)
    (head, label), = [(b, lab) for a, b, lab in edges(dot) if a == im2col]
    assert ops[head][0] == "matmul" and label == "(2, 26, 576)"
    assert "+ a row of ones (for the bias)" in ops[im2col][1] and "kernel_size=5" in ops[im2col][1]
    assert "dashed" in node_style(dot, im2col)  # not recorded: the images need no gradient
    for cluster in ("conv2d", "max_pool2d", "cross_entropy"):
        assert re.search(rf'subgraph cluster_\d+ {{\s*[^\n]*label="{cluster}\\n', dot.source), cluster
    assert (dot.node_count, dot.op_count, dot.edge_count) == (24, 16, 23)


def test_expand_a_set_of_ops_and_refuse_unknown_names():
    dot, *_ = simpleconvnet_graph(expand={"cross_entropy"})
    assert op_labels(dot)[0] == "conv2d" and op_labels(dot)[-2:] == ["log_softmax", "nll_loss"]
    assert op_labels(simpleconvnet_graph(expand="conv2d")[0])[2] == "im2col (unfold)"
    _, loss, _ = simpleconvnet_graph()
    with pytest.raises(ValueError, match=r"\['conv'\] are not ops of this graph; it can expand .*'conv2d'"):
        draw_graph(loss, expand={"conv"})
    with pytest.raises(TypeError, match="expand must be True, False or a set of op names"):
        draw_graph(loss, expand=3)


def test_expanded_conv2d_of_an_input_that_needs_grad_records_unfold():
    x = Tensor(np.ones((1, 2, 5, 5), np.float32), requires_grad=True, name="x")
    w = Tensor(np.ones((3, 2, 3, 3), np.float32), requires_grad=True, name="w")
    dot = draw_graph(F.conv2d(x, w, stride=2).sum(), expand=True)
    assert op_labels(dot) == ["im2col (unfold)", "reshape", "matmul", "reshape", "sum"]
    im2col = next(k for k, (name, _) in op_nodes(dot).items() if name == "im2col (unfold)")
    assert "dashed" not in node_style(dot, im2col)
    assert ("(1, 18, 4)" in [lab for a, _, lab in edges(dot) if a == im2col]) and "stride=2" in dot.source


def test_an_unrecorded_op_before_a_composite_op_is_drawn_where_it_ran():
    images = Tensor(np.ones((1, 1, 8, 8), np.float32))
    w = Tensor(np.ones((2, 1, 3, 3), np.float32), requires_grad=True)
    loss = F.conv2d(F.max_pool2d(images, 2), w).sum()
    dot = draw_graph(loss)
    assert op_labels(dot) == ["max_pool2d", "conv2d", "sum"]
    assert "dashed" in node_style(dot, "op0") and "dashed" not in node_style(dot, "op1")


def test_names_without_params_sequential_and_custom_module():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    loss = F.cross_entropy(model(np.ones((2, 1, 6, 6), dtype=np.float32)), np.array([0, 1]))
    dot = draw_graph(loss)
    for name in ("0.weight", "0.bias", "3.weight", "3.bias"):
        assert f'label="{name}\\n' in dot.source
    assert dot.source.count("subgraph cluster_") == 1 + 4 + 1  # Sequential, its 4 layers, the legend
    assert 'label="0: Conv2d"' in dot.source and 'label="3: Linear"' in dot.source

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 2, 3)
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 3))

        def forward(self, x):
            return self.head(F.relu(self.conv1(x)))

    net = Net()
    dot = draw_graph(net(np.ones((2, 1, 6, 6), dtype=np.float32)).sum())
    for name in ("conv1.weight", "conv1.bias", "head.1.weight", "head.1.bias"):
        assert f'label="{name}\\n' in dot.source
    assert 'label="conv1: Conv2d"' in dot.source and 'label="head: Sequential"' in dot.source
    net.conv1.weight.name = "kernel"  # Tensor.name comes before the recorded path; params= before both
    assert 'label="kernel\\n' in draw_graph(net(np.ones((1, 1, 6, 6), np.float32)).sum()).source
    given = draw_graph(net(np.ones((1, 1, 6, 6), np.float32)).sum(), params={"K": net.conv1.weight})
    assert 'label="K\\n' in given.source and 'label="conv1.bias\\n' in given.source
    flat = draw_graph(loss, group_modules=False)
    assert flat.source.count("subgraph cluster_") == 1  # only the legend


def test_nested_composite_ops_are_recorded():
    logits = Tensor(np.zeros((2, 3), np.float32), requires_grad=True)
    loss = F.cross_entropy(logits, np.array([0, 2]))
    assert loss.grad_fn.scope.name == "cross_entropy" and [s.name for s in loss.grad_fn.nested_scopes] == ["nll_loss"]
    assert logits.exp().grad_fn.nested_scopes == ()


def test_backward_graph_labels_each_op_with_the_forward_op_it_differentiates():
    x = Tensor(np.random.default_rng(0).random((1, 1, 5, 5)).astype(np.float32), requires_grad=True, name="x")
    w = Tensor(np.ones((2, 1, 3, 3), np.float32), requires_grad=True, name="w")
    F.conv2d(x, w, padding=1).relu().sum().backward(create_graph=True)
    collapsed = draw_graph(x.grad)  # the backward pass, one node per forward op, and the forward ops it reads
    assert op_labels(collapsed) == ["sum backward", "relu backward: mul", "conv2d backward"]
    backward_ops = [k for k, (name, _) in op_nodes(collapsed).items() if "backward" in name]
    assert all(f'fillcolor="{STYLES["backward"]["fillcolor"]}"' in node_style(collapsed, k) for k in backward_ops)
    assert 'label="constant\\n() float32\\ndata = 1"' in collapsed.source  # the seed, dL/dL = 1
    expanded = draw_graph(x.grad, expand={"conv2d"})
    labels = op_labels(expanded)
    assert "conv2d backward: col2im (fold)" in labels and "conv2d backward: matmul" in labels
    assert labels.index("conv2d backward: col2im (fold)") > labels.index("relu backward: mul")
    assert re.search(r'label="conv2d backward"[^\]]*color="#c92a2a"', expanded.source)  # the backward cluster
    assert 'label="w\\n(2, 1, 3, 3) float32' in expanded.source  # x.grad reads w, not x


def test_small_tensors_show_values_and_gradients_as_micrograd():
    a = Tensor(2.0, requires_grad=True, name="a")
    b = Tensor(-3.0, requires_grad=True, name="b")
    v = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True, name="v")
    big = Tensor(np.ones(5, np.float32), requires_grad=True, name="big")
    e = a * b
    L = e + (v * v).sum() + big.sum()
    before = draw_graph(L)
    assert 'label="a\\n() float32\\ndata = 2"' in before.source and "grad =" not in before.source
    assert "data = [[1, 2], [3, 4]]" in before.source and 'label="big\\n(5,) float32"' in before.source
    assert 'label="() float32\\ndata = -6"' in before.source  # e: small, so drawn with its value
    L.backward()  # frees the graph: it is drawn from what the nodes kept
    after = draw_graph(L)
    assert 'label="a\\n() float32\\ndata = 2\\ngrad = -3"' in after.source
    assert "data = [[1, 2], [3, 4]]\\ngrad = [[2, 4], [6, 8]]" in after.source
    assert 'label="big\\n(5,) float32"' in after.source  # a larger gradient only with show_grads=True
    assert 'big\\n(5,) float32\\n|grad| = 2.24' in draw_graph(L, show_grads=True).source
    assert "grad =" not in draw_graph(L, show_grads=False).source


def test_a_freed_graph_still_draws_expanded_with_names():
    net = SimpleConvNet()
    loss = net.loss(np.ones((2, 1, 28, 28), np.float32), np.array([1, 2]))
    loss.backward()
    dot = draw_graph(loss, expand=True)
    assert "im2col (unfold)" in op_labels(dot) and 'label="W1\\n' in dot.source
    assert "(2, 26, 576)" in [lab for _, _, lab in edges(dot)]


OPS = {  # each keeps the shape (2, 1, 3, 2)
    "relu": lambda h, w: h.relu(),
    "tanh": lambda h, w: h.tanh(),
    "mul": lambda h, w: h * h,
    "add_w": lambda h, w: h + w.sum(),
    "linear": lambda h, w: F.linear(h, w.reshape(-1)[:4].reshape(2, 2)),
    "conv2d": lambda h, w: F.conv2d(h, w, padding=1),
    "max_pool2d": lambda h, w: F.max_pool2d(h, 2, stride=1, padding=1)[:, :, :3, :2],
    "scale": lambda h, w: h * 0.5,
}


@given(names=st.lists(st.sampled_from(sorted(OPS)), min_size=1, max_size=6), needs_grad=st.booleans(),
       expand=st.booleans(), after_backward=st.booleans())
def test_random_graphs_draw_consistently(names, needs_grad, expand, after_backward):
    """Counts match the DOT text, every edge carries a shape, and every edge goes forward in op order."""
    x = Tensor(np.linspace(-1, 1, 6 * 2).reshape(2, 1, 3, 2).astype(np.float32), requires_grad=needs_grad)
    w = Tensor(np.linspace(-0.5, 0.5, 9).reshape(1, 1, 3, 3).astype(np.float32), requires_grad=True, name="w")
    h = x
    for name in names:
        h = OPS[name](h, w)
    loss = F.cross_entropy(h.reshape(2, -1) * w.sum(), np.array([0, 1]))  # w: something always needs grad
    if after_backward:
        loss.backward()
    dot = draw_graph(loss, expand=expand)
    assert len(re.findall(r"^\s*(?:op|t)\d+ \[", dot.source, re.M)) == dot.node_count
    drawn = edges(dot)
    assert len(drawn) == dot.edge_count == dot.source.count("->")
    assert all(re.fullmatch(r"\((\d+(, \d+)*,?)?\)", label) for _, _, label in drawn)
    producer_of = {b: a for a, b, _ in drawn if a.startswith("op") and b.startswith("t")}
    for a, b, _ in drawn:  # op nodes are numbered in data-flow order
        a = producer_of.get(a, a)
        if a.startswith("op") and b.startswith("op"):
            assert int(a[2:]) < int(b[2:])
    assert len(op_labels(dot)) == dot.op_count and op_labels(dot)[-1] == ("nll_loss" if expand else "cross_entropy")
    assert 'label="w\\n(1, 1, 3, 3) float32' in dot.source


def test_large_graph_collapses_into_modules_and_says_so():
    model = nn.Sequential(*[nn.Linear(4, 4) for _ in range(30)])
    out = model(np.ones((2, 4), dtype=np.float32)).sum()
    full = draw_graph(out, params=model, max_nodes=1000)
    assert not full.collapsed and full.node_count == 30 * 3 + 3  # linear, weight, bias; sum, input, output
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
    path = save_graph(loss, str(tmp_path / "g"), expand=True)
    assert path.endswith("g.svg") and "im2col (unfold)" in open(path).read()
    out = tmp_path / "cli.svg"
    subprocess.run([sys.executable, "-m", "tinygrad_cnn.viz", "--backward", "--expand", "conv2d", "--out", str(out)],
                   check=True, timeout=120)
    assert "conv2d backward: col2im (fold)" in out.read_text()


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


# ----------------------------------------------------------------------------- pictures


def test_plot_filters_has_a_panel_per_filter(tmp_path):
    from matplotlib.figure import Figure
    fig = plot_filters(nn.Conv2d(1, 7, 5).weight, ncols=4)
    assert isinstance(fig, Figure) and len(fig.axes) == 7
    assert [ax.get_title() for ax in fig.axes] == [str(i) for i in range(7)]
    assert fig.axes[0].images[0].get_array().shape == (5, 5)
    rgb = plot_filters(np.random.default_rng(0).standard_normal((3, 3, 2, 2)))
    img = rgb.axes[0].images[0].get_array()
    assert img.shape == (2, 2, 3) and img.min() == 0 and img.max() == 1
    assert len(plot_filters(np.ones((4, 2, 3, 3)), channel=1).axes) == 4
    with pytest.raises(ValueError, match=r"shape \(4, 2, 3, 3\) has 2 input channels; pass channel="):
        plot_filters(np.ones((4, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"must be 4-D .* got shape \(4, 3, 3\)"):
        plot_filters(np.ones((4, 3, 3)))
    path = save_figure(fig, str(tmp_path / "f.png"))
    assert open(path, "rb").read(4) == b"\x89PNG" and sorted(p.name for p in tmp_path.iterdir()) == ["f.png"]


def test_plot_feature_maps_has_a_panel_per_filter_after_the_image():
    from matplotlib.figure import Figure
    conv = nn.Conv2d(1, 6, 3)
    image = np.random.default_rng(0).random((8, 8)).astype(np.float32)
    fig = plot_feature_maps(nn.Sequential(conv, nn.ReLU()), image)
    assert isinstance(fig, Figure) and len(fig.axes) == 1 + 6 and fig.axes[0].get_title() == "input"
    expect = F.relu(F.conv2d(Tensor(image[None, None]), conv.weight, conv.bias)).data[0]
    np.testing.assert_allclose(fig.axes[1 + 5].images[0].get_array(), expect[5])
    fn = lambda x: F.conv2d(x, conv.weight).relu()  # noqa: E731
    assert len(plot_feature_maps(fn, Tensor(image[None]), show_input=False).axes) == 6
    with pytest.raises(ValueError, match=r"gave shape \(1, 10\) .* must give feature maps"):
        plot_feature_maps(SimpleConvNet(), np.zeros((1, 28, 28)))
    with pytest.raises(ValueError, match=r"one image, .* got shape \(2, 1, 8, 8\)"):
        plot_feature_maps(fn, np.zeros((2, 1, 8, 8)))
    colour = np.linspace(-5, 5, 3 * 8 * 8).reshape(3, 8, 8)
    rgb = plot_feature_maps(nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU()), colour)
    shown = rgb.axes[0].images[0].get_array()
    assert len(rgb.axes) == 3 and shown.shape == (8, 8, 3) and (shown.min(), shown.max()) == (0, 1)
    with pytest.raises(TypeError, match="must be a Module or function"):
        plot_feature_maps(conv.weight.data, image)
