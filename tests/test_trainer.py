"""Trainer under bad input and interruption: lengths checked at construction, a Ctrl-C in the
middle of a step undone, `status` and the per-epoch lists telling what was done."""
import numpy as np
import pytest

from tinygrad_cnn import manual_seed
from tinygrad_cnn.models import SimpleConvNet
from tinygrad_cnn.trainer import Trainer, TrainingDiverged


def tiny(n=20, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 8, 8)).astype(np.float32), rng.integers(0, 10, n)


def tiny_net():
    manual_seed(0)
    return SimpleConvNet(input_dim=(1, 8, 8), conv_param={"filter_num": 2, "filter_size": 3}, hidden_size=5)


@pytest.mark.parametrize("cut, message", [
    (lambda x, t, xt, tt: (x, t, xt[:5], tt[:1]), "x_test has 5 samples but t_test has 1"),
    (lambda x, t, xt, tt: (x, t[:3], xt, tt), "x_train has 20 samples but t_train has 3"),
    (lambda x, t, xt, tt: (x[:0], t[:0], xt, tt), "x_train is empty"),
])
def test_mismatched_lengths_are_refused_at_construction(cut, message):
    x, t = tiny()
    with pytest.raises(ValueError, match=message):
        Trainer(tiny_net(), *cut(x, t, x, t), verbose=False)


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_evaluation_sample_count_must_be_positive(n):
    x, t = tiny()
    with pytest.raises(ValueError, match="evaluate_sample_num_per_epoch must be a positive integer or None"):
        Trainer(tiny_net(), x, t, x, t, evaluate_sample_num_per_epoch=n, verbose=False)


def test_ctrl_c_inside_an_optimizer_step_is_undone():
    x, t = tiny()
    net = tiny_net()
    trainer = Trainer(net, x, t, x, t, epochs=3, mini_batch_size=5, optimizer="sgd", verbose=False, seed=0)
    real_step, calls = trainer.optimizer.step, []

    def step_then_ctrl_c():
        calls.append(1)
        if len(calls) < 6:
            return real_step()
        before[...] = net.W1.data  # the weights of the 5 whole steps
        net.W1.data += 1.0  # half of an update ...
        raise KeyboardInterrupt  # ... and the user presses Ctrl-C

    before = np.empty_like(net.W1.data)
    trainer.optimizer.step = step_then_ctrl_c
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert trainer.status == "interrupted"
    np.testing.assert_array_equal(net.W1.data, before)
    assert trainer.current_iter == 5 and len(trainer.train_loss_list) == 5
    assert len(trainer.test_acc_list) == len(trainer.epoch_loss_list) == len(trainer.epoch_seconds) == 1


def test_ctrl_c_during_evaluation_keeps_the_epoch_lists_aligned():
    x, t = tiny()
    net = tiny_net()
    trainer = Trainer(net, x, t, x, t, epochs=3, mini_batch_size=5, verbose=False, seed=0)

    def interrupted():
        raise KeyboardInterrupt
    trainer._evaluate = interrupted
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert trainer.status == "interrupted" and trainer.current_iter == 4
    assert trainer.epoch_loss_list == trainer.test_acc_list == trainer.train_acc_list == []


def test_status_through_a_run_and_a_divergence():
    x, t = tiny()
    trainer = Trainer(tiny_net(), x, t, x, t, epochs=1, mini_batch_size=10, verbose=False, seed=0)
    assert trainer.status == "not started"
    trainer.train()
    assert trainer.status == "completed"
    diverging = Trainer(tiny_net(), x * 1e30, t, x, t, epochs=2, mini_batch_size=10, optimizer="sgd",
                        optimizer_param={"lr": 1e30}, verbose=False, seed=0)
    with pytest.raises(TrainingDiverged), np.errstate(all="ignore"):
        diverging.train()
    assert diverging.status == "diverged"
    assert all(np.isfinite(p.data).all() for p in diverging.network.parameters())
