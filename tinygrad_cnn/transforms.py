"""Image transforms with torchvision's names and arguments: Compose, ToTensor, Normalize,
RandomCrop, RandomHorizontalFlip, Lambda.

Without PIL, a numpy array plays the PIL image: (H, W) or (H, W, C), uint8 in 0..255, as
`np.asarray(pil_image)` gives. `ToTensor` turns it into a (C, H, W) float32 Tensor in
[0, 1]. RandomCrop and RandomHorizontalFlip take either form (arrays as (H, W[, C]),
Tensors as (..., H, W)) and return the same form, not recorded in the autograd graph.
Random draws come from the framework's generator (`manual_seed`). Each transform but
Lambda also works on a whole batch at once (see `batched`).
"""
from __future__ import annotations

import numbers

import numpy as np

from .ops import as_tensor
from .rng import get_rng
from .tensor import Tensor

__all__ = ["Compose", "ToTensor", "Normalize", "RandomCrop", "RandomHorizontalFlip", "Lambda"]


def batched(transform):
    """A function that applies `transform` to a whole batch at once -- N images stacked on a new
    first axis, as (N, H, W[, C]) arrays or (N, C, H, W) Tensors -- as calling it on each image
    would (random transforms draw for each image); None when the transform cannot do that
    (Lambda, user functions). DataLoader uses it to batch `datasets.MNIST` without a loop."""
    return getattr(transform, "_apply_batch", None)


class Compose:
    """Apply `transforms` in order."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        for i, t in enumerate(self.transforms):
            if not callable(t):
                raise TypeError(f"Compose: transform {i} ({type(t).__name__}) is not callable")

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img

    @property
    def _apply_batch(self):
        steps = [batched(t) for t in self.transforms]
        if any(f is None for f in steps):
            return None

        def run(imgs):
            for f in steps:
                imgs = f(imgs)
            return imgs
        return run

    def __repr__(self):
        return "Compose(\n" + "".join(f"    {t}\n" for t in self.transforms) + ")"


class Lambda:
    """Apply a user function."""

    def __init__(self, lambd):
        if not callable(lambd):
            raise TypeError(f"Lambda: argument should be callable, got {type(lambd).__name__}")
        self.lambd = lambd

    def __call__(self, img):
        return self.lambd(img)

    def __repr__(self):
        return "Lambda()"


def _image_array(pic, batch: bool = False) -> np.ndarray:
    """pic as an image array: (H, W[, C]), or (N, H, W[, C]) for a batch."""
    extra = 1 if batch else 0
    shape = "(N, H, W[, C])" if batch else "(H, W[, C])"
    if isinstance(pic, Tensor):
        raise TypeError(f"ToTensor: pic should be an image array {shape}, got a Tensor")
    if not isinstance(pic, np.ndarray):
        if not hasattr(pic, "__array_interface__") and not hasattr(pic, "__array__"):
            raise TypeError(f"ToTensor: pic should be an image array {shape}, got {type(pic).__name__}")
        pic = np.asarray(pic)  # a PIL image, for instance
    if pic.ndim - extra not in (2, 3):
        raise ValueError(f"ToTensor: pic should be {shape}, got shape {pic.shape}")
    if pic.dtype.kind not in "biuf":
        raise TypeError(f"ToTensor: pic of dtype {pic.dtype} is not numeric")
    return pic


class ToTensor:
    """(H, W) or (H, W, C) image array -> (C, H, W) Tensor. uint8 becomes float32 in [0, 1] (divided
    by 255); other dtypes keep their values and dtype (bool becomes uint8), as torchvision."""

    def __call__(self, pic) -> Tensor:
        return as_tensor(self._convert(_image_array(pic)[None])[0])

    def _apply_batch(self, pics) -> Tensor:
        return as_tensor(self._convert(_image_array(pics, batch=True)))

    @staticmethod
    def _convert(a: np.ndarray) -> np.ndarray:
        """(N, H, W[, C]) -> (N, C, H, W) in a new array."""
        nchw = (a[:, None] if a.ndim == 3 else a.transpose(0, 3, 1, 2))
        if a.dtype == np.uint8:
            return nchw.astype(np.float32) / np.float32(255.0)
        return np.ascontiguousarray(nchw, dtype=np.uint8 if a.dtype == bool else a.dtype)

    def __repr__(self):
        return "ToTensor()"


class Normalize:
    """(x - mean[c]) / std[c] for each channel c of a float Tensor (..., C, H, W); mean and std are
    sequences of C numbers (or one number for every channel)."""

    def __init__(self, mean, std, inplace: bool = False):
        self.mean, self.std, self.inplace = mean, std, inplace
        if np.any(np.asarray(std, dtype=np.float64) == 0):
            raise ValueError(f"Normalize: std evaluated to zero ({std}), leading to division by zero")

    def __call__(self, tensor: Tensor) -> Tensor:
        if not isinstance(tensor, Tensor):
            raise TypeError(f"Normalize: input should be a Tensor (use ToTensor first), got {type(tensor).__name__}")
        if tensor.dtype.kind != "f":
            raise TypeError(f"Normalize: input should be a float Tensor, got dtype {tensor.dtype}")
        if tensor.ndim < 3:
            raise ValueError(f"Normalize: expected a Tensor image (..., C, H, W), got shape {tensor.shape}")
        c = tensor.shape[-3]
        mean, std = (np.broadcast_to(np.asarray(v, dtype=tensor.dtype).reshape(-1), (c,)) if np.size(v) in (1, c)
                     else None for v in (self.mean, self.std))
        if mean is None or std is None:
            raise ValueError(f"Normalize: mean {self.mean} and std {self.std} need 1 or {c} values for {c} channels")
        mean, std = mean.reshape(c, 1, 1), std.reshape(c, 1, 1)
        if tensor.requires_grad:  # differentiable, through Tensor ops
            return (tensor - as_tensor(mean)) / as_tensor(std)
        return as_tensor((tensor.data - mean) / std)

    _apply_batch = __call__  # (N, C, H, W) broadcasts the same way

    def __repr__(self):
        return f"Normalize(mean={self.mean}, std={self.std})"


def _as_nhw(img, batch: bool):
    """(array (N, H, W, ...) with height and width at axes 1, 2, a function that restores img's layout)."""
    if isinstance(img, Tensor):
        if img.ndim < (3 if batch else 2):
            raise ValueError(f"expected a Tensor image {'(N, ..., H, W)' if batch else '(..., H, W)'}, "
                             f"got shape {img.shape}")
        a = np.moveaxis(img.data if batch else img.data[None], (-2, -1), (1, 2))

        def restore(out):
            out = np.moveaxis(out, (1, 2), (-2, -1))
            return as_tensor(np.ascontiguousarray(out if batch else out[0]))
        return a, restore
    if not isinstance(img, np.ndarray) or img.ndim - batch not in (2, 3):
        raise TypeError(f"expected an image array {'(N, H, W[, C])' if batch else '(H, W[, C])'} or a Tensor, got "
                        f"{type(img).__name__}{getattr(img, 'shape', '')}")
    return (img if batch else img[None]), (lambda out: out if batch else out[0])


def _pad_widths(padding) -> tuple[int, int, int, int]:
    """torchvision's padding: int (all sides), (left/right, top/bottom) or (left, top, right, bottom)."""
    if isinstance(padding, numbers.Integral):
        p = int(padding)
        return p, p, p, p
    padding = tuple(int(p) for p in padding)
    if len(padding) == 2:
        return padding[0], padding[1], padding[0], padding[1]
    if len(padding) == 4:
        return padding
    raise ValueError(f"padding must be an int or a sequence of 2 or 4 ints, got {padding}")


class RandomCrop:
    """Crop a random `size` (h, w) window, after optional `padding` (int, (lr, tb) or (l, t, r, b)) with
    `fill` or padding_mode 'constant', 'edge', 'reflect' or 'symmetric'; `pad_if_needed` pads an
    image smaller than size."""

    _MODES = ("constant", "edge", "reflect", "symmetric")

    def __init__(self, size, padding=None, pad_if_needed: bool = False, fill=0, padding_mode: str = "constant"):
        self.size = (int(size), int(size)) if isinstance(size, numbers.Integral) else tuple(int(s) for s in size)
        if len(self.size) != 2 or min(self.size) <= 0:
            raise ValueError(f"RandomCrop: size must be a positive int or (h, w), got {size}")
        if padding_mode not in self._MODES:
            raise ValueError(f"RandomCrop: padding_mode must be one of {self._MODES}, got {padding_mode!r}")
        self.padding = None if padding is None else _pad_widths(padding)
        self.pad_if_needed, self.fill, self.padding_mode = pad_if_needed, fill, padding_mode

    def __call__(self, img):
        return self._crop(img, batch=False)

    def _apply_batch(self, imgs):
        return self._crop(imgs, batch=True)

    def _pad(self, a: np.ndarray, left, top, right, bottom) -> np.ndarray:
        widths = [(0, 0), (top, bottom), (left, right)] + [(0, 0)] * (a.ndim - 3)
        if self.padding_mode == "constant":
            return np.pad(a, widths, mode="constant", constant_values=self.fill)
        return np.pad(a, widths, mode=self.padding_mode)

    def _crop(self, img, batch: bool):
        a, restore = _as_nhw(img, batch)
        if self.padding is not None:
            a = self._pad(a, *self.padding)
        (th, tw), (n, h, w) = self.size, a.shape[:3]
        if self.pad_if_needed and (h < th or w < tw):
            dw, dh = max(tw - w, 0), max(th - h, 0)
            a = self._pad(a, dw, dh, dw, dh)
            h, w = a.shape[1:3]
        if h < th or w < tw:
            raise ValueError(f"RandomCrop: required crop size {self.size} is larger than the (padded) image {(h, w)}")
        top, left = get_rng().integers(0, h - th + 1, n), get_rng().integers(0, w - tw + 1, n)
        rows = (top[:, None] + np.arange(th))[:, :, None]  # (N, th, 1)
        cols = (left[:, None] + np.arange(tw))[:, None, :]  # (N, 1, tw)
        return restore(a[np.arange(n)[:, None, None], rows, cols])  # fancy indexing: a new array

    def __repr__(self):
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror the image left-right with probability p."""

    def __init__(self, p: float = 0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = p

    def __call__(self, img):
        return self._flip(img, batch=False)

    def _apply_batch(self, imgs):
        return self._flip(imgs, batch=True)

    def _flip(self, img, batch: bool):
        a, restore = _as_nhw(img, batch)
        flip = get_rng().random(a.shape[0]) < self.p
        out = a.copy()
        out[flip] = a[flip][:, :, ::-1]
        return restore(out)

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"
