"""tinygrad_cnn: a small numpy deep-learning framework with reverse-mode autograd."""
from . import _malloc, functional
from .functional import col2im, im2col
from .gradcheck import gradcheck, gradgradcheck
from .ops import cat, pad, stack, where
from .rng import manual_seed
from .tensor import Function, Tensor, backward, enable_grad, grad, is_grad_enabled, no_grad
from . import datasets, transforms, utils  # torch.utils.data; torchvision's datasets and transforms

_malloc.tune()
__version__ = "0.1.0"
__all__ = [
    "Tensor", "Function", "backward", "grad", "no_grad", "enable_grad", "is_grad_enabled",
    "cat", "stack", "pad", "where", "gradcheck", "gradgradcheck", "manual_seed", "im2col", "col2im",
    "functional", "utils", "datasets", "transforms",
]
