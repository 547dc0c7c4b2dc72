"""`tinygrad_cnn.optim`: optimizers with `torch.optim`'s names, defaults and update rules, and
`optim.lr_scheduler`. Parameters are updated in place, in their own dtype, with
per-parameter buffers that are reused from step to step."""
from . import lr_scheduler
from .adadelta import Adadelta
from .adagrad import AdaGrad, Adagrad
from .adam import Adam
from .adamw import AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "AdaGrad", "Adagrad", "RMSprop", "Adam", "AdamW", "Adadelta", "lr_scheduler"]
