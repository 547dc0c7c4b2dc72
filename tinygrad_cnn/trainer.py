"""Trainer: the lecture's training loop (same arguments), over real shuffled epochs."""
from __future__ import annotations

import math
import time

import numpy as np

from . import optim
from .data import DataLoader
from .tensor import Tensor


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite; the network holds the last weights whose loss was finite."""


def make_optimizer(name_or_optimizer, params, optimizer_param: dict | None = None) -> optim.Optimizer:
    """An optimizer from the lecture's names (sgd, momentum, nesterov, adagrad, rmsprop, adam; any case)
    and its parameters (lr, momentum, decay_rate, beta1, beta2 are understood)."""
    if isinstance(name_or_optimizer, optim.Optimizer):
        return name_or_optimizer
    p = dict(optimizer_param or {})
    lr = p.pop("lr", 0.01)
    name = str(name_or_optimizer).lower()
    if name == "sgd":
        return optim.SGD(params, lr=lr, **p)
    if name in ("momentum", "nesterov"):
        return optim.SGD(params, lr=lr, momentum=p.pop("momentum", 0.9), nesterov=name == "nesterov", **p)
    if name == "adagrad":
        return optim.AdaGrad(params, lr=lr, **p)
    if name == "rmsprop":
        return optim.RMSprop(params, lr=lr, alpha=p.pop("decay_rate", p.pop("alpha", 0.99)), **p)
    if name in ("adam", "adamw"):
        betas = (p.pop("beta1", 0.9), p.pop("beta2", 0.999))
        cls = optim.Adam if name == "adam" else optim.AdamW
        return cls(params, lr=lr, betas=p.pop("betas", betas), **p)
    raise ValueError(f"unknown optimizer {name_or_optimizer!r}; use sgd, momentum, nesterov, adagrad, rmsprop, "
                     f"adam or adamw")


class Trainer:
    """Trains `network` (a Module with `loss(x, t)` and `accuracy(x, t)`), the lecture's way.

    Each epoch visits every training sample once in a new random order, in
    mini-batches of `mini_batch_size`; after it, train and test accuracy are measured
    on the first `evaluate_sample_num_per_epoch` samples (all when None).
    x_train (N, ...) with t_train (N,) or (N, classes), likewise the test pair; a length
    mismatch is a ValueError here, not a wrong accuracy later.

    `status` is "not started", "running", "completed", "interrupted" (Ctrl-C: the
    network keeps the weights of the last whole step) or "diverged" (TrainingDiverged:
    the last weights whose loss was finite). The per-epoch lists hold whole epochs only.
    """

    def __init__(self, network, x_train, t_train, x_test, t_test, epochs=20, mini_batch_size=100,
                 optimizer="SGD", optimizer_param=None, evaluate_sample_num_per_epoch=None, verbose=True,
                 seed=None):
        if epochs < 0:
            raise ValueError(f"Trainer: epochs must be >= 0, got {epochs}")
        _check_pair("train", x_train, t_train)
        _check_pair("test", x_test, t_test)
        n_eval = evaluate_sample_num_per_epoch
        if n_eval is not None and (isinstance(n_eval, bool) or int(n_eval) != n_eval or n_eval < 1):
            raise ValueError(f"Trainer: evaluate_sample_num_per_epoch must be a positive integer or None, "
                             f"got {n_eval!r}")
        self.network = network
        self.x_train, self.t_train, self.x_test, self.t_test = x_train, t_train, x_test, t_test
        self.epochs, self.batch_size = int(epochs), int(mini_batch_size)
        self.evaluate_sample_num_per_epoch = evaluate_sample_num_per_epoch
        self.verbose = verbose
        self.optimizer = make_optimizer(optimizer, network.parameters(), optimizer_param)  # lr 0.01 unless given
        self.loader = DataLoader(x_train, t_train, self.batch_size, shuffle=True, seed=seed)
        self.iter_per_epoch = len(self.loader)
        self.max_iter = self.epochs * self.iter_per_epoch
        self.current_iter = self.current_epoch = 0
        self.train_loss_list: list[float] = []
        self.train_acc_list: list[float] = []
        self.test_acc_list: list[float] = []
        self.epoch_loss_list: list[float] = []
        self.epoch_seconds: list[float] = []
        self._params = list(network.parameters())
        self._good = [p.data.copy() for p in self._params]
        self._mid_step = False  # between the weights' snapshot and the end of optimizer.step()
        self.status = "not started"

    def train_step(self, x: Tensor, t: Tensor) -> float:
        """One mini-batch: forward, backward, optimizer step. Returns the loss."""
        loss = self.network.loss(x, t)
        value = float(loss.item())
        if not math.isfinite(value):
            for p, good in zip(self._params, self._good):
                np.copyto(p.data, good)
            raise TrainingDiverged(
                f"loss became {value} at epoch {self.current_epoch + 1}, iteration {self.current_iter + 1}; "
                f"the network keeps the last weights whose loss was finite (try a smaller learning rate)")
        for p, good in zip(self._params, self._good):
            np.copyto(good, p.data)
        self._mid_step = True
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self._mid_step = False
        self.train_loss_list.append(value)
        self.current_iter += 1
        return value

    def _evaluate(self):
        n = self.evaluate_sample_num_per_epoch
        xtr, ttr, xte, tte = self.x_train, self.t_train, self.x_test, self.t_test
        if n is not None:
            xtr, ttr, xte, tte = xtr[:n], ttr[:n], xte[:n], tte[:n]
        return self.network.accuracy(xtr, ttr), self.network.accuracy(xte, tte)

    def train(self) -> float:
        """Run all epochs; returns the final accuracy on the whole test set.

        Ctrl-C (KeyboardInterrupt) and TrainingDiverged propagate after `status` is set;
        an interrupted optimizer step is undone, so the weights are those of a whole step."""
        bar = _progress(self.max_iter, self.verbose)
        self.status = "running"
        try:
            for epoch in range(self.epochs):
                self._epoch(epoch, bar)
        except TrainingDiverged:
            self.status = "diverged"
            raise
        except KeyboardInterrupt:
            if self._mid_step:
                for p, good in zip(self._params, self._good):
                    np.copyto(p.data, good)
                self._mid_step = False
            self.status = "interrupted"
            raise
        finally:
            if bar is not None:
                bar.close()
        final = self.network.accuracy(self.x_test, self.t_test)
        self.status = "completed"
        if self.verbose:
            print(f"final test accuracy: {final:.4f}", flush=True)
        return final

    def _epoch(self, epoch: int, bar) -> None:
        """One pass over the training set, then the accuracies; the lists grow only when it is whole."""
        self.current_epoch = epoch
        start, losses = time.perf_counter(), []
        for x, t in self.loader:
            losses.append(self.train_step(x, t))
            if bar is not None and (len(losses) % 10 == 0 or len(losses) == self.iter_per_epoch):
                acc = f"{self.test_acc_list[-1]:.3f}" if self.test_acc_list else "-"
                bar.set_postfix(epoch=epoch + 1, loss=f"{np.mean(losses[-10:]):.4f}", test_acc=acc, refresh=False)
                bar.update(epoch * self.iter_per_epoch + len(losses) - bar.n)
        seconds = time.perf_counter() - start
        train_acc, test_acc = self._evaluate()
        self.epoch_seconds.append(seconds)
        self.epoch_loss_list.append(float(np.mean(losses)) if losses else float("nan"))
        self.train_acc_list.append(train_acc)
        self.test_acc_list.append(test_acc)
        msg = (f"epoch {epoch + 1}/{self.epochs}: loss {self.epoch_loss_list[-1]:.4f}, train acc {train_acc:.4f}, "
               f"test acc {test_acc:.4f}, {seconds:.1f}s")
        if bar is not None:
            bar.write(msg)
        elif self.verbose:
            print(msg, flush=True)


def _check_pair(split: str, x, t) -> None:
    """Images and labels of one split: as many of each, and at least one."""
    nx, nt = len(x), len(t)
    if nx != nt:
        raise ValueError(f"Trainer: x_{split} has {nx} samples but t_{split} has {nt}")
    if nx == 0:
        raise ValueError(f"Trainer: x_{split} is empty")


def _progress(total: int, verbose: bool):
    if not verbose or total == 0:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional: plain per-epoch lines instead
        return None
    return tqdm(total=total, unit="step", dynamic_ncols=True, leave=False, disable=None)  # off when not a terminal
