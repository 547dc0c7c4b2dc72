"""Pictures of what a CNN learned, in matplotlib (imported when a picture is made): the first
layer's filters, and what they make of one image.

    fig = plot_filters(net.W1)                                    # a panel per filter
    fig = plot_feature_maps(nn.Sequential(conv, nn.ReLU()), image)  # a panel per channel
    save_figure(fig, "filters.png")                               # written atomically
"""
from __future__ import annotations

import io
import math
import os

import numpy as np

from .._io import atomic_write
from ..autograd.grad_mode import no_grad
from ..dtypes import get_default_dtype
from ..tensor import Tensor


def _array(x) -> np.ndarray:
    return np.asarray(x.data if isinstance(x, Tensor) else x)


def _panels(n, ncols, lead=False):
    """(figure, first, axes): a Figure with n image panels, ncols to a row, after a first
    panel as tall as the grid when `lead` (else first is None). No pyplot: no global state."""
    from matplotlib.figure import Figure
    ncols = max(1, min(n, ncols))
    nrows = math.ceil(n / ncols)
    lead_width = max(nrows, 2) if lead else 0
    fig = Figure(figsize=(0.9 * (ncols + lead_width) + 0.4, 0.95 * nrows + 0.7), layout="constrained")
    gs = fig.add_gridspec(nrows, ncols + bool(lead), width_ratios=[lead_width] * bool(lead) + [1] * ncols)
    first = fig.add_subplot(gs[:, 0]) if lead else None
    axes = [fig.add_subplot(gs[i // ncols, bool(lead) + i % ncols]) for i in range(n)]
    return fig, first, axes


def _show(ax, img, cmap, title=None, vmin=None, vmax=None):
    ax.imshow(img, cmap=cmap, interpolation="nearest", vmin=vmin, vmax=vmax)
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=7, pad=2)


def _unit_range(img: np.ndarray) -> np.ndarray:
    """An RGB image (H, W, 3) scaled to 0..1, as imshow draws colours."""
    lo, span = img.min(), img.max() - img.min()
    return (img - lo) / span if span > 0 else np.zeros_like(img, dtype=np.float64)


def _filter_images(w: np.ndarray, channel) -> list:
    """One (KH, KW) or (KH, KW, 3) image per filter of w (OC, C, KH, KW)."""
    oc, c = w.shape[:2]
    if channel is not None:
        if not isinstance(channel, (int, np.integer)) or not 0 <= channel < c:
            raise ValueError(f"plot_filters: channel must be an int in [0, {c}) for weight of shape {w.shape}, "
                             f"got {channel!r}")
        return list(w[:, channel])
    if c == 1:
        return list(w[:, 0])
    if c == 3:  # colour filters: each scaled to 0..1 over its three channels
        return [_unit_range(f.transpose(1, 2, 0)) for f in w]
    raise ValueError(f"plot_filters: weight of shape {w.shape} has {c} input channels; pass channel= to pick "
                     "one (1 and 3 channels are drawn as gray and RGB)")


def plot_filters(weight, channel=None, ncols=10, cmap="gray", shared_scale=False, title=None):
    """A matplotlib Figure with one panel per filter of a conv weight (OC, C, KH, KW).

    Each panel shows a filter's KH x KW values, dark for low and light for high: scaled
    per panel (the pattern each filter looks for), or over all filters with
    `shared_scale`. One input channel is drawn in `cmap`, three as RGB; with more,
    `channel` picks the one to draw. Panels are numbered by filter, `ncols` to a row.
    """
    w = _array(weight).astype(np.float64)
    if w.ndim != 4:
        raise ValueError(f"plot_filters: weight must be 4-D (out_channels, in_channels, KH, KW), got shape {w.shape}")
    if w.shape[0] == 0:
        raise ValueError(f"plot_filters: weight of shape {w.shape} has no filters")
    images = _filter_images(w, channel)
    vmin, vmax = (w.min(), w.max()) if shared_scale else (None, None)
    fig, _, axes = _panels(len(images), ncols)
    for i, (ax, img) in enumerate(zip(axes, images)):
        _show(ax, img, cmap, str(i), vmin, vmax)
    fig.suptitle(title or f"{len(images)} filters {w.shape[2]}x{w.shape[3]}", fontsize=10)
    return fig


def _image_batch(image, dtype) -> Tensor:
    """(H, W), (C, H, W) or (1, C, H, W) -> a (1, C, H, W) Tensor of `dtype`."""
    x = _array(image)
    if x.ndim == 2:
        x = x[None]
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"plot_feature_maps: image must be one image, (H, W), (C, H, W) or (1, C, H, W), got shape "
                         f"{x.shape}")
    return Tensor(x.astype(dtype))


def _param_dtype(model_or_fn):
    params = getattr(model_or_fn, "parameters", None)
    first = next(iter(params()), None) if callable(params) else None
    return first.dtype if first is not None else get_default_dtype()


def plot_feature_maps(model_or_fn, image, ncols=10, cmap="gray", show_input=True, title=None):
    """A matplotlib Figure with one panel per channel of `model_or_fn(image)`.

    model_or_fn: a Module or function taking (1, C, H, W) images to feature maps
    (1, K, OH, OW) or (K, OH, OW), e.g. a network's first conv and ReLU
    (`lambda x: F.conv2d(x, net.W1, net.b1).relu()`); it runs under no_grad.
    image: (H, W), (C, H, W) or (1, C, H, W), an array or Tensor (cast to the model's
    parameters' dtype). With `show_input`, the image comes first, in its own larger panel.
    """
    if not callable(model_or_fn):
        raise TypeError(f"plot_feature_maps: model_or_fn must be a Module or function, got "
                        f"{type(model_or_fn).__name__}")
    x = _image_batch(image, _param_dtype(model_or_fn))
    with no_grad():
        maps = _array(model_or_fn(x))
    if maps.ndim == 4 and maps.shape[0] == 1:
        maps = maps[0]
    if maps.ndim != 3:
        raise ValueError(f"plot_feature_maps: {getattr(model_or_fn, '__name__', type(model_or_fn).__name__)} "
                         f"gave shape {maps.shape} for an image of shape {x.shape}; it must give feature maps "
                         "(1, K, OH, OW), as a network's first conv layer and activation do")
    fig, first, axes = _panels(len(maps), ncols, lead=show_input)
    if first is not None:
        img = _unit_range(x.data[0].transpose(1, 2, 0)) if x.shape[1] == 3 else x.data[0, 0]
        _show(first, img, cmap, "input")
    for i, (ax, m) in enumerate(zip(axes, maps)):
        _show(ax, m, cmap, str(i))
    fig.suptitle(title or f"{len(maps)} feature maps {maps.shape[1]}x{maps.shape[2]}", fontsize=10)
    return fig


def save_figure(fig, path: str, dpi=100) -> str:
    """Write a matplotlib Figure to `path` (format from its extension, e.g. .png, .svg),
    atomically: nothing half-written is left behind. Returns the path."""
    buf = io.BytesIO()
    fig.savefig(buf, format=os.path.splitext(path)[1].lstrip(".") or "png", dpi=dpi)
    atomic_write(path, buf.getvalue())
    return path
