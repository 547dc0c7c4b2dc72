"""tinygrad_cnn: a small numpy deep-learning framework with reverse-mode autograd."""
from . import autograd  # noqa: I001  (first: the engine's modules import each other in this order)
from . import _malloc, functional
from .autograd import Function, backward, enable_grad, grad, inference_mode, is_grad_enabled, no_grad, \
    set_grad_enabled
from .dtypes import (bool_, float16, float32, float64, get_default_dtype, int8, int16, int32, int64,
                     set_default_dtype, uint8)
from .dtypes import ALIASES as _ALIASES
from .functional import col2im, im2col
from .gradcheck import gradcheck, gradgradcheck
from .ops import cat, pad, stack, where
from .rng import manual_seed
from .tensor import Tensor, device
from . import nn, optim  # noqa: E402  (torch.nn, torch.optim without importing them)
from . import datasets, transforms, utils  # torch.utils.data; torchvision's datasets and transforms
from . import accelerator, backends, cuda
from .factories import *  # noqa: F401,F403  (tensor, zeros, ones, randn, arange, from_numpy, ...)
from .factories import __all__ as _factories
from .serialization import load, save
from .tensor_functions import *  # noqa: F401,F403  (torch.flatten, torch.max, torch.exp, ...)
from .tensor_functions import __all__ as _tensor_functions

globals().update(_ALIASES)  # torch.long, torch.double, torch.float, torch.bool, ...
_malloc.tune()
__version__ = "0.1.0"
__all__ = [
    "Tensor", "Function", "backward", "grad", "no_grad", "enable_grad", "set_grad_enabled", "inference_mode",
    "is_grad_enabled", "cat", "stack", "pad", "where", "gradcheck", "gradgradcheck", "manual_seed", "im2col",
    "col2im", "functional", "device", "set_default_dtype", "get_default_dtype", "float16", "float32", "float64",
    "bool_", "uint8", "int8", "int16", "int32", "int64", "utils", "datasets", "transforms", "nn", "optim",
    "accelerator", "backends", "cuda", "save", "load", *_factories, *_tensor_functions,
]
from .data import load_mnist  # noqa: E402  (the lecture book's names, at the top level as its scripts import them)
from .models import SimpleConvNet  # noqa: E402
from .trainer import Trainer  # noqa: E402
__all__ += ["SimpleConvNet", "Trainer", "load_mnist"]
