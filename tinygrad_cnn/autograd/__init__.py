"""The autograd engine, laid out as `torch.autograd`: grad mode (`grad_mode`), the graph's
nodes (`function`: Function, version counters, what a freed node keeps) and the backward
pass (`engine`: backward, grad)."""
from .grad_mode import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled  # noqa: I001
from .function import Function
from .engine import backward, grad

__all__ = ["Function", "backward", "grad", "no_grad", "enable_grad", "set_grad_enabled", "inference_mode",
           "is_grad_enabled"]
