"""In-place writes into Tensors that tell the engine the data changed (its version counter)."""
from __future__ import annotations

import numpy as np


def mark_changed(t) -> None:
    """Tell the engine that `t`'s data was changed in place: a graph that saved `t` then refuses to backward."""
    t._bump_version()


def write_(t, values) -> None:
    """Copy `values` (broadcast, cast to t's dtype) into `t`'s array in place and mark it changed."""
    np.copyto(t.data, values, casting="unsafe")
    mark_changed(t)


def zero_grads_(params, set_to_none: bool = True) -> None:
    """Drop the gradients of `params` (or, with set_to_none=False, zero them in place)."""
    for p in params:
        if set_to_none or p.grad is None:
            p.grad = None
        else:
            write_(p.grad, 0)
