"""`tinygrad_cnn.nn`: Module, Parameter, layers, losses, containers, `nn.init`, `nn.utils` and
`nn.functional` (the same module as `tinygrad_cnn.functional`), laid out by kind as PyTorch's."""
import sys

from .. import functional
from . import init, utils
from .activation import LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .batchnorm import BatchNorm1d, BatchNorm2d
from .container import ModuleDict, ModuleList, Sequential
from .conv import Conv2d
from .dropout import Dropout
from .flatten import Flatten
from .linear import Identity, Linear
from .loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss
from .module import Module
from .parameter import Parameter
from .pooling import AvgPool2d, MaxPool2d

sys.modules[__name__ + ".functional"] = functional  # `import tinygrad_cnn.nn.functional as F` works

__all__ = [
    "Module", "Parameter", "Linear", "Identity", "Conv2d", "MaxPool2d", "AvgPool2d", "BatchNorm1d", "BatchNorm2d",
    "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Flatten", "Dropout",
    "CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "BCELoss", "BCEWithLogitsLoss",
    "Sequential", "ModuleList", "ModuleDict", "init", "utils", "functional",
]
