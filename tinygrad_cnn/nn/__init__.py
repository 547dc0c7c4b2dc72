"""`tinygrad_cnn.nn`: Module, Parameter, layers and `nn.init`."""
from .. import functional
from . import init
from .layers import AvgPool2d, Conv2d, CrossEntropyLoss, Dropout, Flatten, Linear, MaxPool2d, ReLU, Sequential
from .module import Module, Parameter

__all__ = ["Module", "Parameter", "Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "ReLU", "Flatten", "Dropout",
           "CrossEntropyLoss", "Sequential", "init", "functional"]
