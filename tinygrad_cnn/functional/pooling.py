"""Pooling: `max_pool2d` (the gradient to each window's maximum) and `avg_pool2d`."""
from __future__ import annotations

import numpy as np

from .. import kernels
from ..errors import DTypeError, InvalidArgumentError
from ..tensor import Function, Tensor, op_scope
from ._utils import _accepts_unbatched, _cached, _check_4d, _geometry


class MaxPool2d(Function):
    """Max over windows; the gradient goes to each window's first maximum (`PoolScatter`)."""

    SAVES = {0: (0,)}  # as PyTorch's (its backward reads the input); ours reads the argmax only

    def forward(self, x, geom):
        out, self.arg = kernels.max_pool(x, *geom, with_arg=self.needs_input_grad[0])
        return out

    def backward(self, g):
        return PoolScatter.apply(g, arg=self.arg, shape=self.inputs[0].shape, geom=self.attrs["geom"])


class PoolScatter(Function):
    """(N, C, OH, OW) -> (N, C, H, W): each value to its window's recorded maximum. Backward: `PoolGather`."""

    HEAVY_ATTRS = ("arg",)

    def forward(self, g, arg, shape, geom):
        kernel, stride, padding, dilation, _ = geom
        return kernels.pool_scatter(g, arg, shape, kernel, stride, padding, dilation)

    def backward(self, gg):
        return PoolGather.apply(gg, arg=self.attrs["arg"], geom=self.attrs["geom"])


class PoolGather(Function):
    """(N, C, H, W) -> (N, C, OH, OW): the values at the recorded maxima. Backward: `PoolScatter`."""

    HEAVY_ATTRS = ("arg",)

    def forward(self, x, arg, geom):
        kernel, stride, padding, dilation, _ = geom
        return kernels.pool_gather(x, arg, kernel, stride, padding, dilation)

    def backward(self, g):
        return PoolScatter.apply(g, arg=self.attrs["arg"], shape=self.inputs[0].shape, geom=self.attrs["geom"])


def _pool_geometry(name, input, kernel_size, stride, padding, dilation, ceil_mode):
    _check_4d(name, input)
    return _pool_window(name, input.shape, kernel_size, stride, padding, dilation, ceil_mode)


@_cached
def _pool_window(name, shape, kernel_size, stride, padding, dilation, ceil_mode):
    """Pooling's geometry for an input of `shape` (see `_geometry`), with the padding that
    ceil_mode adds at the bottom and right."""
    stride = kernel_size if stride is None or stride == () else stride
    kernel, stride, pads, dilation, out_hw = _geometry(name, shape, kernel_size, stride, padding, dilation, ceil_mode)
    for (lo, _), k in zip(pads, kernel):
        if lo > k // 2:
            raise InvalidArgumentError(f"{name}: padding {lo} must be at most half the kernel size {kernel}")
    # ceil_mode may need extra rows/cols of padding at the bottom/right
    pads = tuple((lo, max(hi, (o - 1) * s + d * (k - 1) + 1 - size - lo))
                 for (lo, hi), o, s, d, k, size in zip(pads, out_hw, stride, dilation, kernel, shape[2:]))
    return kernel, stride, pads, dilation, out_hw


@_accepts_unbatched
def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max pooling, as `torch.nn.functional.max_pool2d`: (N, C, H, W) -> (N, C, OH, OW).

    stride defaults to kernel_size; padding is -inf. With `return_indices`, also returns
    the flat index (h * W + w) of each maximum in its input plane, as PyTorch does.
    """
    geom = _pool_geometry("max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode)
    with op_scope("max_pool2d", kernel_size=geom[0], stride=geom[1], padding=geom[2], dilation=geom[3]):
        out = MaxPool2d.apply(input, geom=geom)
    if not return_indices:
        return out
    arg = out._ctx.arg if out._ctx is not None else kernels.max_pool(input.data, *geom)[1]  # unrecorded: no arg kept
    return out, Tensor._make(_flat_indices(input.shape, geom, arg))


def _flat_indices(shape, geom, arg):
    kernel, stride, pads, dilation, (oh, ow) = geom
    i, j = np.divmod(arg.astype(np.int64), kernel[1])
    rows = np.arange(oh)[:, None] * stride[0] + i * dilation[0] - pads[0][0]
    cols = np.arange(ow)[None, :] * stride[1] + j * dilation[1] - pads[1][0]
    return rows * shape[3] + cols


class AvgPool2d(Function):
    """Mean over windows (`kernels.avg_pool`); `count` is each window's divisor. Backward: `AvgPoolScatter`."""

    SAVES = {0: (0,)}  # as PyTorch's avg_pool2d, whose backward takes the input

    def forward(self, x, geom, count):
        kernel, stride, padding, _, out_hw = geom
        return kernels.avg_pool(x, kernel, stride, padding, out_hw, count)

    def backward(self, g):
        return AvgPoolScatter.apply(g, shape=self.inputs[0].shape, geom=self.attrs["geom"], count=self.attrs["count"])


class AvgPoolScatter(Function):
    """(N, C, OH, OW) -> (N, C, H, W): each value divided by its window's count and added over
    the window, the adjoint of `AvgPool2d`. Backward: `AvgPool2d`."""

    def forward(self, g, shape, geom, count):
        kernel, stride, padding, _, _ = geom
        return kernels.avg_pool_scatter(g, shape, kernel, stride, padding, count)

    def backward(self, gg):
        return AvgPool2d.apply(gg, geom=self.attrs["geom"], count=self.attrs["count"])


@_cached
def _axis_counts(size, k, s, lo, pad_counts, out):
    """How many positions of an axis of `size` (padded by `lo` in front) each of the `out`
    windows (kernel k, stride s) averages: a read-only (out,) array. The user's padding
    counts on both sides with `pad_counts`; ceil_mode's extra padding never does. Memoized:
    small, and a network asks for the same few at every step."""
    p = lo if pad_counts else 0
    starts = np.arange(out) * s
    counts = np.minimum(starts + k, lo + size + p) - np.maximum(starts, lo - p)
    counts.flags.writeable = False
    return counts


def _window_counts(hw, geom, count_include_pad, dtype):
    """How many positions each window over an (H, W) plane averages: a (1, 1, OH, OW) array,
    or one number when all are equal. The padded window is a rectangle, so each count is
    the product of its row's and its column's."""
    kernel, stride, ((t, _), (left, _)), _, out_hw = geom
    rows = _axis_counts(hw[0], kernel[0], stride[0], t, count_include_pad, out_hw[0])
    cols = _axis_counts(hw[1], kernel[1], stride[1], left, count_include_pad, out_hw[1])
    if (rows == rows[0]).all() and (cols == cols[0]).all():
        return np.dtype(dtype).type(rows[0] * cols[0])
    return np.multiply.outer(rows, cols).astype(dtype).reshape(1, 1, *out_hw)


@_accepts_unbatched
def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True) -> Tensor:
    """Average pooling, as `torch.nn.functional.avg_pool2d`: (N, C, H, W) -> (N, C, OH, OW).

    Each window's sum over the zero-padded input, divided by its count (of padded
    positions too when `count_include_pad`); one op (`AvgPool2d`), its gradient another.
    """
    geom = _pool_geometry("avg_pool2d", input, kernel_size, stride, padding, 1, ceil_mode)
    if input.dtype.kind != "f":
        raise DTypeError(f"avg_pool2d: input must be floating point, got dtype {input.dtype}")
    count = _window_counts(input.shape[2:], geom, count_include_pad, input.dtype)
    with op_scope("avg_pool2d", kernel_size=geom[0], stride=geom[1], padding=geom[2]):
        return AvgPool2d.apply(input, geom=geom, count=count)
