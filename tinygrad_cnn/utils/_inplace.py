"""In-place writes into Tensors that tell the engine the data changed (its version counter)."""
from __future__ import annotations

import numpy as np


def mark_changed(t) -> None:
    """Tell the engine that `t`'s data was changed in place (bumps its version where the engine keeps one)."""
    bump = getattr(t, "_bump_version", None)
    if bump is not None:
        bump()


def write_(t, values) -> None:
    """Copy `values` (broadcast, cast to t's dtype) into `t`'s array in place and mark it changed."""
    np.copyto(t.data, values, casting="unsafe")
    mark_changed(t)
