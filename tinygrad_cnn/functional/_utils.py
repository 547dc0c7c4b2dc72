"""What the functional ops share: input and dim checks, window geometry, dtype checks."""
from __future__ import annotations

import functools

from .. import kernels
from ..errors import DTypeError, InvalidArgumentError, ShapeError
from ..tensor import Tensor, is_grad_enabled


def _accepts_unbatched(fn):
    """Let an (N, C, H, W) op take one (C, H, W) image too, as PyTorch's do."""
    @functools.wraps(fn)
    def wrapper(input, *args, **kwargs):
        if isinstance(input, Tensor) and input.ndim == 3:
            out = fn(input.unsqueeze(0), *args, **kwargs)
            return tuple(o.squeeze(0) for o in out) if isinstance(out, tuple) else out.squeeze(0)
        return fn(input, *args, **kwargs)

    return wrapper


def _same_dtype(name, input: Tensor, weight: Tensor, bias) -> None:
    """PyTorch refuses an input whose dtype differs from the parameters'; say what to cast."""
    if input.dtype != weight.dtype or (bias is not None and bias.dtype != weight.dtype):
        extra = f", bias {bias.dtype}" if bias is not None and bias.dtype != weight.dtype else ""
        raise DTypeError(f"{name}: input is {input.dtype} but weight is {weight.dtype}{extra}; cast the input "
                         f"with x.to({weight.dtype}) (or the module's parameters with module.to({input.dtype}))")


def _saved_for_backward(**pairs) -> dict | None:
    """The tensors a composite op reads in backward, when it is being recorded (see op_scope)."""
    if not is_grad_enabled():
        return None
    return {name: t for name, (t, needed) in pairs.items() if needed}


def _check_4d(name, x: Tensor):
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: input must be a Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ShapeError(f"{name}: input must be 4-D (N, C, H, W) or 3-D (C, H, W), got shape {x.shape}")


def _cached(fn):
    """fn memoized on its arguments, lists taken as tuples (a network asks for the same few
    geometries at every step: 14-22 us each, a tenth of a batch-1 inference); errors are
    not cached, and unhashable arguments skip the cache."""
    cached = functools.lru_cache(maxsize=512)(fn)

    @functools.wraps(fn)
    def wrapper(*args):
        args = tuple(tuple(a) if isinstance(a, list) else a for a in args)
        try:
            hash(args)
        except TypeError:
            return fn(*args)
        return cached(*args)

    return wrapper


@_cached
def _geometry(name, shape, kernel, stride, padding, dilation, ceil_mode=False):
    """Validate the window parameters; return (kernel, stride, ((t, b), (l, r)), dilation, (OH, OW))."""
    kernel, stride, dilation = kernels.pair(kernel, "kernel_size"), kernels.pair(stride, "stride"), \
        kernels.pair(dilation, "dilation")
    if min(kernel) <= 0 or min(stride) <= 0 or min(dilation) <= 0:
        raise InvalidArgumentError(f"{name}: kernel {kernel}, stride {stride} and dilation {dilation} must be positive")
    if isinstance(padding, str):
        if padding == "valid":
            padding = ((0, 0), (0, 0))
        elif padding == "same":
            if stride != (1, 1):
                raise InvalidArgumentError(f"{name}: padding='same' needs stride 1, got stride {stride}")
            total = [d * (k - 1) for k, d in zip(kernel, dilation)]
            padding = tuple((t // 2, t - t // 2) for t in total)
        else:
            raise InvalidArgumentError(f"{name}: padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    else:
        ph, pw = kernels.pair(padding, "padding")
        if ph < 0 or pw < 0:
            raise InvalidArgumentError(f"{name}: padding must be non-negative, got {(ph, pw)}")
        padding = ((ph, ph), (pw, pw))
    h, w = shape[2:]
    eff = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    for size, (lo, hi), e, axis in zip((h, w), padding, eff, "HW"):
        if e > size + lo + hi:
            raise ShapeError(f"{name}: kernel {kernel} (dilated extent {e}) is larger than the padded input "
                             f"{axis}={size + lo + hi} (input shape {shape}, padding {padding})")
    out_hw = tuple(kernels.output_size(size, k, s, lo, hi, d, ceil_mode)
                   for size, k, s, (lo, hi), d in zip((h, w), kernel, stride, padding, dilation))
    return kernel, stride, padding, dilation, out_hw


_REDUCTIONS = ("mean", "sum", "none")
