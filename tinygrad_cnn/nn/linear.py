"""Linear and Identity."""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ..ops import as_tensor
from .._device import layer_dtype
from . import init
from .module import Module, Parameter


class Identity(Module):
    """Returns its input unchanged; takes (and ignores) any arguments, as PyTorch."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Linear(Module):
    """y = x @ weight.T + bias: (*, in_features) -> (*, out_features); weight (out_features, in_features)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        dtype = layer_dtype(device, dtype)
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dtype))
        self.register_parameter("bias", Parameter(np.empty(out_features, dtype=dtype)) if bias else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default init: U(-1/sqrt(in_features), 1/sqrt(in_features))."""
        init._default_uniform_(self.weight, self.bias, self.in_features)

    def forward(self, x):
        return F.linear(as_tensor(x), self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
