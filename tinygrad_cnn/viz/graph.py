"""Draw the computation graph with graphviz: ops, named tensors with shapes, grouped by module.

    dot = draw_graph(loss, params=model)     # a graphviz.Digraph
    dot.render("graph", format="svg")         # needs Graphviz's `dot` (Debian: graphviz)
    python -m tinygrad_cnn.viz --out graph.svg  # SimpleConvNet's training graph
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections import defaultdict

import graphviz
import numpy as np

from ._io import atomic_write
from .tensor import Tensor

STYLES = {
    "param": dict(shape="box", style="filled,rounded", fillcolor="#cfe2ff", color="#3d6fb6"),
    "input": dict(shape="box", style="filled", fillcolor="#e9ecef", color="#6c757d"),
    "output": dict(shape="box", style="filled,bold", fillcolor="#ffd8a8", color="#d9480f"),
    "tensor": dict(shape="box", style="rounded", color="#868e96", fontsize="10"),
    "op": dict(shape="ellipse", style="filled", fillcolor="#fff3bf", color="#b08800"),
    "module": dict(shape="box3d", style="filled", fillcolor="#d3f9d8", color="#2b8a3e"),
    "more": dict(shape="note", style="filled", fillcolor="#f8f9fa", color="#868e96"),
}
MISSING_DOT = ("Graphviz's `dot` program is not installed, so the graph cannot be rendered "
               "(Debian/Ubuntu: apt-get install graphviz); the DOT text is in .source")


class Graph(graphviz.Digraph):
    """A graphviz.Digraph whose render/pipe say in one line how to get `dot` when it is missing.

    `node_count`, `edge_count`, `collapsed` and `truncated` describe what was drawn.
    """

    node_count = edge_count = 0
    collapsed = truncated = False

    def render(self, *args, **kwargs):
        """graphviz's render; says how to install `dot` when it is missing."""
        try:
            return super().render(*args, **kwargs)
        except graphviz.ExecutableNotFound:
            raise RuntimeError(MISSING_DOT) from None

    def pipe(self, *args, **kwargs):
        """graphviz's pipe; says how to install `dot` when it is missing."""
        try:
            return super().pipe(*args, **kwargs)
        except graphviz.ExecutableNotFound:
            raise RuntimeError(MISSING_DOT) from None


def _text(s) -> str:
    """Escape a user string for a DOT label: backslashes doubled, newlines as DOT line breaks."""
    return str(s).replace("\\", "\\\\").replace("\n", "\\n")


def _label(*lines) -> graphviz.quoting.NoHtml:
    return graphviz.nohtml("\\n".join(_text(x) for x in lines if x))


def _fmt(v) -> str:
    if isinstance(v, tuple) and v and all(isinstance(p, tuple) and len(p) == 2 and p[0] == p[1] for p in v):
        v = tuple(p[0] for p in v)  # symmetric padding ((1, 1), (2, 2)) -> (1, 2)
    if isinstance(v, tuple) and len(v) == 2 and v[0] == v[1]:
        v = v[0]
    s = str(v)
    return s if len(s) <= 30 else s[:27] + "..."


def _attr_lines(attrs: dict) -> list[str]:
    return [f"{k}={_fmt(v)}" for k, v in attrs.items()
            if isinstance(v, (int, float, str, bool, tuple)) and not isinstance(v, np.ndarray) and k != "index"]


def _inputs(fn):
    """A function's input tensors; a leaf made by an unrecorded step of a composite op
    (conv2d's im2col of images that need no grad) stands for the tensors it was made from."""
    out, stack = [], [i for i in reversed(fn.inputs) if i is not None]
    while stack:
        t = stack.pop()
        if t._ctx is None and t._sources:
            stack.extend(reversed(t._sources))
        else:
            out.append(t)
    return out


def _walk(roots):
    """Every tensor and function reachable from roots, without recursion; tensors in data-flow order."""
    tensors, fns, seen = [], [], set()
    stack = list(reversed(roots))
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        tensors.append(t)
        if t._ctx is not None:
            fns.append(t._ctx)
            stack.extend(reversed(_inputs(t._ctx)))
    return tensors[::-1], fns


def _names(params) -> tuple[dict, dict]:
    """id(tensor) -> parameter name, id(module) -> module name."""
    if params is None:
        return {}, {}
    if hasattr(params, "named_parameters"):
        tnames = {id(p): n for n, p in params.named_parameters()}
        mnames = {id(m): (n or type(m).__name__) for n, m in params.named_modules()}
        return tnames, mnames
    return {id(t): n for n, t in dict(params).items()}, {}


def draw_graph(*roots, params=None, show_shapes=True, show_attrs=True, show_grads=False, group_modules=True,
               max_nodes=500, rankdir="TB") -> Graph:
    """The graph that computed `roots`, as a graphviz Digraph.

    A node per op (a composite op such as conv2d or cross_entropy is one node) with its
    key attributes, and a node per tensor that crosses between ops, labelled with its
    name (from `params`: a dict name -> Tensor or a Module, else `Tensor.name`), shape and
    dtype. Parameters, inputs and outputs each have a style; a legend says which. With
    `group_modules`, the ops of each module's forward are drawn in a cluster. A graph of
    more than `max_nodes` nodes collapses into its modules (and says so).
    """
    roots = [r for r in roots if r is not None]
    if not roots or not all(isinstance(r, Tensor) for r in roots):
        raise TypeError("draw_graph: pass one or more Tensors")
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise ValueError(f"draw_graph: rankdir must be TB, LR, BT or RL, got {rankdir!r}")
    tnames, mnames = _names(params)
    tensors, fns = _walk(roots)
    root_ids = {id(r) for r in roots}

    def unit(fn):  # the op node a function belongs to: its composite call, or itself
        return fn.scope if fn.scope is not None else fn

    units, unit_fns = {}, defaultdict(list)
    for fn in reversed(fns):  # data-flow order
        u = unit(fn)
        units.setdefault(id(u), u)
        unit_fns[id(u)].append(fn)
    producer = {id(t): id(unit(t._ctx)) for t in tensors if t._ctx is not None}
    consumers = defaultdict(list)
    for fn in reversed(fns):
        for i in _inputs(fn):
            if id(unit(fn)) not in consumers[id(i)]:
                consumers[id(i)].append(id(unit(fn)))

    def kind(t):
        if id(t) in root_ids:
            return "output"
        if t._ctx is None:
            return "param" if t.requires_grad else "input"
        return "tensor"

    def shown(t):
        if id(t) in root_ids:
            return True
        if t._ctx is None:
            return not getattr(t, "_is_constant", False)
        return any(c != producer[id(t)] for c in consumers[id(t)])

    drawn = [t for t in tensors if shown(t)]
    dot = Graph(name="computation_graph", graph_attr=dict(rankdir=rankdir, fontname="Helvetica", fontsize="11"),
                node_attr=dict(fontname="Helvetica", fontsize="11"), edge_attr=dict(color="#495057"))
    if len(units) + len(drawn) > max_nodes:
        _draw_collapsed(dot, units, unit_fns, producer, consumers, mnames, max_nodes)
    else:
        _draw_full(dot, drawn, units, unit_fns, producer, consumers, kind, tnames, mnames, group_modules,
                   show_shapes, show_attrs, show_grads)
    _legend(dot)
    return dot


def _tensor_label(t, k, tnames, show_shapes, show_grads):
    name = tnames.get(id(t)) or t.name or {"output": "output", "input": "input"}.get(k, "")
    lines = [name]
    if show_shapes:
        lines.append(f"{tuple(t.shape)} {t.dtype}")
    if t.data is not None and t.data.size == 1 and np.issubdtype(t.dtype, np.number):
        lines.append(f"= {float(t.data.reshape(())):.4g}")
    if show_grads and t.grad is not None:
        g = t.grad.data
        lines.append(f"grad = {float(g.reshape(())):.4g}" if g.size == 1 else
                     f"|grad| = {float(np.linalg.norm(g)):.3g}")
    return _label(*lines)


def _module_path(fn, mnames):
    return tuple(m for m in fn.modules if not mnames or id(m) in mnames)


def _op_name(u, first) -> str:
    """An op node's name: the composite call's (conv2d), else the function's own (relu)."""
    return u.name if u is not first else first.op_name


def _draw_full(dot, drawn, units, unit_fns, producer, consumers, kind, tnames, mnames, group_modules,
               show_shapes, show_attrs, show_grads):
    ids = {}
    placed = defaultdict(list)  # module path -> node statements
    for n, (uid, u) in enumerate(units.items()):
        ids[uid] = f"op{n}"
        first = unit_fns[uid][0]
        name = _op_name(u, first)
        attrs = _attr_lines(u.attrs) if show_attrs else []
        path = _module_path(first, mnames) if group_modules else ()
        placed[path].append((ids[uid], _label(name, *attrs), STYLES["op"]))
    for n, t in enumerate(drawn):
        ids[id(t)] = f"t{n}"
        k = kind(t)
        path = ()
        if group_modules and k in ("tensor", "param"):
            owner = producer.get(id(t)) or (consumers[id(t)][0] if consumers[id(t)] else None)
            if owner is not None:
                path = _module_path(unit_fns[owner][0], mnames)
        placed[path].append((ids[id(t)], _tensor_label(t, k, tnames, show_shapes, show_grads), STYLES[k]))
    _emit_clusters(dot, placed, mnames)
    edges = 0
    for t in drawn:
        if id(t) in producer:
            dot.edge(ids[producer[id(t)]], ids[id(t)])
            edges += 1
        for c in consumers[id(t)]:
            if c != producer.get(id(t)):
                dot.edge(ids[id(t)], ids[c])
                edges += 1
    dot.node_count, dot.edge_count = len(units) + len(drawn), edges


def _emit_clusters(dot, placed, mnames):
    """Nodes into nested clusters, one per module path (outermost module first)."""
    tree: dict = {}
    for path in placed:
        node = tree
        for m in path:
            node = node.setdefault(m, {})
    counter = [0]

    def fill(graph, prefix, subtree):
        for stmt in placed.get(prefix, []):
            graph.node(stmt[0], stmt[1], **stmt[2])
        for m, sub in subtree.items():
            counter[0] += 1
            name = mnames.get(id(m), type(m).__name__)
            label = name if name == type(m).__name__ else f"{name}: {type(m).__name__}"
            with graph.subgraph(name=f"cluster_{counter[0]}") as c:
                c.attr(label=_label(label), style="rounded,dashed", color="#2b8a3e", fontcolor="#2b8a3e")
                fill(c, prefix + (m,), sub)

    fill(dot, (), tree)


def _draw_collapsed(dot, units, unit_fns, producer, consumers, mnames, max_nodes):
    """One node per top-level module (or per op outside modules); truncated past max_nodes."""
    def group(uid):
        path = _module_path(unit_fns[uid][0], mnames)
        if not path:
            return ("op", uid, None)
        top = path[min(1, len(path) - 1)]  # the module just below the outermost one
        return ("module", id(top), top)

    group_of = {uid: group(uid) for uid in units}
    groups, members = {}, defaultdict(int)
    for g in group_of.values():
        groups.setdefault(g[:2], g)
        members[g[:2]] += 1
    edges = set()
    for t_id, uid in producer.items():
        for c in consumers[t_id]:
            a, b = group_of[uid][:2], group_of[c][:2]
            if a != b:
                edges.add((a, b))
    # keep the groups nearest the outputs when there are still too many
    keep = set(list(groups)[::-1][:max_nodes - 1])
    ids = {g: f"g{n}" for n, g in enumerate(groups) if g in keep}
    for g in ids:
        kind_, key, module = groups[g]
        if kind_ == "module":
            name = mnames.get(id(module), type(module).__name__)
            label = _label(f"{name}: {type(module).__name__}", f"{members[g]} ops")
            dot.node(ids[g], label, **STYLES["module"])
        else:
            dot.node(ids[g], _label(_op_name(units[key], unit_fns[key][0])), **STYLES["op"])
    n_edges = 0
    for a, b in edges:
        if a in ids and b in ids:
            dot.edge(ids[a], ids[b])
            n_edges += 1
    dropped = len(groups) - len(ids)
    note = f"collapsed: {len(units)} ops into {len(groups)} groups (max_nodes={max_nodes})"
    if dropped:
        dot.node("more", _label(f"... {dropped} more groups not drawn"), **STYLES["more"])
        note += f"; the {dropped} groups farthest from the output are not drawn"
    dot.attr(label=_label(note), labelloc="t")
    dot.collapsed, dot.truncated = True, bool(dropped)
    dot.node_count, dot.edge_count = len(ids) + bool(dropped), n_edges


def _legend(dot):
    with dot.subgraph(name="cluster_legend") as c:
        c.attr(label="legend", style="dashed", color="#adb5bd", fontcolor="#868e96")
        for k, text in (("param", "parameter"), ("input", "input"), ("output", "output"), ("op", "op")):
            c.node(f"legend_{k}", text, **STYLES[k])


# ----------------------------------------------------------------------------- files and CLI


def dot_available() -> bool:
    """True when Graphviz's `dot` program is on PATH."""
    return shutil.which("dot") is not None


def save_graph(root: Tensor, path_stem: str, params=None, format="svg", **kwargs) -> str:
    """Write the graph to `path_stem.<format>` (rendered by `dot`) or, without `dot`,
    to `path_stem.dot` with a one-line notice. Written atomically; returns the path."""
    dot = draw_graph(root, params=params, **kwargs)
    if format != "dot" and dot_available():
        data, path = dot.pipe(format=format), f"{path_stem}.{format}"
    else:
        if format != "dot":
            print(f"notice: {MISSING_DOT}; writing {path_stem}.dot", file=sys.stderr)
        data, path = dot.source.encode(), f"{path_stem}.dot"
    atomic_write(path, data)
    return path


def simpleconvnet_graph(batch=2, show_grads=True):
    """SimpleConvNet's training graph on a small random batch (after backward, so grads show)."""
    from .models import SimpleConvNet
    from .rng import manual_seed
    manual_seed(0)
    net = SimpleConvNet()
    rng = np.random.default_rng(0)
    x = Tensor(rng.random((batch, 1, 28, 28)).astype(np.float32), name="images")
    loss = net.loss(x, rng.integers(0, 10, batch))
    loss.name = "loss"
    loss.backward(retain_graph=True)
    return draw_graph(loss, params=net, show_grads=show_grads), loss, net


def main(argv=None) -> str:
    """Command line: draw SimpleConvNet's training graph to --out."""
    p = argparse.ArgumentParser(prog="python -m tinygrad_cnn.viz", description="Draw SimpleConvNet's training graph.")
    p.add_argument("--out", default="graph.svg", help="output file: .svg, .png, .pdf or .dot (default graph.svg)")
    p.add_argument("--batch", type=int, default=2)
    args = p.parse_args(argv)
    stem, ext = os.path.splitext(args.out)
    fmt = ext.lstrip(".") or "svg"
    _, loss, net = simpleconvnet_graph(args.batch)
    path = save_graph(loss, stem, params=net, format=fmt, show_grads=True)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
