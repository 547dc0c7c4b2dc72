"""BatchNorm1d and BatchNorm2d, as PyTorch's: running statistics as buffers, train/eval, momentum."""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ..ops import as_tensor
from ..tensor import Tensor
from .._device import layer_dtype
from ..utils._inplace import write_
from . import init
from .module import Module, Parameter


class _BatchNorm(Module):
    """Normalizes each of `num_features` channels of (N, C, *): y = (x - mean) / sqrt(var + eps) * weight + bias.

    Training: mean and var of the batch (gradients flow through them), and, with
    track_running_stats, running_mean / running_var buffers updated as
    r = (1 - momentum) * r + momentum * batch value (variance unbiased), or as a cumulative
    average when momentum is None. Eval: the running statistics (or the batch's when
    track_running_stats is False). affine adds the learnable weight (ones) and bias (zeros).
    """

    _dims: tuple = ()  # the input ranks a subclass accepts

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None):
        super().__init__()
        dtype = layer_dtype(device, dtype)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype=dtype))
            self.bias = Parameter(np.zeros(num_features, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(num_features, dtype=dtype)))
            self.register_buffer("running_var", Tensor(np.ones(num_features, dtype=dtype)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64)))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def reset_running_stats(self) -> None:
        """running_mean 0, running_var 1, num_batches_tracked 0."""
        if self.track_running_stats:
            write_(self.running_mean, 0)
            write_(self.running_var, 1)
            write_(self.num_batches_tracked, 0)

    def reset_parameters(self) -> None:
        """Running statistics reset; weight 1, bias 0."""
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def _check_input(self, x: Tensor) -> None:
        if x.ndim not in self._dims:
            want = " or ".join(f"{d}D" for d in self._dims)
            raise ValueError(f"{type(self).__name__}: expected {want} input, got {x.ndim}D input of shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}): input of shape {x.shape} has "
                             f"{x.shape[1]} channels in dim 1")

    def forward(self, x):
        x = as_tensor(x)
        self._check_input(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            write_(self.num_batches_tracked, self.num_batches_tracked.data + 1)
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked.data)
        use_batch = self.training or (self.running_mean is None and self.running_var is None)
        keep = not self.training or self.track_running_stats
        return F.batch_norm(x, self.running_mean if keep else None, self.running_var if keep else None,
                            self.weight, self.bias, use_batch, factor, self.eps)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalization of (N, C) or (N, C, L) over N (and L), per channel C."""

    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization of (N, C, H, W) over N, H and W, per channel C."""

    _dims = (4,)
