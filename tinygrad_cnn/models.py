"""Models built from the functional ops. `SimpleConvNet` keeps the lecture's API."""
from __future__ import annotations

import math

import numpy as np

from . import functional as F
from ._io import load_arrays, save_arrays
from .nn.module import Module, Parameter
from .rng import get_rng
from .tensor import Tensor, no_grad

_CONV_KEYS = {"filter_num", "filter_size", "pad", "padding", "stride", "bias"}


def _init_std(weight_init_std, fan_in: int) -> float:
    """A number is the std itself; 'he'/'relu' is sqrt(2/fan_in), 'xavier'/'sigmoid' sqrt(1/fan_in)."""
    if isinstance(weight_init_std, str):
        key = weight_init_std.lower()
        if key in ("he", "relu"):
            return math.sqrt(2.0 / fan_in)
        if key in ("xavier", "sigmoid"):
            return math.sqrt(1.0 / fan_in)
        raise ValueError(f"weight_init_std must be a number, 'he'/'relu' or 'xavier'/'sigmoid', "
                         f"got {weight_init_std!r}")
    return float(weight_init_std)


class SimpleConvNet(Module):
    """conv - relu - 2x2 max-pool - affine - relu - affine, from the lecture.

    Parameters `W1` (FN, C, FS, FS), `b1` (FN,), `W2` (FN*PH*PW, hidden), `b2` (hidden,),
    `W3` (hidden, out), `b3` (out,), float32. Input (N, C, H, W) -> logits (N, output_size).
    The lecture's `conv_param` keys: filter_num, filter_size, pad (or padding), stride and
    bias (False drops b1).
    """

    def __init__(self, input_dim=(1, 28, 28), conv_param=None, hidden_size=100, output_size=10,
                 weight_init_std=0.01):
        super().__init__()
        conv_param = {"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1, **(conv_param or {})}
        unknown = set(conv_param) - _CONV_KEYS
        if unknown:
            raise ValueError(f"SimpleConvNet: unknown conv_param keys {sorted(unknown)}; known: {sorted(_CONV_KEYS)}")
        if "padding" in conv_param:
            conv_param["pad"] = conv_param.pop("padding")
        if len(input_dim) != 3:
            raise ValueError(f"SimpleConvNet: input_dim must be (C, H, W), got {input_dim}")
        fn, fs = int(conv_param["filter_num"]), int(conv_param["filter_size"])
        self.pad, self.stride = int(conv_param["pad"]), int(conv_param["stride"])
        c, h, w = input_dim
        conv_h = (h + 2 * self.pad - fs) // self.stride + 1
        conv_w = (w + 2 * self.pad - fs) // self.stride + 1
        if conv_h < 2 or conv_w < 2:
            raise ValueError(f"SimpleConvNet: a {fs}x{fs} filter leaves {conv_h}x{conv_w} of a {h}x{w} input")
        pool_size = fn * (conv_h // 2) * (conv_w // 2)
        self.input_dim = tuple(input_dim)
        rng = get_rng()

        def weight(shape, fan_in):
            return Parameter((_init_std(weight_init_std, fan_in) * rng.standard_normal(shape)).astype(np.float32))

        self.W1 = weight((fn, c, fs, fs), c * fs * fs)
        self.b1 = Parameter(np.zeros(fn, dtype=np.float32)) if conv_param.get("bias", True) else None
        self.W2 = weight((pool_size, hidden_size), pool_size)
        self.b2 = Parameter(np.zeros(hidden_size, dtype=np.float32))
        self.W3 = weight((hidden_size, output_size), hidden_size)
        self.b3 = Parameter(np.zeros(output_size, dtype=np.float32))

    def forward(self, x) -> Tensor:
        """(N, C, H, W) -> logits (N, output_size)."""
        dtype = self.W1.dtype  # images in the parameters' dtype: float64 input does not make a float64 network
        x = x.to(dtype) if isinstance(x, Tensor) else Tensor._make(np.asarray(x, dtype))
        if x.ndim == 2:  # flattened images, as load_mnist(flatten=True) gives
            x = x.reshape(-1, *self.input_dim)
        h = F.conv2d(x, self.W1, self.b1, stride=self.stride, padding=self.pad).relu()
        h = F.max_pool2d(h, 2).flatten(1)
        h = (h @ self.W2 + self.b2).relu()
        return h @ self.W3 + self.b3

    predict = forward

    def loss(self, x, t) -> Tensor:
        """Mean softmax cross-entropy; t is labels (N,) or one-hot rows (N, output_size)."""
        return F.cross_entropy(self(x), t)

    @no_grad()
    def accuracy(self, x, t, batch_size=100) -> float:
        """Fraction of correct predictions over all of x, the last partial batch included."""
        t = np.asarray(t.data if isinstance(t, Tensor) else t)
        if t.ndim != 1:
            t = np.argmax(t, axis=1)
        was_training = self.training
        self.eval()
        try:
            correct = 0
            for i in range(0, len(x), batch_size):
                y = self.predict(x[i:i + batch_size]).data
                correct += int(np.sum(np.argmax(y, axis=1) == t[i:i + batch_size]))
        finally:
            self.train(was_training)
        return correct / len(x)

    @property
    def params(self) -> dict:
        """The lecture's dict: 'W1' ... 'b3' -> the parameters' arrays (live, not copies)."""
        return {k: p.data for k, p in self.named_parameters()}

    def gradient(self, x, t) -> dict:
        """The lecture's gradient dict, 'W1' ... 'b3' -> arrays, computed by autograd."""
        self.zero_grad()
        self.loss(x, t).backward()
        return {k: p.grad.data for k, p in self.named_parameters()}

    def save_params(self, file_name="params.npz") -> None:
        """Write the parameters ('W1' ... 'b3') to an .npz file, atomically and durably
        (`tinygrad_cnn._io.atomic_open`: through symlinks, keeping the file's permissions)."""
        save_arrays(file_name, self.state_dict())

    def load_params(self, file_name="params.npz") -> None:
        """Load parameters saved by `save_params` (names and shapes must match).

        ValueError naming the file if it is not a checkpoint or does not fit this network."""
        arrays = load_arrays(file_name)
        try:
            self.load_state_dict(arrays)
        except ValueError as e:
            raise ValueError(f"{file_name}: {e}") from e
