"""Optimizers against torch.optim's update rules, state_dict and dtype."""
import numpy as np
import pytest
from helpers import needs_torch, torch

from tinygrad_cnn import Tensor, optim
from tinygrad_cnn.trainer import make_optimizer

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.5, dampening=0.1)),
    ("AdaGrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.1)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.1)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-4, weight_decay=0.1)),
]


def _grad_fn(w):
    """A fixed, non-trivial gradient: d/dw of sum(sin(w) * w^2) (numpy, identical for both)."""
    return np.cos(w) * w ** 2 + 2 * w * np.sin(w)


@needs_torch
@pytest.mark.parametrize("name,kw", CONFIGS, ids=lambda v: str(v))
def test_matches_torch_optim(name, kw):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((3, 4))
    ours = Tensor(w0.copy(), requires_grad=True)
    theirs = torch.tensor(w0.copy(), requires_grad=True)
    opt = getattr(optim, name)([ours], **kw)
    topt = getattr(torch.optim, {"AdaGrad": "Adagrad"}.get(name, name))([theirs], **kw)
    for _ in range(6):
        ours.grad = Tensor(_grad_fn(ours.data))
        theirs.grad = torch.tensor(_grad_fn(theirs.detach().numpy()))
        opt.step()
        topt.step()
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name,kw", CONFIGS, ids=lambda v: str(v))
def test_updates_in_place_in_float32(name, kw):
    p = Tensor(np.ones((2, 2), dtype=np.float32), requires_grad=True)
    data = p.data
    opt = getattr(optim, name)([p], **kw)
    for _ in range(2):
        p.grad = Tensor(np.full((2, 2), 0.5, dtype=np.float32))
        opt.step()
    assert p.data is data and p.dtype == np.float32
    assert not np.allclose(p.data, 1.0)


def test_param_groups_and_zero_grad():
    a = Tensor(np.ones(2), requires_grad=True)
    b = Tensor(np.ones(2), requires_grad=True)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    a.grad, b.grad = Tensor(np.ones(2)), Tensor(np.ones(2))
    opt.step()
    np.testing.assert_allclose(a.data, 0.9)
    np.testing.assert_allclose(b.data, 0.0)
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    a.grad = Tensor(np.ones(2))
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(a.grad.data, 0)


def test_state_dict_round_trip_continues_identically():
    w = np.array([1.0, -2.0, 3.0])
    p1, p2 = Tensor(w.copy(), requires_grad=True), Tensor(w.copy(), requires_grad=True)
    o1 = optim.Adam([p1], lr=0.1)
    for _ in range(3):
        p1.grad = Tensor(_grad_fn(p1.data))
        o1.step()
    p2.data[...] = p1.data
    o2 = optim.Adam([p2], lr=0.5)
    o2.load_state_dict(o1.state_dict())
    assert o2.param_groups[0]["lr"] == 0.1
    for o, p in ((o1, p1), (o2, p2)):
        p.grad = Tensor(_grad_fn(p.data))
        o.step()
    np.testing.assert_array_equal(p1.data, p2.data)


def test_bad_arguments():
    p = Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(ValueError):
        optim.SGD([p], lr=-1)
    with pytest.raises(ValueError, match="empty"):
        optim.Adam([])
    with pytest.raises(ValueError, match="does not require grad"):
        optim.SGD([Tensor(np.ones(2))])
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([p], nesterov=True)
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer("lbfgs", [p])


@pytest.mark.parametrize("name,cls,extra", [
    ("SGD", optim.SGD, {}), ("Momentum", optim.SGD, {"momentum": 0.9}),
    ("nesterov", optim.SGD, {"nesterov": True}), ("AdaGrad", optim.AdaGrad, {}),
    ("rmsprop", optim.RMSprop, {"alpha": 0.99}), ("ADAM", optim.Adam, {"betas": (0.9, 0.999)}),
])
def test_lecture_optimizer_names(name, cls, extra):
    p = Tensor(np.ones(2), requires_grad=True)
    opt = make_optimizer(name, [p], {"lr": 0.05})
    assert type(opt) is cls and opt.param_groups[0]["lr"] == 0.05
    for k, v in extra.items():
        assert opt.param_groups[0][k] == v


@pytest.mark.parametrize("name,kw", CONFIGS, ids=lambda v: str(v))
def test_step_marks_each_updated_parameter_changed_once(name, kw):
    class Counted(Tensor):
        bumps = 0

        def _bump_version(self):
            self.bumps += 1

    a, b = Counted(np.ones(2), requires_grad=True), Counted(np.ones(3), requires_grad=True)
    opt = getattr(optim, name)([a, b], **kw)
    a.grad = Tensor(np.full(2, 0.5))  # b has no gradient: not updated, not marked
    opt.step()
    opt.step()
    assert (a.bumps, b.bumps) == (2, 0)


def test_step_with_closure_returns_its_loss():
    w = Tensor(np.array([3.0]), requires_grad=True)
    opt = optim.SGD([w], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    losses = [opt.step(closure).item() for _ in range(3)]
    assert losses == [9.0, 2.25, 0.5625] and w.data[0] == 0.375
    assert opt.step() is None


def test_package_layout_keeps_the_old_imports():
    from tinygrad_cnn.optim import SGD, Adadelta, Optimizer
    from tinygrad_cnn.optim.adam import Adam
    assert optim.SGD is SGD and optim.Adam is Adam and issubclass(Adadelta, Optimizer)
    assert optim.Adagrad is optim.AdaGrad and optim.lr_scheduler.StepLR


def test_a_parameter_in_two_groups_is_an_error():
    p = Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(TypeError, match="got a Tensor"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="rho"):
        optim.Adadelta([p], rho=1.5)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_on_threads_matches_one_thread_exactly(monkeypatch, amsgrad):
    # a weight as large as the lecture net's 4320x100 is updated in row blocks on threads;
    # the update is elementwise, so the result is bit for bit that of one call on all of it
    from tinygrad_cnn import _parallel

    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((300, 1000)).astype(np.float32)  # 300,000 values: split
    grads = [rng.standard_normal(w0.shape).astype(np.float32) for _ in range(3)]

    def run(threads):
        monkeypatch.setattr(_parallel, "THREADS", threads)
        w = Tensor(w0.copy(), requires_grad=True)
        wt = Tensor(w0.T.copy().T, requires_grad=True)  # a column-major weight and gradient too
        opt = optim.AdamW([w, wt], lr=1e-2, amsgrad=amsgrad)
        for g in grads:
            w.grad, wt.grad = Tensor(g), Tensor(np.asfortranarray(g))
            opt.step()
        return w.data, wt.data

    one, two = run(1), run(2)
    assert w0.size >= _parallel.ROW_SPLIT_ELEMENTS
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(one[0], w0)
