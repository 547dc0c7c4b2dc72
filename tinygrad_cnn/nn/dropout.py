"""Dropout."""
from __future__ import annotations

from .. import functional as F
from ..ops import as_tensor
from .module import Module


class Dropout(Module):
    """Zeroes elements with probability p while training (scaling the rest by 1/(1-p)); identity in eval
    mode. Same shape. `inplace` is accepted for PyTorch's signature; the result is always a new tensor."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, x):
        return F.dropout(as_tensor(x), self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"
