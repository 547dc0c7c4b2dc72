"""optim.lr_scheduler: each scheduler's lr sequence against torch.optim.lr_scheduler, state_dict, warnings."""
import warnings

import numpy as np
import pytest
from helpers import needs_torch, torch

from tinygrad_cnn import Tensor, optim
from tinygrad_cnn.optim import lr_scheduler


def _scale(epoch):
    return 0.9 ** epoch + 0.01 * (epoch % 3)


SCHEDULERS = [
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[2, 5, 5, 9], gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.8)),
    ("CosineAnnealingLR", dict(T_max=4)),
    ("CosineAnnealingLR", dict(T_max=5, eta_min=0.01)),
    ("LambdaLR", dict(lr_lambda=_scale)),
    ("OneCycleLR", dict(max_lr=0.5, total_steps=20)),
    ("OneCycleLR", dict(max_lr=[0.5, 0.2], epochs=4, steps_per_epoch=5, anneal_strategy="linear",
                        three_phase=True, pct_start=0.25)),
]


def _pair(opt_name="SGD", **kw):
    """An optimizer over two param groups, ours and torch's."""
    ours = getattr(optim, opt_name)([{"params": [Tensor(np.ones(2), requires_grad=True)]},
                                     {"params": [Tensor(np.ones(3), requires_grad=True)], "lr": 0.05}], lr=0.1, **kw)
    theirs = getattr(torch.optim, opt_name)([{"params": [torch.ones(2, requires_grad=True)]},
                                             {"params": [torch.ones(3, requires_grad=True)], "lr": 0.05}], lr=0.1, **kw)
    return ours, theirs


def _run(opt, sched, steps, metrics=None):
    """The lr of each group after construction and after each step (optimizer first, as PyTorch wants)."""
    seq = [[g["lr"] for g in opt.param_groups]]
    for i in range(steps):
        opt.step()
        sched.step() if metrics is None else sched.step(metrics[i])
        seq.append(list(sched.get_last_lr()))
        assert seq[-1] == [g["lr"] for g in opt.param_groups]
    return seq


@needs_torch
@pytest.mark.parametrize("name,kw", SCHEDULERS, ids=lambda v: str(v))
def test_lr_sequence_matches_torch(name, kw):
    opt_name = "SGD"
    extra = {"momentum": 0.9} if name == "OneCycleLR" else {}
    ours, theirs = _pair(opt_name, **extra)
    steps = 19 if name == "OneCycleLR" else 15
    s1 = getattr(lr_scheduler, name)(ours, **kw)
    s2 = getattr(torch.optim.lr_scheduler, name)(theirs, **kw)
    np.testing.assert_allclose(_run(ours, s1, steps), _run(theirs, s2, steps), rtol=1e-13, atol=0)
    if name == "OneCycleLR":  # momentum cycles inversely to the lr
        assert [g["momentum"] for g in ours.param_groups] == pytest.approx([g["momentum"] for g in theirs.param_groups])


@needs_torch
def test_one_cycle_cycles_adams_beta1_and_stops_at_total_steps():
    ours, theirs = _pair("Adam")
    s1 = lr_scheduler.OneCycleLR(ours, max_lr=0.3, total_steps=6)
    s2 = torch.optim.lr_scheduler.OneCycleLR(theirs, max_lr=0.3, total_steps=6)
    for _ in range(5):
        ours.step(), theirs.step(), s1.step(), s2.step()
        np.testing.assert_allclose([g["betas"] for g in ours.param_groups],
                                   [g["betas"] for g in theirs.param_groups], rtol=1e-13)
    with pytest.raises(ValueError, match="Tried to step 7 times"):
        s1.step(), s1.step()


@needs_torch
@pytest.mark.parametrize("kw", [dict(patience=2), dict(mode="max", factor=0.5, patience=1, cooldown=2),
                                dict(threshold_mode="abs", threshold=0.1, patience=0, min_lr=[0.02, 0.01])])
def test_reduce_lr_on_plateau_matches_torch(kw):
    metrics = [1.0, 0.9, 0.95, 0.95, 0.96, 0.89, 0.9, 0.9, 0.9, 0.9, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    if kw.get("mode") == "max":
        metrics = [-m for m in metrics]
    ours, theirs = _pair()
    s1, s2 = lr_scheduler.ReduceLROnPlateau(ours, **kw), torch.optim.lr_scheduler.ReduceLROnPlateau(theirs, **kw)
    assert _run(ours, s1, len(metrics), metrics) == _run(theirs, s2, len(metrics), metrics)
    s1.step(Tensor(np.array(2.0)))  # a one-element Tensor is a metric too


@needs_torch
@pytest.mark.parametrize("name,kw", SCHEDULERS[:5], ids=lambda v: str(v))
def test_step_with_epoch_uses_the_closed_form_like_torch(name, kw):
    ours, theirs = _pair()
    s1, s2 = getattr(lr_scheduler, name)(ours, **kw), getattr(torch.optim.lr_scheduler, name)(theirs, **kw)
    ours.step(), theirs.step()
    for epoch in (3, 7, 5):
        with pytest.warns(UserWarning, match="deprecated"):
            s1.step(epoch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s2.step(epoch)
        np.testing.assert_allclose(s1.get_last_lr(), s2.get_last_lr(), rtol=1e-13)


@pytest.mark.parametrize("name,kw", SCHEDULERS, ids=lambda v: str(v))
def test_state_dict_round_trip_continues_identically(name, kw):
    def make():
        p = Tensor(np.ones(2), requires_grad=True)
        opt = optim.SGD([{"params": [p]}, {"params": [Tensor(np.ones(1), requires_grad=True)]}], lr=0.1, momentum=0.9)
        return opt, getattr(lr_scheduler, name)(opt, **kw)

    opt1, s1 = make()
    for _ in range(4):
        opt1.step(), s1.step()
    opt2, s2 = make()
    opt2.load_state_dict(opt1.state_dict())
    s2.load_state_dict(s1.state_dict())
    assert "optimizer" not in s1.state_dict()
    assert s2.get_last_lr() == s1.get_last_lr() and s2.last_epoch == s1.last_epoch == 4
    for _ in range(5):
        opt1.step(), s1.step(), opt2.step(), s2.step()
        assert s1.get_last_lr() == s2.get_last_lr()


def test_lambda_lr_saves_callable_objects_but_not_functions():
    class Warmup:
        def __init__(self):
            self.steps = 3

        def __call__(self, epoch):
            return min(1.0, (epoch + 1) / self.steps)

    opt = optim.SGD([Tensor(np.ones(1), requires_grad=True)], lr=1.0)
    warm = Warmup()
    sched = lr_scheduler.LambdaLR(opt, [warm])
    warm.steps = 5
    state = sched.state_dict()
    assert state["lr_lambdas"] == [{"steps": 5}]
    other = Warmup()
    sched2 = lr_scheduler.LambdaLR(optim.SGD([Tensor(np.ones(1), requires_grad=True)], lr=1.0), [other])
    sched2.load_state_dict(state)
    assert other.steps == 5 and sched.state_dict()["lr_lambdas"] == [{"steps": 5}]
    assert lr_scheduler.LambdaLR(opt, lambda e: 1.0).state_dict()["lr_lambdas"] == [None]


def test_warns_when_the_scheduler_steps_before_the_optimizer():
    opt = optim.SGD([Tensor(np.ones(1), requires_grad=True)], lr=1.0)
    sched = lr_scheduler.StepLR(opt, 2)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        sched.step()
    opt2 = optim.SGD([Tensor(np.ones(1), requires_grad=True)], lr=1.0)
    sched2 = lr_scheduler.StepLR(opt2, 2)
    opt2.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched2.step()


def test_bad_arguments():
    opt = optim.SGD([Tensor(np.ones(1), requires_grad=True)], lr=1.0)
    with pytest.raises(TypeError, match="is not an Optimizer"):
        lr_scheduler.StepLR("sgd", 2)
    with pytest.raises(ValueError, match="step_size"):
        lr_scheduler.StepLR(opt, 0)
    with pytest.raises(ValueError, match="one value per param group"):
        lr_scheduler.LambdaLR(opt, [lambda e: 1, lambda e: 2])
    with pytest.raises(ValueError, match="total_steps OR"):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0)
    with pytest.raises(ValueError, match="factor should be < 1.0"):
        lr_scheduler.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="mode 'up' is unknown"):
        lr_scheduler.ReduceLROnPlateau(opt, mode="up")
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.ExponentialLR(optim.SGD([Tensor(np.ones(1), requires_grad=True)]), 0.9, last_epoch=3)
    with pytest.raises(ValueError, match="momentum or beta1"):
        lr_scheduler.OneCycleLR(optim.Adadelta([Tensor(np.ones(1), requires_grad=True)]), 1.0, total_steps=3)
