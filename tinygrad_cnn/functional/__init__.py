"""Neural-network ops with `torch.nn.functional`'s names, arguments and defaults, by kind:
`conv`, `pooling`, `activation`, `linear` (linear, dropout, flatten), `loss`, `normalization`.

`import tinygrad_cnn.functional as F` (or `tinygrad_cnn.nn.functional`, the same module).
Ops that need a rule of their own (`Unfold`/`Fold`, the fused `Conv2d`, `MaxPool2d`,
`AvgPool2d`, `LogSoftmax`, `Softmax`, `NllLoss`) define it next to their forward, in Tensor
ops, so `create_graph=True` works through all of them; the rest are composed from ops
and get their gradients from them.
"""
from ..ops import pad, where  # noqa: F401  (part of F's API)
from .activation import leaky_relu, log_softmax, logsigmoid, relu, sigmoid, softmax, tanh  # noqa: F401
from .conv import col2im, conv2d, fold, im2col, unfold  # noqa: F401
from .linear import dropout, flatten, linear  # noqa: F401
from .loss import (binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, l1_loss,  # noqa: F401
                   mse_loss, nll_loss)
from .normalization import batch_norm  # noqa: F401
from .pooling import avg_pool2d, max_pool2d  # noqa: F401

__all__ = [
    "conv2d", "max_pool2d", "avg_pool2d", "relu", "leaky_relu", "sigmoid", "tanh", "softmax",
    "log_softmax", "linear", "dropout", "flatten", "cross_entropy", "nll_loss", "pad", "unfold", "fold",
    "im2col", "col2im", "batch_norm", "logsigmoid", "mse_loss", "l1_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "where",
]
