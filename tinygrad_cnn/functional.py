"""Neural-network ops with `torch.nn.functional`'s names, arguments and defaults.

`import tinygrad_cnn.functional as F`. Where an op is built from others (conv2d is
im2col + one matrix product) its gradient comes from theirs; the ops that need a rule
of their own (`Unfold`/`Fold`, `MaxPool2d`, `LogSoftmax`, `Softmax`, `NllLoss`) define it next to
their forward, in Tensor ops, so `create_graph=True` works through all of them.
"""
from __future__ import annotations

import functools

import numpy as np

from . import kernels
from .errors import DTypeError, IndexOutOfRangeError, InvalidArgumentError, ShapeError, dim_out_of_range
from .ops import pad, where  # noqa: F401  (pad is part of F's API)
from .rng import get_rng
from .autograd.function import Part
from .tensor import Function, Tensor, is_grad_enabled, op_scope

__all__ = [
    "conv2d", "max_pool2d", "avg_pool2d", "relu", "leaky_relu", "sigmoid", "tanh", "softmax",
    "log_softmax", "linear", "dropout", "flatten", "cross_entropy", "nll_loss", "pad", "unfold", "fold",
    "im2col", "col2im",
]


# ----------------------------------------------------------------------------- geometry


def _accepts_unbatched(fn):
    """Let an (N, C, H, W) op take one (C, H, W) image too, as PyTorch's do."""
    @functools.wraps(fn)
    def wrapper(input, *args, **kwargs):
        if isinstance(input, Tensor) and input.ndim == 3:
            out = fn(input.unsqueeze(0), *args, **kwargs)
            return tuple(o.squeeze(0) for o in out) if isinstance(out, tuple) else out.squeeze(0)
        return fn(input, *args, **kwargs)

    return wrapper


def _same_dtype(name, input: Tensor, weight: Tensor, bias) -> None:
    """PyTorch refuses an input whose dtype differs from the parameters'; say what to cast."""
    if input.dtype != weight.dtype or (bias is not None and bias.dtype != weight.dtype):
        extra = f", bias {bias.dtype}" if bias is not None and bias.dtype != weight.dtype else ""
        raise DTypeError(f"{name}: input is {input.dtype} but weight is {weight.dtype}{extra}; cast the input "
                         f"with x.to({weight.dtype}) (or the module's parameters with module.to({input.dtype}))")


def _saved_for_backward(**pairs) -> dict | None:
    """The tensors a composite op reads in backward, when it is being recorded (see op_scope)."""
    if not is_grad_enabled():
        return None
    return {name: t for name, (t, needed) in pairs.items() if needed}


def _check_4d(name, x: Tensor):
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: input must be a Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ShapeError(f"{name}: input must be 4-D (N, C, H, W) or 3-D (C, H, W), got shape {x.shape}")


def _geometry(name, shape, kernel, stride, padding, dilation, ceil_mode=False):
    """Validate the window parameters; return (kernel, stride, ((t, b), (l, r)), dilation, (OH, OW))."""
    kernel, stride, dilation = kernels.pair(kernel, "kernel_size"), kernels.pair(stride, "stride"), \
        kernels.pair(dilation, "dilation")
    if min(kernel) <= 0 or min(stride) <= 0 or min(dilation) <= 0:
        raise InvalidArgumentError(f"{name}: kernel {kernel}, stride {stride} and dilation {dilation} must be positive")
    if isinstance(padding, str):
        if padding == "valid":
            padding = ((0, 0), (0, 0))
        elif padding == "same":
            if stride != (1, 1):
                raise InvalidArgumentError(f"{name}: padding='same' needs stride 1, got stride {stride}")
            total = [d * (k - 1) for k, d in zip(kernel, dilation)]
            padding = tuple((t // 2, t - t // 2) for t in total)
        else:
            raise InvalidArgumentError(f"{name}: padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    else:
        ph, pw = kernels.pair(padding, "padding")
        if ph < 0 or pw < 0:
            raise InvalidArgumentError(f"{name}: padding must be non-negative, got {(ph, pw)}")
        padding = ((ph, ph), (pw, pw))
    h, w = shape[2:]
    eff = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    for size, (lo, hi), e, axis in zip((h, w), padding, eff, "HW"):
        if e > size + lo + hi:
            raise ShapeError(f"{name}: kernel {kernel} (dilated extent {e}) is larger than the padded input "
                             f"{axis}={size + lo + hi} (input shape {shape}, padding {padding})")
    out_hw = tuple(kernels.output_size(size, k, s, lo, hi, d, ceil_mode)
                   for size, k, s, (lo, hi), d in zip((h, w), kernel, stride, padding, dilation))
    return kernel, stride, padding, dilation, out_hw


# ----------------------------------------------------------------------------- im2col


class Unfold(Function):
    """im2col: (N, C, H, W) -> (N, C*KH*KW, OH*OW) (`kernels.unfold`). Its backward is `Fold` (col2im)."""

    def forward(self, x, geom):
        return kernels.unfold(x, *geom)

    def backward(self, g):
        return Fold.apply(g, shape=self.inputs[0].shape, geom=self.attrs["geom"])


class Fold(Function):
    """col2im: (N, C*KH*KW, OH*OW) -> (N, C, H, W), adding overlaps. Its backward is `Unfold`."""

    def forward(self, cols, shape, geom):
        return kernels.fold(cols, shape, *geom)

    def backward(self, g):
        return Unfold.apply(g, geom=self.attrs["geom"])


def unfold(input: Tensor, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """Differentiable im2col, as `torch.nn.functional.unfold`: (N, C, H, W) -> (N, C*KH*KW, OH*OW).

    Row (c, kh, kw) holds what kernel offset (kh, kw) of channel c meets at each output position.
    """
    _check_4d("unfold", input)
    geom = _geometry("unfold", input.shape, kernel_size, stride, padding, dilation)
    return Unfold.apply(input, geom=geom)


def fold(input: Tensor, output_size, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """Differentiable col2im, as `torch.nn.functional.fold`: (N, C*KH*KW, L) -> (N, C, H, W),
    with output_size = (H, W); the adjoint of `unfold`, so overlapping windows add up."""
    if input.ndim != 3:
        raise ShapeError(f"fold: input must be 3-D (N, C*KH*KW, L), got shape {input.shape}")
    kh, kw = kernels.pair(kernel_size, "kernel_size")
    n, ck, length = input.shape
    if ck % (kh * kw):
        raise ShapeError(f"fold: input dim 1 ({ck}) is not divisible by the kernel size {kh}x{kw}")
    h, w = kernels.pair(output_size, "output_size")
    shape = (n, ck // (kh * kw), h, w)
    geom = _geometry("fold", shape, (kh, kw), stride, padding, dilation)
    if geom[-1][0] * geom[-1][1] != length:
        raise ShapeError(f"fold: input has {length} blocks, but output_size {(h, w)} with kernel {(kh, kw)} "
                         f"gives {geom[-1][0]} x {geom[-1][1]}")
    return Fold.apply(input, shape=shape, geom=geom)


def im2col(input_data, filter_h, filter_w, stride=1, pad=0) -> np.ndarray:
    """The lecture's im2col: (N, C, H, W) array -> (N*out_h*out_w, C*filter_h*filter_w) array.

    Same signature and layout as the lecture; keeps the input dtype; no Python loop.
    """
    x = np.asarray(input_data.data if isinstance(input_data, Tensor) else input_data)
    if x.ndim != 4:
        raise ValueError(f"im2col: input_data must be 4-D (N, C, H, W), got shape {x.shape}")
    kernel, stride, padding, _, out_hw = _geometry("im2col", x.shape, (filter_h, filter_w), stride, pad, 1)
    return kernels.im2col(x, kernel, stride, padding, out_hw)


def col2im(col, input_shape, filter_h, filter_w, stride=1, pad=0) -> np.ndarray:
    """The lecture's col2im: (N*out_h*out_w, C*filter_h*filter_w) -> (N, C, H, W) array, adding overlaps."""
    col = np.asarray(col.data if isinstance(col, Tensor) else col)
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 4:
        raise ValueError(f"col2im: input_shape must be (N, C, H, W), got {input_shape}")
    kernel, stride, padding, _, out_hw = _geometry("col2im", shape, (filter_h, filter_w), stride, pad, 1)
    expect = (shape[0] * out_hw[0] * out_hw[1], shape[1] * filter_h * filter_w)
    if col.shape != expect:
        raise ValueError(f"col2im: col has shape {col.shape}, expected {expect} for input_shape {shape}")
    return kernels.col2im(col, shape, kernel, stride, padding, out_hw)


# ----------------------------------------------------------------------------- convolution


def _weight_matrix(w: np.ndarray, b) -> np.ndarray:
    """(OC, C, KH, KW) weight and (OC,) bias or None -> (OC, C*KH*KW [+1]): the bias as a last column."""
    wmat = w.reshape(w.shape[0], -1)
    return wmat if b is None else np.concatenate([wmat, b.reshape(-1, 1).astype(wmat.dtype, copy=False)], axis=1)


def _conv_sizes(x_shape, w_shape, geom) -> tuple:
    """(N, OC, C*KH*KW, OH*OW, (OH, OW)) of a conv2d."""
    (kh, kw), out_hw = geom[0], geom[-1]
    return x_shape[0], w_shape[0], x_shape[1] * kh * kw, out_hw[0] * out_hw[1], out_hw


def _conv_parts(x_shape, w_shape, bias: bool, geom) -> list:
    """What conv2d computes, for drawing: im2col of x and the weight as an (OC, C*KH*KW) matrix
    (the bias as one more column, with a row of ones in the columns), one matrix product."""
    n, oc, k, length, (oh, ow) = _conv_sizes(x_shape, w_shape, geom)
    parts = [Part("reshape", {}, (("in", 1),), (oc, k))]
    if bias:
        parts += [Part("reshape", {}, (("in", 2),), (oc, 1)),
                  Part("unfold", {"geom": geom, "ones_row": True}, (("in", 0),), (n, k + 1, length)),
                  Part("cat", {}, (("step", 0), ("step", 1)), (oc, k + 1))]
        weight, cols = ("step", 3), ("step", 2)
    else:
        parts.append(Part("unfold", {"geom": geom}, (("in", 0),), (n, k, length)))
        weight, cols = ("step", 0), ("step", 1)
    parts.append(Part("matmul", {}, (weight, cols), (n, oc, length)))
    return parts + [Part("reshape", {}, (("step", len(parts) - 1),), (n, oc, oh, ow))]


class Conv2d(Function):
    """input (N, C, H, W), weight (OC, C, KH, KW), bias (OC,) or None -> (N, OC, OH, OW), laid out
    with the batch innermost (`kernels.conv2d`). Saves no columns: backward recomputes them.
    Backward: `ConvTranspose2d` for the input, `Conv2dWeight` for the weight and bias."""

    SAVES = {0: (1,), 1: (0,), 2: (0,)}

    def forward(self, x, w, b, geom):
        return kernels.conv2d(x, _weight_matrix(w, b), *geom)

    def backward(self, g):
        x, w, b = self.inputs
        geom = self.attrs["geom"]
        gx = ConvTranspose2d.apply(g, w, shape=x.shape, geom=geom) if self.needs_input_grad[0] else None
        return (gx,) + _weight_and_bias_grads(x, g, w, b, geom, self.needs_input_grad[1:])

    def parts(self) -> list:
        """im2col -> matmul (+ bias), the steps this op fuses (see `_conv_parts`)."""
        x, w, b = self.inputs
        return _conv_parts(x.shape, w.shape, b is not None, self.attrs["geom"])


def _weight_and_bias_grads(x, g, w, b, geom, needs):
    """(weight gradient, bias gradient) of conv2d(x, w, b) for output gradient g; None where not needed."""
    if not any(needs):
        return None, None
    m = Conv2dWeight.apply(x, g, geom=geom, ones_row=b is not None and needs[1])  # (OC, C*KH*KW [+1])
    k = w.numel() // w.shape[0]
    gw = (m if m.shape[1] == k else m[:, :k]).reshape(w.shape) if needs[0] else None
    return gw, (m[:, k] if b is not None and needs[1] else None)


class ConvTranspose2d(Function):
    """The adjoint of conv2d in its input: g (N, OC, OH, OW), weight (OC, C, KH, KW) -> (N, C, H, W)
    (`shape`). Backward: conv2d of the incoming gradient for g, `Conv2dWeight` for the weight."""

    SAVES = {0: (1,), 1: (0,)}

    def forward(self, g, w, shape, geom):
        return kernels.conv2d_input_grad(g, w, shape, *geom[:4])

    def backward(self, gg):
        g, w = self.inputs
        geom = self.attrs["geom"]
        dg = Conv2d.apply(gg, w, None, geom=geom) if self.needs_input_grad[0] else None
        dw = _weight_and_bias_grads(gg, g, w, None, geom, (self.needs_input_grad[1], False))[0]
        return dg, dw

    def parts(self) -> list:
        """The weight matrix's transpose times g, then col2im: what this op computes, for drawing."""
        g, w = self.inputs
        n, oc, k, length, _ = _conv_sizes(self.attrs["shape"], w.shape, self.attrs["geom"])
        return [Part("reshape", {}, (("in", 1),), (oc, k)), Part("reshape", {}, (("in", 0),), (n, oc, length)),
                Part("matmul", {"transpose": "weight"}, (("step", 0), ("step", 1)), (n, k, length)),
                Part("fold", {"geom": self.attrs["geom"]}, (("step", 2),), tuple(self.attrs["shape"]))]


class Conv2dWeight(Function):
    """The gradient of conv2d's weight (and bias, with `ones_row`) as one (OC, C*KH*KW [+1])
    matrix: x (N, C, H, W) and output gradient g (N, OC, OH, OW). It is linear in each: backward
    gives `ConvTranspose2d` for x and a conv2d of x with the incoming matrix for g."""

    SAVES = {0: (1,), 1: (0,)}

    def forward(self, x, g, geom, ones_row):
        return kernels.conv2d_weight_grad(x, g, *geom[:4], ones_row=ones_row)

    def backward(self, gm):
        x, g = self.inputs
        geom, (kh, kw) = self.attrs["geom"], self.attrs["geom"][0]
        k = x.shape[1] * kh * kw
        gw = (gm[:, :k] if self.attrs["ones_row"] else gm).reshape(g.shape[1], x.shape[1], kh, kw)
        gb = gm[:, k] if self.attrs["ones_row"] else None
        dx = ConvTranspose2d.apply(g, gw, shape=x.shape, geom=geom) if self.needs_input_grad[0] else None
        dg = Conv2d.apply(x, gw, gb, geom=geom) if self.needs_input_grad[1] else None
        return dx, dg

    def parts(self) -> list:
        """g times the columns' transpose, summed over the batch: what this op computes, for drawing."""
        x, g = self.inputs
        geom, ones = self.attrs["geom"], self.attrs["ones_row"]
        n, oc, k, length, _ = _conv_sizes(x.shape, g.shape[:2] + (0, 0), geom)
        k += bool(ones)
        return [Part("unfold", {"geom": geom, "ones_row": ones}, (("in", 0),), (n, k, length)),
                Part("reshape", {}, (("in", 1),), (n, oc, length)),
                Part("matmul", {"transpose": "columns"}, (("step", 1), ("step", 0)), (n, oc, k)),
                Part("sum", {"dim": 0}, (("step", 2),), (oc, k))]


@_accepts_unbatched
def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups=1) -> Tensor:
    """2-D cross-correlation, as `torch.nn.functional.conv2d`.

    input (N, C, H, W), weight (OC, C/groups, KH, KW), bias (OC,) -> (N, OC, OH, OW).
    With groups=1 one op (`Conv2d`): im2col and a matrix product per chunk of output rows,
    the batch innermost in memory; its gradients are `ConvTranspose2d` (the input's, only
    when the input requires grad) and `Conv2dWeight`. With groups > 1, im2col (`unfold`)
    and one batched matrix product per group, differentiated through theirs.
    """
    _check_4d("conv2d", input)
    if weight.ndim != 4:
        raise ShapeError(f"conv2d: weight must be 4-D (OC, C/groups, KH, KW), got shape {weight.shape}")
    n, c = input.shape[:2]
    oc, cg, kh, kw = weight.shape
    if groups <= 0 or c % groups or oc % groups:
        raise ShapeError(f"conv2d: groups={groups} must divide both input channels {c} and output channels {oc}")
    if cg * groups != c:
        raise ShapeError(f"conv2d: input has {c} channels but weight {weight.shape} expects {cg * groups} "
                         f"(= {cg} x groups {groups}); input shape {input.shape}")
    if bias is not None and bias.shape != (oc,):
        raise ShapeError(f"conv2d: bias must have shape ({oc},), got {bias.shape}")
    _same_dtype("conv2d", input, weight, bias)
    geom = _geometry("conv2d", input.shape, (kh, kw), stride, padding, dilation)
    oh, ow = geom[-1]
    saved = _saved_for_backward(input=(input, weight.requires_grad), weight=(weight, input.requires_grad))
    with op_scope("conv2d", saved, stride=geom[1], padding=geom[2], dilation=geom[3], groups=groups):
        if groups == 1:
            return Conv2d.apply(input, weight, bias, geom=geom)
        cols = Unfold.apply(input, geom=geom).reshape(n, groups, cg * kh * kw, oh * ow)
        out = (weight.reshape(groups, oc // groups, -1) @ cols).reshape(n, oc, oh, ow)  # (N, G, OC/G, L)
        return out if bias is None else out + bias.reshape(1, oc, 1, 1)


# ----------------------------------------------------------------------------- pooling


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
    stride = kernel_size if stride is None or stride == [] else stride
    kernel, stride, pads, dilation, out_hw = _geometry(name, input.shape, kernel_size, stride, padding, dilation,
                                                       ceil_mode)
    for (lo, _), k in zip(pads, kernel):
        if lo > k // 2:
            raise InvalidArgumentError(f"{name}: padding {lo} must be at most half the kernel size {kernel}")
    # ceil_mode may need extra rows/cols of padding at the bottom/right
    pads = tuple((lo, max(hi, (o - 1) * s + d * (k - 1) + 1 - size - lo))
                 for (lo, hi), o, s, d, k, size in zip(pads, out_hw, stride, dilation, kernel, input.shape[2:]))
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


def _window_counts(shape, geom, count_include_pad, dtype):
    """How many positions each window averages: (1, 1, OH, OW), or one number when all are equal.
    With count_include_pad the padding counts, but not the extra rows/cols that ceil_mode adds."""
    kernel, stride, ((t, b), (left, r)), _, out_hw = geom
    h, w = shape[2:]
    ph, pw = (t, left) if count_include_pad else (0, 0)
    mask = np.zeros((1, 1, h + t + b, w + left + r), dtype=dtype)
    mask[:, :, t - ph:t + h + ph, left - pw:left + w + pw] = 1
    count = kernels.avg_pool(mask, kernel, stride, ((0, 0), (0, 0)), out_hw, 1)  # window sums
    return count.flat[0] if (count == count.flat[0]).all() else count


@_accepts_unbatched
def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True) -> Tensor:
    """Average pooling, as `torch.nn.functional.avg_pool2d`: (N, C, H, W) -> (N, C, OH, OW).

    Each window's sum over the zero-padded input, divided by its count (of padded
    positions too when `count_include_pad`); one op (`AvgPool2d`), its gradient another.
    """
    geom = _pool_geometry("avg_pool2d", input, kernel_size, stride, padding, 1, ceil_mode)
    if input.dtype.kind != "f":
        raise DTypeError(f"avg_pool2d: input must be floating point, got dtype {input.dtype}")
    count = _window_counts(input.shape, geom, count_include_pad, input.dtype)
    with op_scope("avg_pool2d", kernel_size=geom[0], stride=geom[1], padding=geom[2]):
        return AvgPool2d.apply(input, geom=geom, count=count)


# ----------------------------------------------------------------------------- activations


def relu(input: Tensor) -> Tensor:
    """max(x, 0), elementwise; gradient 0 at 0, as in PyTorch."""
    return input.relu()


def leaky_relu(input: Tensor, negative_slope=0.01) -> Tensor:
    """x where x > 0, else negative_slope * x."""
    with op_scope("leaky_relu", negative_slope=negative_slope):
        return where(input.data > 0, input, input * negative_slope)


def sigmoid(input: Tensor) -> Tensor:
    """1 / (1 + exp(-x)), finite for any x."""
    return input.sigmoid()


def tanh(input: Tensor) -> Tensor:
    """Hyperbolic tangent, elementwise; same shape."""
    return input.tanh()


class LogSoftmax(Function):
    """x - logsumexp(x) along a dim; backward g - softmax * sum(g)."""

    SAVES = {0: ("out",)}

    def forward(self, x, dim):
        dim = dim if x.ndim else None
        z = x - x.max(axis=dim, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=dim, keepdims=True))

    def backward(self, g):
        dim = self.attrs["dim"]
        return g - self.output.exp() * g.sum(dim=dim, keepdim=True)


class Softmax(Function):
    """exp(x) / sum(exp(x)) along a dim; backward y * (g - sum(g * y))."""

    SAVES = {0: ("out",)}

    def forward(self, x, dim):
        dim = dim if x.ndim else None
        e = np.exp(x - x.max(axis=dim, keepdims=True))
        return e / e.sum(axis=dim, keepdims=True)

    def backward(self, g):
        y = self.output
        return y * (g - (g * y).sum(dim=self.attrs["dim"], keepdim=True))


def _check_dim(name, input, dim):
    if not isinstance(dim, (int, np.integer)) or not -max(input.ndim, 1) <= dim < max(input.ndim, 1):
        raise dim_out_of_range(name, dim, input.ndim)
    return int(dim) % max(input.ndim, 1)


def softmax(input: Tensor, dim: int) -> Tensor:
    """exp(x) / sum(exp(x)) along `dim` (shifted by the max: no overflow)."""
    return Softmax.apply(input, dim=_check_dim("softmax", input, dim))


def log_softmax(input: Tensor, dim: int) -> Tensor:
    """x - logsumexp(x) along `dim`, computed stably."""
    return LogSoftmax.apply(input, dim=_check_dim("log_softmax", input, dim))


# ----------------------------------------------------------------------------- layers as functions


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """input (*, in) @ weight (out, in).T + bias (out,) -> (*, out)."""
    if weight.ndim != 2 or input.shape[-1:] != weight.shape[1:]:
        raise ShapeError(f"linear: input {input.shape} does not fit weight {weight.shape} (out, in)")
    _same_dtype("linear", input, weight, bias)
    with op_scope("linear"):
        out = input @ weight.T
        return out if bias is None else out + bias


def dropout(input: Tensor, p=0.5, training=True) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p); identity when not training."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    keep = (get_rng().random(input.shape) >= p).astype(input.dtype) / input.dtype.type(1.0 - p)
    with op_scope("dropout", p=p):
        return input * Tensor._constant(keep)


def flatten(input: Tensor, start_dim=0, end_dim=-1) -> Tensor:
    """input with dims start_dim..end_dim merged: (N, C, H, W), 1 -> (N, C*H*W)."""
    return input.flatten(start_dim, end_dim)


# ----------------------------------------------------------------------------- losses

_REDUCTIONS = ("mean", "sum", "none")


def _class_last(input: Tensor, target=None):
    """(N, C, d1, ...) -> (N*d1*..., C) and the target to match."""
    if input.ndim <= 2:
        return input, target
    perm = (0,) + tuple(range(2, input.ndim)) + (1,)
    flat = input.permute(*perm).reshape(-1, input.shape[1])
    if target is not None:
        if target.ndim == input.ndim - 1:
            target = target.reshape(-1)
        elif isinstance(target, Tensor):
            target = target.permute(*perm).reshape(-1, input.shape[1])
        else:
            target = np.transpose(target, perm).reshape(-1, input.shape[1])
    return flat, target


def _target_array(target) -> np.ndarray:
    return np.asarray(target.data if isinstance(target, Tensor) else target)


def nll_loss(input: Tensor, target, weight=None, ignore_index=-100, reduction="mean") -> Tensor:
    """Negative log-likelihood of class indices: input (N, C) log-probabilities, target (N,) ints."""
    with op_scope("nll_loss", reduction=reduction):
        return _nll_loss(input, target, weight, ignore_index, reduction)


def _nll_loss(input, target, weight, ignore_index, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"nll_loss: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    t = _target_array(target)
    logp, t = _class_last(input, t)
    n, c = logp.shape if logp.ndim == 2 else (1, logp.shape[0])
    logp = logp.reshape(n, c)
    t = t.reshape(-1)
    _check_labels("nll_loss", t, n, c, ignore_index)
    valid = t != ignore_index
    safe = np.where(valid, t, 0)
    w = np.ones(c, dtype=logp.dtype) if weight is None else _target_array(weight).astype(logp.dtype)
    wt = np.where(valid, w[safe], 0).astype(logp.dtype)
    loss = NllLoss.apply(logp, target=safe, weight=wt, reduction=reduction)
    if reduction == "none" and input.ndim != 2:  # back to (N, d1, ...), or () for a single unbatched row
        return loss.reshape(input.shape[0], *input.shape[2:]) if input.ndim > 2 else loss.reshape(())
    return loss


class NllLoss(Function):
    """-weight[i] * logp[i, target[i]] for each row i of logp (M, C), then summed, averaged
    over the weights ('mean') or kept (M,) ('none'). Backward: -weight * grad at the targets."""

    HEAVY_ATTRS = ("target", "weight")

    def forward(self, logp, target, weight, reduction):
        loss = -(logp[np.arange(len(target)), target] * weight)
        if reduction == "none":
            return loss
        total = loss.sum(dtype=logp.dtype)
        return np.asarray(total / weight.sum() if reduction == "mean" else total, dtype=logp.dtype)

    def backward(self, g):
        logp = self.inputs[0]
        t, w, reduction = self.attrs["target"], self.attrs["weight"], self.attrs["reduction"]
        coef = np.zeros(logp.shape, dtype=logp.dtype)
        coef[np.arange(len(t)), t] = -w / w.sum() if reduction == "mean" else -w
        return (g.reshape(-1, 1) if reduction == "none" else g) * Tensor._constant(coef)


def _check_labels(name, t, n, c, ignore_index):
    if not np.issubdtype(t.dtype, np.integer):
        raise InvalidArgumentError(f"{name}: class-index target must be integers, got dtype {t.dtype}")
    if t.shape != (n,):
        raise ValueError(f"{name}: target of shape {t.shape} does not match input batch {n}")
    bad = (t != ignore_index) & ((t < 0) | (t >= c))
    if bad.any():
        raise IndexOutOfRangeError(f"{name}: target labels {np.unique(t[bad]).tolist()} are out of range for {c} classes")


def _reduce(loss: Tensor, reduction, denom, input, target):
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.sum() / float(denom)
    if input.ndim > 2:  # back to (N, d1, ...)
        return loss.reshape(input.shape[0], *input.shape[2:])
    return loss.reshape(()) if input.ndim == 1 else loss


def cross_entropy(input: Tensor, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0) -> Tensor:
    """Softmax cross-entropy from raw logits, as `torch.nn.functional.cross_entropy`.

    input (N, C) (or (N, C, d1, ...)); target is class indices (N,) or, like the
    lecture's SoftmaxWithLoss, one-hot / probability rows of the input's shape.
    Uses log_softmax, so it is finite for logits of +-1000.
    """
    with op_scope("cross_entropy", reduction=reduction, label_smoothing=label_smoothing):
        return _cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing)


def _cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    if input.ndim == 0:
        raise ShapeError("cross_entropy: input must have a class dimension, got a scalar")
    cdim = 1 if input.ndim >= 2 else 0
    c = input.shape[cdim]
    logp = log_softmax(input, dim=cdim)
    t = _target_array(target)
    w = None if weight is None else _target_array(weight).astype(input.dtype)
    if w is not None and w.shape != (c,):
        raise ShapeError(f"cross_entropy: weight must have shape ({c},), got {w.shape}")
    if np.issubdtype(t.dtype, np.floating):  # probabilities: a Tensor target gets a gradient too
        if t.shape != input.shape:
            raise ShapeError(f"cross_entropy: probability target of shape {t.shape} must match input {input.shape}")
        tt = target.to(input.dtype) if isinstance(target, Tensor) else Tensor._constant(t.astype(input.dtype))
        if label_smoothing:
            tt = tt * (1 - label_smoothing) + label_smoothing / c
        lp, tt = _class_last(logp, tt)
        lp, tt = lp.reshape(-1, c), tt.reshape(-1, c)
        wt = tt if w is None else tt * Tensor._constant(w)
        loss = -(lp * wt).sum(dim=1)
        return _reduce(loss, reduction, lp.shape[0], input, t)
    nll = nll_loss(logp, t, weight=w, ignore_index=ignore_index, reduction=reduction)
    if not label_smoothing:
        return nll
    # PyTorch's smoothing: (1 - e) * nll + e * mean over classes of -w_c log p_c
    lp, tt = _class_last(logp, t)
    lp, tt = lp.reshape(-1, c), tt.reshape(-1)
    valid = (tt != ignore_index).astype(input.dtype)
    wc = np.ones(c, dtype=input.dtype) if w is None else w
    smooth = -(lp * Tensor._constant(wc)).sum(dim=1) * Tensor._constant(valid) / c
    if reduction == "mean":
        denom = (wc[np.where(tt != ignore_index, tt, 0)] * valid).sum()
        smooth = smooth.sum() / float(denom)
    else:
        smooth = _reduce(smooth, reduction, None, input, t)
    return nll * (1 - label_smoothing) + smooth * label_smoothing


# ----------------------------------------------------------------------------- normalization, more losses
# Composed from Tensor ops: their gradients (and create_graph) come from the ops'.

import warnings  # noqa: E402

from .ops import stack  # noqa: E402
from .utils._inplace import write_  # noqa: E402

__all__ += ["batch_norm", "logsigmoid", "mse_loss", "l1_loss", "binary_cross_entropy",
            "binary_cross_entropy_with_logits"]


def _check_stat(what, t, c):
    if t is not None and tuple(t.shape) != (c,):
        raise ValueError(f"batch_norm: {what} must have shape ({c},) for {c} channels, got {tuple(t.shape)}")


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None, weight: Tensor | None = None,
               bias: Tensor | None = None, training=False, momentum=0.1, eps=1e-5) -> Tensor:
    """Normalize each channel of input (N, C, *) to mean 0 and variance 1, then scale by weight (C,)
    and shift by bias (C,).

    training: the batch's statistics over all dims but C (biased variance), with exact
    gradients through them; running_mean / running_var (C,), when given, are updated in
    place: r = (1 - momentum) * r + momentum * batch statistic (the variance unbiased).
    Not training: running_mean and running_var are used and not changed.
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"batch_norm: input must be a Tensor, got {type(input).__name__}")
    if input.ndim < 2:
        raise ValueError(f"batch_norm: input must be (N, C, *), got shape {input.shape}")
    c = input.shape[1]
    for what, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        _check_stat(what, t, c)
    dims = (0,) + tuple(range(2, input.ndim))
    shape = (1, c) + (1,) * (input.ndim - 2)
    with op_scope("batch_norm", training=training, eps=eps):
        if training:
            out = _batch_norm_train(input, running_mean, running_var, momentum, eps, dims)
        else:
            if running_mean is None or running_var is None:
                raise ValueError("batch_norm: running_mean and running_var are needed when not training")
            mean = running_mean.data.reshape(shape).astype(input.dtype)
            inv_std = (1.0 / np.sqrt(running_var.data.reshape(shape) + eps)).astype(input.dtype)
            out = (input - Tensor._constant(mean)) * Tensor._constant(inv_std)
        if weight is not None:
            out = out * weight.reshape(shape)
        return out if bias is None else out + bias.reshape(shape)


def _batch_norm_train(input, running_mean, running_var, momentum, eps, dims):
    n = input.numel() // input.shape[1]
    if n <= 1:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input of shape "
                         f"{input.shape}")
    mean = input.mean(dim=dims, keepdim=True)
    centered = input - mean
    var = (centered * centered).mean(dim=dims, keepdim=True)
    if running_mean is not None:
        write_(running_mean, (1 - momentum) * running_mean.data + momentum * mean.data.reshape(-1))
    if running_var is not None:
        write_(running_var, (1 - momentum) * running_var.data + momentum * var.data.reshape(-1) * (n / (n - 1)))
    return centered / (var + eps).sqrt()


def _log_sigmoids(input: Tensor) -> tuple:
    """(log sigmoid(x), log sigmoid(-x)), finite for any x: log_softmax over the pair (0, x)."""
    pair = log_softmax(stack([Tensor._constant(np.zeros(input.shape, input.dtype)), input]), dim=0)
    return pair[1], pair[0]


def logsigmoid(input: Tensor) -> Tensor:
    """log(1 / (1 + exp(-x))), elementwise and finite for any x."""
    with op_scope("logsigmoid"):
        return _log_sigmoids(input)[0]


def _operand(x, like: Tensor) -> Tensor:
    """x in like's dtype: a Tensor through a (differentiable) cast, anything else as a constant."""
    if isinstance(x, Tensor):
        return x if x.dtype == like.dtype else x.to(like.dtype)
    return Tensor._constant(np.asarray(x, dtype=like.dtype))


def _check_loss_args(name, input, reduction):
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}: input must be a Tensor, got {type(input).__name__}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _reduce_elementwise(loss: Tensor, reduction) -> Tensor:
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


def _broadcast_target(name, input, target) -> Tensor:
    """The target as a Tensor; a shape other than input's broadcasts with a warning, as in PyTorch."""
    t = _operand(target, input)
    if t.shape != input.shape:
        warnings.warn(f"{name}: target of shape {t.shape} differs from input of shape {input.shape}; they are "
                      "broadcast together, which is likely not what you want (as in PyTorch)", UserWarning,
                      stacklevel=3)
    return t


def mse_loss(input: Tensor, target, reduction="mean") -> Tensor:
    """(input - target)^2, averaged ('mean'), summed ('sum') or kept ('none')."""
    _check_loss_args("mse_loss", input, reduction)
    with op_scope("mse_loss", reduction=reduction):
        d = input - _broadcast_target("mse_loss", input, target)
        return _reduce_elementwise(d * d, reduction)


def l1_loss(input: Tensor, target, reduction="mean") -> Tensor:
    """|input - target| (gradient 0 where equal), averaged ('mean'), summed ('sum') or kept ('none')."""
    _check_loss_args("l1_loss", input, reduction)
    with op_scope("l1_loss", reduction=reduction):
        return _reduce_elementwise((input - _broadcast_target("l1_loss", input, target)).abs(), reduction)


def _same_shape_target(name, input, target) -> Tensor:
    t = _operand(target, input)
    if t.shape != input.shape:
        raise ValueError(f"{name}: target of shape {t.shape} must have the input's shape {input.shape}")
    return t


def _clamped_log(x: Tensor) -> Tensor:
    """max(log(x), -100) as PyTorch's binary_cross_entropy, with a zero (not NaN) gradient where x <= 0."""
    pos = x.data > 0
    lx = where(pos, x, 1.0).log()
    return where(pos & (lx.data > -100), lx, -100.0)


def binary_cross_entropy(input: Tensor, target, weight=None, reduction="mean") -> Tensor:
    """-weight * (t log(p) + (1 - t) log(1 - p)) for probabilities p in [0, 1] (logs clamped at -100)."""
    _check_loss_args("binary_cross_entropy", input, reduction)
    t = _same_shape_target("binary_cross_entropy", input, target)
    inside = (input.data >= 0) & (input.data <= 1)  # False for NaN too
    if not inside.all():
        bad = input.data[~inside]
        raise ValueError(f"binary_cross_entropy: all elements of input should be between 0 and 1, found "
                         f"{bad.ravel()[:5].tolist()} (use binary_cross_entropy_with_logits for raw scores)")
    with op_scope("binary_cross_entropy", reduction=reduction):
        loss = -(t * _clamped_log(input) + (1.0 - t) * _clamped_log(1.0 - input))
        if weight is not None:
            loss = loss * _operand(weight, input)
        return _reduce_elementwise(loss, reduction)


def binary_cross_entropy_with_logits(input: Tensor, target, weight=None, reduction="mean",
                                     pos_weight=None) -> Tensor:
    """binary_cross_entropy(sigmoid(x), t) computed stably from logits x:
    -weight * (pos_weight * t * log sigmoid(x) + (1 - t) * log sigmoid(-x)).

    pos_weight (broadcast along the last dim, e.g. (C,)) weights the positive targets.
    """
    _check_loss_args("binary_cross_entropy_with_logits", input, reduction)
    t = _same_shape_target("binary_cross_entropy_with_logits", input, target)
    with op_scope("binary_cross_entropy_with_logits", reduction=reduction):
        log_p, log_not_p = _log_sigmoids(input)
        positive = t * log_p if pos_weight is None else _operand(pos_weight, input) * t * log_p
        loss = -(positive + (1.0 - t) * log_not_p)
        if weight is not None:
            loss = loss * _operand(weight, input)
        return _reduce_elementwise(loss, reduction)
