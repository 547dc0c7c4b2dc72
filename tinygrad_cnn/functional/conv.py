"""Convolution: im2col (`unfold`) and col2im (`fold`), the lecture's `im2col` / `col2im`, and
`conv2d` as one fused op whose gradients are `ConvTranspose2d` and `Conv2dWeight`."""
from __future__ import annotations

import numpy as np

from .. import kernels
from ..autograd.function import Part
from ..errors import ShapeError
from ..tensor import Function, Tensor, op_scope
from ._utils import _accepts_unbatched, _check_4d, _geometry, _same_dtype, _saved_for_backward


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
