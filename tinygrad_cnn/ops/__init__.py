"""Tensor ops: one `Function` per op, its forward next to its backward, by kind:
`arithmetic` (+ - * / **, maximum, matmul), `elementwise` (exp, relu, clamp, where, ...),
`reduction` (sum, amax, max along a dim), `shape` (reshape, permute, expand, cat, pad) and
`indexing` (x[i], x[i] = v, copy_); `helpers` has what they share (promotion, broadcasting).

Backward rules are written in Tensor ops, so the engine can record them when
`create_graph=True` (gradients of gradients). Tensor's methods and operators call these.
`SAVES` says which tensors each backward reads (checked for in-place changes).
"""
from .helpers import MinMax, as_tensor, broadcasting, norm_dims, unbroadcast  # noqa: F401  (first: the others use them)
from .elementwise import Abs, Cast, Clamp, Clone, Exp, Log, Relu, Sigmoid, Sqrt, Tanh, Where, _max0, where  # noqa: F401
from .arithmetic import Add, Div, MatMul, Maximum, Minimum, Mul, Neg, Pow, Sub, binary  # noqa: F401
from .reduction import Amax, Amin, PutAlongDim, Sum, TakeAlongDim, max_along  # noqa: F401
from .shape import Cat, Expand, Pad, Permute, Reshape, cat, pad, stack  # noqa: F401
from .indexing import Copy, GetItem, IndexAdd, SetItem, index_view, torch_index  # noqa: F401
