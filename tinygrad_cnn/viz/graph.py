"""Draw the computation graph with graphviz: ops, parameters by name, shapes on the edges,
grouped by module; composite ops expanded into the ops they ran on request; the ops a
backward pass recorded (under create_graph) labelled with the forward op they differentiate.

    dot = draw_graph(loss)                       # a graphviz.Digraph
    dot = draw_graph(loss, expand={"conv2d"})    # conv2d as im2col (unfold) -> matmul
    dot.render("graph", format="svg")            # needs Graphviz's `dot` (Debian: graphviz)
"""
from __future__ import annotations

import itertools
import shutil
import sys
import weakref
from collections import defaultdict, deque

import graphviz
import numpy as np

from .._io import atomic_write
from ..autograd.function import TensorMeta, resolve
from ..autograd.grad_mode import OpScope
from ..tensor import Tensor

STYLES = {
    "param": dict(shape="box", style="filled,rounded", fillcolor="#cfe2ff", color="#3d6fb6"),
    "input": dict(shape="box", style="filled", fillcolor="#e9ecef", color="#6c757d"),
    "output": dict(shape="box", style="filled,bold", fillcolor="#ffd8a8", color="#d9480f"),
    "tensor": dict(shape="box", style="rounded", color="#868e96", fontsize="10"),
    "op": dict(shape="ellipse", style="filled", fillcolor="#fff3bf", color="#b08800"),
    "step": dict(shape="ellipse", style="filled,dashed", fillcolor="#fff9db", color="#b08800"),
    "backward": dict(shape="ellipse", style="filled", fillcolor="#ffe3e3", color="#c92a2a"),
    "module": dict(shape="box3d", style="filled", fillcolor="#d3f9d8", color="#2b8a3e"),
    "more": dict(shape="note", style="filled", fillcolor="#f8f9fa", color="#868e96"),
}
CLUSTER_STYLES = {
    "module": dict(style="rounded,dashed", color="#2b8a3e", fontcolor="#2b8a3e"),
    "scope": dict(style="rounded,filled", fillcolor="#fffdf0", color="#b08800", fontcolor="#8a6d00"),
    "backward": dict(style="rounded,filled", fillcolor="#fff5f5", color="#c92a2a", fontcolor="#c92a2a"),
}
LEGEND = (("param", "parameter"), ("input", "input"), ("output", "output"), ("op", "op"),
          ("step", "op not recorded\n(no input needs grad)"), ("backward", "op of a backward pass"))
# the lecture's names where an op has one; max_pool2d's own op is the max over each window
OP_LABELS = {"unfold": "im2col (unfold)", "fold": "col2im (fold)", "max_pool2d": "window max"}
_HIDDEN_ATTRS = {"index", "steps", "shape", "batch_inner"}  # shapes are on the edges; layout is not math
MISSING_DOT = ("Graphviz's `dot` program is not installed, so the graph cannot be rendered "
               "(Debian/Ubuntu: apt-get install graphviz); the DOT text is in .source")


class Graph(graphviz.Digraph):
    """A graphviz.Digraph whose render/pipe say in one line how to get `dot` when it is missing.

    `node_count` (`op_count` ops + `tensor_count` tensors, the legend not counted),
    `edge_count`, `op_names` (each op node's name, in data-flow order), `collapsed` and
    `truncated` describe what was drawn.
    """

    node_count = edge_count = op_count = tensor_count = 0
    collapsed = truncated = False
    op_names: tuple = ()

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


# ----------------------------------------------------------------------------- what was recorded


class _Step:
    """An op that ran unrecorded, because none of its inputs needs a gradient, inside a
    composite op (conv2d's im2col of the images) or a backward rule: drawn as an op."""

    def __init__(self, src):
        self.fn_class, self.attrs, self.inputs = src.op, src.attrs, tuple(src)
        self.modules, self.backward_of = src.modules, src.backward_of
        self.scope, self.nested_scopes = (src.scopes[0], src.scopes[1:]) if src.scopes else (None, ())

    @property
    def op_name(self) -> str:
        """The op's functional name (unfold)."""
        return self.fn_class().op_name


class _PartOp:
    """One step of a fused op (conv2d: im2col -> matmul, computed in chunks), as the op
    describes it (`Function.parts`): drawn as an op inside the fused op's cluster, dashed when
    none of its inputs needs a gradient."""

    def __init__(self, fn, part, inputs, scope, nested):
        self.op_name, self.attrs, self.inputs = part.op, part.attrs, tuple(inputs)
        self.modules, self.backward_of, self.scope, self.nested_scopes = fn.modules, fn.backward_of, scope, nested
        self.unrecorded = not any(i.requires_grad for i in self.inputs)


class _PartTensor:
    """The output of a fused op's step: drawn as the shape on an edge."""

    name = _ctx = _sources = data = grad = None
    _is_constant = False

    def __init__(self, op, shape, dtype):
        self.op, self.shape, self.dtype, self.requires_grad = op, tuple(shape), dtype, not op.unrecorded


_PARTS = weakref.WeakKeyDictionary()  # fused Function -> its last _PartOp (made once per node)


def _fused_producer(fn):
    """The last step of a fused op, its steps linked by _PartTensors back to the op's inputs."""
    last = _PARTS.get(fn)
    if last is None:
        scope = fn.scope if fn.scope is not None else OpScope(fn.op_name, fn.attrs)
        nested = fn.nested_scopes if fn.scope is not None else ()
        parts, outs = fn.parts(), []
        dtype = next(i.dtype for i in fn.inputs if i is not None)
        for n, part in enumerate(parts):
            inputs = [fn.inputs[j] if kind == "in" else outs[j] for kind, j in part.inputs]
            last = _PartOp(fn, part, inputs, scope, nested)
            if n < len(parts) - 1:
                outs.append(_PartTensor(last, part.shape, dtype))
        _PARTS[fn] = last
    return last


def _key(t) -> int:
    """One id per tensor, whether a node holds it or its TensorMeta."""
    return id(resolve(t))


def _producer(t):
    """The op that made t: its Function, an unrecorded step of a composite op or backward rule,
    or None (a leaf)."""
    if isinstance(t, _PartTensor):
        return t.op
    if t._ctx is not None:
        return _fused_producer(t._ctx) if hasattr(t._ctx, "parts") else t._ctx
    if getattr(t._sources, "op", None) is not None:
        return _Step(t._sources)
    return None


def _walk(roots):
    """Tensors reachable from roots in data-flow order, each as late as it can be (after the
    tensors it was made from, just before its first use), and {tensor key: the op that made
    it}; without recursion."""
    tensors, producer, users = {}, {}, defaultdict(int)
    stack = list(roots)
    while stack:  # every tensor once, and how many op inputs each one is
        t = stack.pop()
        k = _key(t)
        if k in tensors:
            continue
        tensors[k] = t
        op = _producer(t)
        if op is not None:
            producer[k] = op
            inputs = [i for i in op.inputs if i is not None]
            for i in inputs:
                users[_key(i)] += 1
            stack.extend(inputs)
    order = []
    ready = deque(r for r in roots if users[_key(r)] == 0)
    while ready:  # from the roots back, level by level: a tensor once all its users are placed
        t = ready.popleft()
        order.append(t)
        op = producer.get(_key(t))
        for i in op.inputs if op is not None else ():
            if i is not None:
                users[_key(i)] -= 1
                if users[_key(i)] == 0:
                    ready.append(i)
    return order[::-1], producer


def _op_label(op) -> str:
    name = op.op_name
    return OP_LABELS.get(name, name)


def _forward_group(op) -> tuple:
    """(key, name, expand name) of what op computes: its outermost composite call (conv2d) or
    itself; for an op of a backward pass, that of the forward op it differentiates + ' backward'."""
    if op.backward_of is not None:
        key, name, base = _forward_group(op.backward_of)
        return ("backward", key), f"{name} backward", base
    if op.scope is not None:
        return id(op.scope), op.scope.name, op.scope.name
    return id(op), _op_label(op), op.op_name


class _Unit:
    """An op node of the drawing: a composite call, the ops of one backward rule, or one op;
    `clusters` are the expanded composite calls around it, outermost first."""

    def __init__(self, key, kind, name, attrs, modules, clusters):
        self.key, self.kind, self.name, self.attrs = key, kind, name, attrs
        self.modules, self.clusters, self.ops = modules, clusters, []

    def label_lines(self, show_attrs) -> list:
        name = self.name
        if self.kind == "backward" and len(self.ops) == 1 and not self.clusters:  # one op: say which
            name = f"{name}: {_op_label(self.ops[0])}"
        return [name, *(_attr_lines(self.attrs) if show_attrs else [])]


def _expand_names(expand):
    """draw_graph's `expand` (False, True, a name or names) -> True (every op) or a set of names."""
    if isinstance(expand, bool) or expand is None:
        return bool(expand) or set()
    try:
        names = {expand} if isinstance(expand, str) else set(expand)
    except TypeError:
        raise TypeError(f"draw_graph: expand must be True, False or a set of op names such as {{'conv2d'}}, "
                        f"got {type(expand).__name__}") from None
    if not all(isinstance(n, str) for n in names):
        raise TypeError(f"draw_graph: expand names must be strings, got {sorted(map(repr, names))}")
    return names


def _scopes(op) -> tuple:
    """The composite calls op ran in, outermost first."""
    return (op.scope, *op.nested_scopes) if op.scope is not None else ()


def _place(op, expanded) -> tuple:
    """(unit key, kind, name, attrs, modules, clusters) of the op node that `op` is drawn in."""
    if op.backward_of is not None:
        key, name, base = _forward_group(op)
        if expanded(base):
            return id(op), "backward", f"{name}: {_op_label(op)}", op.attrs, (), ((key, (name,), "backward"),)
        return key, "backward", name, {}, (), ()
    clusters = []
    for s in _scopes(op):
        if not expanded(s.name):
            return id(s), _op_kind(op), s.name, s.attrs, op.modules, tuple(clusters)
        clusters.append((id(s), (s.name, ", ".join(_attr_lines(s.attrs))), "scope"))
    return id(op), _op_kind(op), _op_label(op), op.attrs, op.modules, tuple(clusters)


def _op_kind(op) -> str:
    """"step" (dashed) for an op that ran unrecorded, else "op"."""
    return "step" if isinstance(op, _Step) or getattr(op, "unrecorded", False) else "op"


def _expandable(producer) -> set:
    """The names `expand` can take in this graph: composite calls and the ops a backward pass differentiated."""
    names = set()
    for op in producer.values():
        names.update(s.name for s in _scopes(op))
        if op.backward_of is not None:
            names.add(_forward_group(op)[2])
    return names


def _recorded_names(ops) -> tuple[dict, dict]:
    """id(tensor) -> dotted name and id(module) -> name, from the outermost module each op ran in
    (as its named_parameters/named_buffers/named_modules give them: W1, 0.weight, conv1.bias)."""
    tnames, mnames, done = {}, {}, set()
    for op in ops:
        if not op.modules or id(op.modules[0]) in done:
            continue
        root = op.modules[0]
        done.add(id(root))
        for n, t in itertools.chain(root.named_parameters(), root.named_buffers()):
            tnames.setdefault(id(t), n)
        for n, m in root.named_modules():
            mnames.setdefault(id(m), n or type(m).__name__)
    return tnames, mnames


def _given_names(params) -> tuple[dict, dict]:
    """id(tensor) -> name and id(module) -> name from draw_graph's `params`."""
    if params is None:
        return {}, {}
    if hasattr(params, "named_parameters"):
        tnames = {id(p): n for n, p in params.named_parameters()}
        return tnames, {id(m): (n or type(m).__name__) for n, m in params.named_modules()}
    return {id(t): n for n, t in dict(params).items()}, {}


class _Recorded:
    """The graph behind some roots, grouped into the op nodes to draw."""

    def __init__(self, roots, params, expand):
        self.tensors, producer = _walk(roots)
        self.root_keys = {_key(r) for r in roots}
        names = _expand_names(expand)
        expanded = (lambda name: True) if names is True else names.__contains__
        if names is not True and names - _expandable(producer):
            raise ValueError(f"draw_graph: expand names {sorted(names - _expandable(producer))} are not ops of this "
                             f"graph; it can expand {sorted(_expandable(producer)) or 'nothing'}")
        self.units, self.producer, self.consumers = {}, {}, defaultdict(list)
        done_at = {}
        for n, t in enumerate(self.tensors):  # data-flow order
            op = producer.get(_key(t))
            if op is not None:
                unit = self.producer[_key(t)] = self._unit(op, expanded)
                done_at[unit.key] = n
        self.units = dict(sorted(self.units.items(), key=lambda kv: done_at[kv[0]]))  # by their last output
        for t in self.tensors:
            op = producer.get(_key(t))
            for i in op.inputs if op is not None else ():
                users = self.consumers[_key(i)] if i is not None else None
                if users is not None and self.producer[_key(t)] not in users:
                    users.append(self.producer[_key(t)])
        _drop_lone_clusters(self.units.values())
        self.explicit_modules = hasattr(params, "named_modules")
        given_t, given_m = _given_names(params)
        rec_t, rec_m = _recorded_names(op for u in self.units.values() for op in u.ops)
        self.tnames, self.mnames = given_t, {**rec_m, **given_m}
        self.recorded_tnames = rec_t

    def _unit(self, op, expanded) -> _Unit:
        key, kind, name, attrs, modules, clusters = _place(op, expanded)
        unit = self.units.get(key)
        if unit is None:
            unit = self.units[key] = _Unit(key, kind, name, attrs, modules, clusters)
        elif unit.kind == "step" and kind != "step":  # dashed only when none of its ops was recorded
            unit.kind = kind
        unit.ops.append(op)
        return unit

    def kind(self, t) -> str:
        if _key(t) in self.root_keys:
            return "output"
        if _key(t) not in self.producer:
            return "param" if t.requires_grad else "input"
        return "tensor"

    def name(self, t):
        """params= first, then Tensor.name, then the module path recorded at forward; a
        nameless input that only a backward pass used is one of its constants (the seed)."""
        name = self.tnames.get(id(t)) or t.name or self.recorded_tnames.get(id(t))
        users = self.consumers[_key(t)]
        if name is None and not t.requires_grad and users and all(u.kind == "backward" for u in users):
            return "constant"
        return name

    def drawn(self, t) -> bool:
        """A node for roots, leaves (not an op's own constants), and tensors between op nodes
        that have more to say than the edge's shape: a name, values, a gradient."""
        k, kind = _key(t), self.kind(t)
        if kind == "output":
            return True
        if kind != "tensor":
            return not t._is_constant
        crosses = any(c is not self.producer[k] for c in self.consumers[k])
        return crosses and bool(t.name or _small(t) or t.grad is not None)

    def module_path(self, unit) -> tuple:
        mods = unit.modules
        if self.explicit_modules:  # params= a Module: only its modules are drawn
            mods = tuple(m for m in mods if id(m) in self.mnames)
        return mods


def _drop_lone_clusters(units) -> None:
    """An expanded call that ran one op of its own name (nll_loss) needs no cluster around it."""
    under = defaultdict(int)
    for u in units:
        for i in range(1, len(u.clusters) + 1):
            under[u.clusters[:i]] += 1
    for u in units:
        if u.clusters and under[u.clusters] == 1 and u.name == u.clusters[-1][1][0]:
            u.clusters = u.clusters[:-1]


def _small(t) -> bool:
    return t.data is not None and t.data.size <= 4


# ----------------------------------------------------------------------------- labels


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
    """An op's key attributes, one per line; a window geometry as kernel_size/stride/padding."""
    lines = []
    for k, v in attrs.items():
        if k == "geom":
            kernel, stride, padding, dilation = v[:4]
            lines += [f"kernel_size={_fmt(kernel)}", f"stride={_fmt(stride)}", f"padding={_fmt(padding)}"]
            lines += [f"dilation={_fmt(dilation)}"] if dilation != (1, 1) else []
        elif k == "ones_row":
            lines += ["+ a row of ones (for the bias)"] if v else []
        elif k not in _HIDDEN_ATTRS and isinstance(v, (int, float, str, bool, tuple)):
            lines.append(f"{k}={_fmt(v)}")
    return lines


def _shape(shape) -> str:
    return str(tuple(int(s) for s in shape))


def _values(a) -> str:
    """At most 4 values, as micrograd's drawings show them: -6, [[1, 2], [3, 4]]."""
    a = np.asarray(a)
    if a.ndim:
        return "[" + ", ".join(_values(row) for row in a) + "]"
    v = a.item()
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _tensor_label(t, kind, name, show_shapes, show_grads):
    lines = [name or {"output": "output", "input": "input"}.get(kind, "")]
    if show_shapes:
        lines.append(f"{_shape(t.shape)} {t.dtype}")
    if _small(t):
        lines.append(f"data = {_values(t.data)}")
    g = t.grad if show_grads is not False else None
    if g is not None and g.numel() <= 4:
        lines.append(f"grad = {_values(g.data)}")
    elif g is not None and show_grads:
        lines.append(f"|grad| = {float(np.linalg.norm(g.data)):.3g}")
    return _label(*lines)


# ----------------------------------------------------------------------------- drawing


def draw_graph(*roots, params=None, expand=False, show_shapes=True, show_attrs=True, show_grads=None,
               group_modules=True, max_nodes=500, rankdir="TB") -> Graph:
    """The graph that computed `roots` (Tensors), as a graphviz Digraph.

    A node per op with its key attributes; every edge is labelled with the shape of the
    tensor it carries. A composite op (conv2d, max_pool2d, cross_entropy, linear, ...) is
    one node, unless `expand` is True or a set of op names such as {"conv2d"}: those are
    then drawn as a cluster of the ops they ran (conv2d: im2col (unfold) -> matmul, the
    bias riding along as a row of ones; cross_entropy: log_softmax -> nll_loss). Ops that
    ran unrecorded because no input needed a gradient (im2col of the images) are dashed.

    A node per leaf (parameters, inputs), per output and per tensor between ops that has a
    name, at most 4 values or a gradient. Names come from `params` (a dict name -> Tensor
    or a Module), else `Tensor.name`, else the module path recorded at forward (`W1`,
    `0.weight`, `conv1.bias`). Tensors of at most 4 values show them, and their gradient
    once they have one (`show_grads=False`: no gradients; True: also the norm of larger
    ones). Ops recorded by a backward pass under `create_graph=True` are drawn in their
    own style, one node per forward op they differentiate ("conv2d backward"), or with
    `expand` each op labelled "conv2d backward: col2im (fold)". With `group_modules`,
    the ops of each module's forward are drawn in a cluster. A graph of more than
    `max_nodes` nodes collapses into its modules (and says so).
    """
    roots = [r for r in roots if r is not None]
    if not roots or not all(isinstance(r, (Tensor, TensorMeta)) for r in roots):
        raise TypeError("draw_graph: pass one or more Tensors")
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise ValueError(f"draw_graph: rankdir must be TB, LR, BT or RL, got {rankdir!r}")
    rec = _Recorded(roots, params, expand)
    drawn = [t for t in rec.tensors if rec.drawn(t)]
    dot = Graph(name="computation_graph", graph_attr=dict(rankdir=rankdir, fontname="Helvetica", fontsize="11"),
                node_attr=dict(fontname="Helvetica", fontsize="11"),
                edge_attr=dict(color="#495057", fontname="Helvetica", fontsize="9", fontcolor="#495057"))
    if len(rec.units) + len(drawn) > max_nodes:
        _draw_collapsed(dot, rec, max_nodes)
    else:
        _draw_full(dot, rec, drawn, group_modules, show_shapes, show_attrs, show_grads)
    _legend(dot, {u.kind for u in rec.units.values()})
    return dot


def _draw_full(dot, rec, drawn, group_modules, show_shapes, show_attrs, show_grads):
    op_ids, t_ids = {}, {}  # unit -> node id, tensor key -> node id
    placed = defaultdict(list)  # cluster path -> node statements
    for n, unit in enumerate(rec.units.values()):
        op_ids[unit] = f"op{n}"
        path = _cluster_path(rec, unit, group_modules) + unit.clusters
        placed[path].append((op_ids[unit], _label(*unit.label_lines(show_attrs)), STYLES[unit.kind]))
    for n, t in enumerate(drawn):
        k, kind = _key(t), rec.kind(t)
        t_ids[k] = f"t{n}"
        path = ()
        users = sorted(rec.consumers[k], key=lambda u: u.kind == "backward")  # drawn next to a forward user
        owner = rec.producer.get(k) or (users[0] if users else None)
        if owner is not None and kind != "output":
            path = _cluster_path(rec, owner, group_modules) + (owner.clusters if kind == "tensor" else ())
        placed[path].append((t_ids[k], _tensor_label(t, kind, rec.name(t), show_shapes, show_grads), STYLES[kind]))
    _emit_clusters(dot, placed, show_attrs)
    edges = 0
    for t in rec.tensors:
        k = _key(t)
        src, shape = rec.producer.get(k), _shape(t.shape)
        if k in t_ids:  # a tensor node: producer -> node -> consumers
            if src is not None:
                dot.edge(op_ids[src], t_ids[k], label=shape)
                edges += 1
            src_id = t_ids[k]
        elif src is not None:  # an edge between two op nodes
            src_id = op_ids[src]
        else:
            continue
        for c in rec.consumers[k]:
            if c is not src:
                dot.edge(src_id, op_ids[c], label=shape)
                edges += 1
    dot.op_count, dot.tensor_count = len(rec.units), len(drawn)
    dot.op_names = tuple(u.label_lines(False)[0] for u in rec.units.values())
    dot.node_count, dot.edge_count = len(rec.units) + len(drawn), edges


def _cluster_path(rec, unit, group_modules) -> tuple:
    """The module clusters a unit is drawn in, outermost first, as (key, label lines, style)."""
    if not group_modules:
        return ()
    path = []
    for m in rec.module_path(unit):
        name = rec.mnames.get(id(m), type(m).__name__)
        path.append((id(m), (name if name == type(m).__name__ else f"{name}: {type(m).__name__}",), "module"))
    return tuple(path)


def _emit_clusters(dot, placed, show_attrs=True):
    """Nodes into nested clusters; `placed` maps a path of (key, label lines, style) to node statements."""
    tree: dict = {}
    for path in placed:
        node = tree
        for cluster in path:
            node = node.setdefault(cluster, {})
    counter = itertools.count(1)

    def fill(graph, prefix, subtree):
        for name, label, style in placed.get(prefix, []):
            graph.node(name, label, **style)
        for cluster, sub in subtree.items():
            with graph.subgraph(name=f"cluster_{next(counter)}") as c:
                c.attr(label=_label(*cluster[1][:None if show_attrs else 1]), **CLUSTER_STYLES[cluster[2]])
                fill(c, prefix + (cluster,), sub)

    fill(dot, (), tree)


def _draw_collapsed(dot, rec, max_nodes):
    """One node per top-level module (or per op node outside modules); truncated past max_nodes."""
    def group(unit):
        path = rec.module_path(unit)
        if not path:
            return ("op", id(unit), unit)
        top = path[min(1, len(path) - 1)]  # the module just below the outermost one
        return ("module", id(top), top)

    group_of = {id(u): group(u) for u in rec.units.values()}
    groups, members = {}, defaultdict(int)
    for g in group_of.values():
        groups.setdefault(g[:2], g)
        members[g[:2]] += 1
    edges = set()
    for k, src in rec.producer.items():
        for c in rec.consumers[k]:
            a, b = group_of[id(src)][:2], group_of[id(c)][:2]
            if a != b:
                edges.add((a, b))
    # keep the groups nearest the outputs when there are still too many
    keep = set(list(groups)[::-1][:max_nodes - 1])
    ids = {g: f"g{n}" for n, g in enumerate(groups) if g in keep}
    for g in ids:
        kind, _, obj = groups[g]
        if kind == "module":
            dot.node(ids[g], _label(_group_name(rec, groups[g]), f"{members[g]} ops"), **STYLES["module"])
        else:
            dot.node(ids[g], _label(_group_name(rec, groups[g])), **STYLES[obj.kind])
    n_edges = 0
    for a, b in edges:
        if a in ids and b in ids:
            dot.edge(ids[a], ids[b])
            n_edges += 1
    dropped = len(groups) - len(ids)
    note = f"collapsed: {len(rec.units)} ops into {len(groups)} groups (max_nodes={max_nodes})"
    if dropped:
        dot.node("more", _label(f"... {dropped} more groups not drawn"), **STYLES["more"])
        note += f"; the {dropped} groups farthest from the output are not drawn"
    dot.attr(label=_label(note), labelloc="t")
    dot.collapsed, dot.truncated = True, bool(dropped)
    dot.node_count, dot.edge_count = len(ids) + bool(dropped), n_edges
    dot.op_count, dot.op_names = len(ids), tuple(_group_name(rec, groups[g]) for g in ids)


def _group_name(rec, group) -> str:
    kind, _, obj = group
    if kind == "module":
        name = rec.mnames.get(id(obj), type(obj).__name__)
        return f"{name}: {type(obj).__name__}"
    return obj.label_lines(False)[0]


def _legend(dot, kinds):
    with dot.subgraph(name="cluster_legend") as c:
        c.attr(label="legend", style="dashed", color="#adb5bd", fontcolor="#868e96")
        for k, text in LEGEND:
            if k in ("param", "input", "output", "op") or k in kinds:
                c.node(f"legend_{k}", _label(text), **STYLES[k])


# ----------------------------------------------------------------------------- files


def dot_available() -> bool:
    """True when Graphviz's `dot` program is on PATH."""
    return shutil.which("dot") is not None


def save_graph(root: Tensor, path_stem: str, params=None, format="svg", **kwargs) -> str:
    """Draw root's graph (`kwargs` go to draw_graph: expand, show_grads, ...) and write it
    with `write_graph`; returns the path."""
    return write_graph(draw_graph(root, params=params, **kwargs), path_stem, format)


def write_graph(dot: graphviz.Digraph, path_stem: str, format="svg") -> str:
    """Write a drawn graph to `path_stem.<format>` (rendered by `dot`) or, without `dot`, to
    `path_stem.dot` with a one-line notice. Written atomically; returns the path."""
    if format != "dot" and dot_available():
        data, path = dot.pipe(format=format), f"{path_stem}.{format}"
    else:
        if format != "dot":
            print(f"notice: {MISSING_DOT}; writing {path_stem}.dot", file=sys.stderr)
        data, path = dot.source.encode(), f"{path_stem}.dot"
    atomic_write(path, data)
    return path
