"""Gradient checks against central finite differences, in float64."""
from __future__ import annotations

import numpy as np

from .autograd import enable_grad, grad, no_grad
from .tensor import Tensor


def _as_float64(inputs):
    out = []
    for x in inputs:
        if isinstance(x, Tensor) and np.issubdtype(x.dtype, np.floating):
            out.append(Tensor(x.data.astype(np.float64), requires_grad=x.requires_grad, name=x.name))
        else:
            out.append(x)
    return out


def _outputs(result):
    outs = result if isinstance(result, (tuple, list)) else (result,)
    outs = [o for o in outs if isinstance(o, Tensor) and np.issubdtype(o.dtype, np.floating)]
    if not outs:
        raise ValueError("gradcheck: fn returned no floating-point Tensor")
    return outs


def numerical_gradient(f, x: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    """Central differences of a scalar function at the array `x`, as the lecture book's
    `common/gradient.py`: element i of the result (x's shape and dtype) is
    (f(x + eps e_i) - f(x - eps e_i)) / (2 eps). `x` itself is changed one element at a time
    (whatever its layout) and restored, so `f` may read it through a Tensor wrapping it;
    `f(x)` returns a float. Two calls of `f` per element."""
    g = np.zeros_like(x)
    for elem in np.ndindex(x.shape):
        orig = x[elem]
        try:
            x[elem] = orig + eps
            plus = f(x)
            x[elem] = orig - eps
            minus = f(x)
        finally:
            x[elem] = orig
        g[elem] = (plus - minus) / (2 * eps)
    return g


def gradcheck(fn, *inputs, eps=1e-6, atol=1e-5, rtol=1e-3) -> bool:
    """Check autograd's gradients of `fn(*inputs)` against central differences.

    Inputs that are Tensors with `requires_grad` are checked; all floating inputs are
    cast to float64 first. The outputs are projected on fixed random weights `v`, so one
    backward gives v.J, which is compared element by element with
    (f(x + eps) - f(x - eps)) . v / (2 eps).
    Returns True, or raises AssertionError naming the input, the element and both values.
    """
    xs = _as_float64(inputs)
    wrt = [i for i, x in enumerate(xs) if isinstance(x, Tensor) and x.requires_grad]
    if not wrt:
        raise ValueError("gradcheck: no input requires grad")
    outs = _outputs(fn(*xs))
    rng = np.random.default_rng(0)
    vs = [rng.standard_normal(o.shape) for o in outs]

    def projected() -> float:
        with no_grad():
            return float(sum(np.sum(o.data * v) for o, v in zip(_outputs(fn(*xs)), vs)))

    live = [(o, v) for o, v in zip(outs, vs) if o.requires_grad]
    if live:
        analytic = grad([o for o, _ in live], [xs[i] for i in wrt],
                        [Tensor(v) for _, v in live], allow_unused=True)
    else:
        analytic = [None] * len(wrt)
    for i, a in zip(wrt, analytic):
        x = xs[i]
        a = np.zeros(x.shape) if a is None else a.data
        num = numerical_gradient(lambda _: projected(), x.data, eps)  # x.data itself is perturbed
        bad = ~(np.abs(a - num) <= atol + rtol * np.abs(num))  # NaN fails too
        if bad.any():
            elem = tuple(int(e) for e in np.argwhere(bad)[0])
            name = f" ({x.name})" if x.name else ""
            raise AssertionError(
                f"gradcheck: input {i}{name}, element {elem}: "
                f"analytical {a[elem]:.8g} vs numerical {num[elem]:.8g}"
            )
    return True


def gradgradcheck(fn, *inputs, grad_outputs=None, eps=1e-6, atol=1e-5, rtol=1e-3) -> bool:
    """Check second derivatives: gradcheck of the gradients of `fn` (made with create_graph=True).

    `grad_outputs` (one per output, default fixed random) weight the outputs; they are
    checked as inputs too, as in PyTorch.
    """
    xs = _as_float64(inputs)
    wrt = [i for i, x in enumerate(xs) if isinstance(x, Tensor) and x.requires_grad]
    outs = _outputs(fn(*xs))
    if grad_outputs is None:
        rng = np.random.default_rng(1)
        grad_outputs = [Tensor(rng.standard_normal(o.shape), requires_grad=True) for o in outs]
    else:
        grad_outputs = _as_float64(grad_outputs)
    n = len(xs)

    def first_grads(*args):
        ins, gos = args[:n], args[n:]
        with enable_grad():  # gradcheck evaluates this under no_grad
            gs = grad(_outputs(fn(*ins)), [ins[i] for i in wrt], list(gos), create_graph=True, allow_unused=True)
        return tuple(g for g in gs if g is not None)

    return gradcheck(first_grads, *xs, *grad_outputs, eps=eps, atol=atol, rtol=rtol)
