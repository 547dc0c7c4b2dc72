"""SimpleConvNet with the lecture's API, and the Trainer."""
import re

import numpy as np
import pytest

import tinygrad_cnn
from tinygrad_cnn import Tensor, gradcheck, manual_seed
from tinygrad_cnn.models import SimpleConvNet
from tinygrad_cnn.trainer import Trainer, TrainingDiverged


def tiny_net(**kw):
    manual_seed(0)
    args = dict(input_dim=(1, 8, 8), conv_param={"filter_num": 3, "filter_size": 3, "pad": 0, "stride": 1},
                hidden_size=5, output_size=4, weight_init_std=0.3)
    args.update(kw)
    return SimpleConvNet(**args)


def test_lecture_defaults_and_shapes():
    net = SimpleConvNet()
    shapes = {k: v.shape for k, v in net.params.items()}
    assert shapes == {"W1": (30, 1, 5, 5), "b1": (30,), "W2": (4320, 100), "b2": (100,), "W3": (100, 10),
                      "b3": (10,)}
    assert all(v.dtype == np.float32 for v in net.params.values())
    x = np.zeros((3, 1, 28, 28), dtype=np.float32)
    assert net.predict(x).shape == (3, 10)
    assert net.predict(x.reshape(3, 784)).shape == (3, 10)


def test_lecture_main_conv_param_padding_and_no_bias():
    net = SimpleConvNet(input_dim=(1, 28, 28), conv_param={"filter_num": 30, "filter_size": 5, "padding": 1,
                                                           "bias": False}, hidden_size=100, output_size=10)
    assert "b1" not in net.params and net.params["W2"].shape == (30 * 13 * 13, 100)
    assert net(np.zeros((2, 1, 28, 28), dtype=np.float32)).shape == (2, 10)


def test_unknown_conv_param_and_bad_init_are_errors():
    with pytest.raises(ValueError, match=r"unknown conv_param keys \['filter_count'\]"):
        SimpleConvNet(conv_param={"filter_count": 3})
    with pytest.raises(ValueError, match="weight_init_std"):
        SimpleConvNet(weight_init_std="lecun")


@pytest.mark.parametrize("init,fan,scale", [("he", 25, 2.0), ("relu", 25, 2.0), ("xavier", 25, 1.0),
                                            ("sigmoid", 25, 1.0)])
def test_named_initialisations(init, fan, scale):
    manual_seed(1)
    net = SimpleConvNet(weight_init_std=init)
    assert abs(net.W1.data.std() / np.sqrt(scale / fan) - 1) < 0.15
    assert abs(net.W2.data.std() / np.sqrt(scale / 4320) - 1) < 0.05


def test_gradient_dict_is_autograd_and_matches_finite_differences():
    net = tiny_net()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 1, 8, 8))
    t = np.array([0, 1, 2, 3])
    grads = net.gradient(x.astype(np.float32), t)
    assert set(grads) == {"W1", "b1", "W2", "b2", "W3", "b3"}
    params = [Tensor(p.data.astype(np.float64), requires_grad=True) for p in net.parameters()]

    def loss(*ps):
        saved = [p.data for p in net.parameters()]
        for p, q in zip(net.parameters(), ps):  # evaluate the net at float64 copies
            p.data = q.data
        try:
            from tinygrad_cnn import functional as F
            h = F.conv2d(Tensor(x), ps[0], ps[1]).relu()
            h = F.max_pool2d(h, 2).flatten(1)
            return F.cross_entropy((h @ ps[2] + ps[3]).relu() @ ps[4] + ps[5], t)
        finally:
            for p, s in zip(net.parameters(), saved):
                p.data = s

    assert gradcheck(loss, *params, atol=1e-5, rtol=1e-3)
    # the autograd dict equals the float64 gradient up to float32 rounding
    from tinygrad_cnn import grad
    g64 = grad(loss(*params), params)
    for (name, g), ref in zip(grads.items(), g64):
        np.testing.assert_allclose(g, ref.data, rtol=1e-3, atol=1e-5, err_msg=name)


def test_loss_accepts_one_hot_and_accuracy_counts_the_last_partial_batch():
    net = tiny_net()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 1, 8, 8)).astype(np.float32)
    t = rng.integers(0, 4, 7)
    assert net.loss(x, t).item() == pytest.approx(net.loss(x, np.eye(4)[t]).item(), rel=1e-6)
    pred = net.predict(x).data.argmax(1)
    assert net.accuracy(x, t, batch_size=3) == pytest.approx(np.mean(pred == t))
    assert net.accuracy(x, np.eye(4)[t], batch_size=100) == pytest.approx(np.mean(pred == t))


def test_save_and_load_params(tmp_path):
    a, b = tiny_net(), tiny_net(weight_init_std=1.0)
    path = tmp_path / "p.npz"
    a.save_params(str(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.npz"]  # no temp file left
    b.load_params(str(path))
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    with pytest.raises(ValueError, match="missing keys"):
        SimpleConvNet(conv_param={"bias": False}).load_params(str(path))


def quadrant_blobs(n=200, seed=0):
    """Classes that a small conv net can learn: which quadrant holds a bright blob."""
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 4, n)
    x = rng.normal(0, 0.1, (n, 1, 8, 8)).astype(np.float32)
    for i, c in enumerate(t):
        r, q = divmod(int(c), 2)
        x[i, 0, r * 4:r * 4 + 4, q * 4:q * 4 + 4] += 1.0
    return x, t


def test_trainer_lowers_the_loss_on_a_small_problem():
    x, t = quadrant_blobs()
    xt, tt = quadrant_blobs(100, 1)
    net = tiny_net(weight_init_std="he")
    trainer = Trainer(net, x, t, xt, tt, epochs=5, mini_batch_size=20, optimizer="Adam",
                      optimizer_param={"lr": 0.01}, evaluate_sample_num_per_epoch=100, verbose=False, seed=0)
    final = trainer.train()
    assert len(trainer.train_loss_list) == 5 * 10 and len(trainer.test_acc_list) == 5
    assert np.mean(trainer.train_loss_list[-10:]) < 0.5 * np.mean(trainer.train_loss_list[:10])
    assert final > 0.9


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_weights():
    x, t = quadrant_blobs(40)
    net = tiny_net()
    trainer = Trainer(net, x, t, x, t, epochs=3, mini_batch_size=10, optimizer="sgd",
                      optimizer_param={"lr": 0.1}, verbose=False, seed=0)
    for _ in range(3):
        trainer.train_step(Tensor(x[:10]), Tensor(t[:10]))
    good = {k: v.copy() for k, v in net.params.items()}
    trainer.train_step(Tensor(x[:10]), Tensor(t[:10]))  # finite loss at `good`, then an update
    net.W3.data[0, 0] = np.nan  # something went wrong in the last update
    with pytest.raises(TrainingDiverged, match="loss became nan at epoch 1, iteration 5"):
        trainer.train_step(Tensor(x[:10]), Tensor(t[:10]))
    assert all(np.isfinite(v).all() for v in net.params.values())
    for k, v in good.items():  # back to the weights whose loss was the last finite one
        np.testing.assert_array_equal(net.params[k], v)


# ----------------------------------------------------------------- dtype, labels, params, numerical gradient


@pytest.mark.parametrize("dtype", [np.float64, "float64", tinygrad_cnn.float64, tinygrad_cnn.double])
def test_dtype_option_makes_every_parameter_and_the_output_that_dtype(dtype):
    net = tiny_net(dtype=dtype)
    assert {v.dtype for v in net.params.values()} == {np.dtype(np.float64)}
    x = np.zeros((2, 1, 8, 8), np.float32)
    assert net.predict(x).dtype == np.float64 and net.loss(x, [0, 1]).dtype == np.float64
    assert all(g.dtype == np.float64 for g in net.gradient(x, [0, 1]).values())


def test_dtype_defaults_to_the_default_float_dtype_and_must_be_floating():
    assert tiny_net().W1.dtype == np.float32
    tinygrad_cnn.set_default_dtype(np.float64)
    try:
        assert tiny_net().W1.dtype == np.float64
    finally:
        tinygrad_cnn.set_default_dtype(np.float32)
    with pytest.raises(TypeError, match="dtype must be a floating dtype, got int64"):
        tiny_net(dtype=np.int64)


def test_labels_as_indices_column_or_one_hot_give_the_same_loss_gradient_and_accuracy():
    net = tiny_net()
    x, t = quadrant_blobs(6, seed=3)
    forms = [t, t.reshape(-1, 1), np.eye(4)[t], np.eye(4, dtype=np.int64)[t], Tensor(t.reshape(-1, 1))]
    losses = [net.loss(x, f).item() for f in forms]
    grads = [net.gradient(x, f) for f in forms]
    accs = [net.accuracy(x, f, batch_size=4) for f in forms]
    assert losses == pytest.approx([losses[0]] * len(forms), rel=1e-6)
    assert accs == [accs[0]] * len(forms)
    for g in grads[1:]:
        for k in g:
            np.testing.assert_allclose(g[k], grads[0][k], rtol=1e-5, atol=1e-7, err_msg=k)


@pytest.mark.parametrize("shape", [(6, 2), (6, 5), (6, 4, 1), ()])
def test_labels_of_another_shape_are_a_clear_error(shape):
    net = tiny_net()
    x, _ = quadrant_blobs(6)
    t = np.zeros(shape, np.int64)
    for f in (net.loss, net.accuracy, net.gradient):
        with pytest.raises(ValueError, match=rf"labels must be .*\(N, 4\); got shape {re.escape(str(shape))}"):
            f(x, t)


def test_accuracy_refuses_as_many_labels_as_there_are_not_images():
    net = tiny_net()
    x, t = quadrant_blobs(6)
    with pytest.raises(ValueError, match="accuracy: 6 images but 5 labels"):
        net.accuracy(x, t[:5])
    with pytest.raises(ValueError, match=r"target of shape \(5,\) does not match input batch 6"):
        net.loss(x, t[:5])


def test_params_assignment_writes_into_the_parameter_cast_to_its_dtype():
    net = tiny_net()
    w1 = net.W1
    new = np.random.default_rng(0).standard_normal(w1.shape)  # float64, as the book's arrays
    net.params["W1"] = new
    assert net.W1 is w1 and w1.dtype == np.float32
    np.testing.assert_array_equal(net.params["W1"], new.astype(np.float32))
    assert net.params["W1"] is w1.data  # still the live array
    net.params["b3"] = Tensor([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(net.b3.data, [1, 2, 3, 4])
    logits = net.predict(np.zeros((1, 1, 8, 8), np.float32))
    np.testing.assert_allclose(logits.data[0] - (np.maximum(net.b2.data, 0) @ net.W3.data), [1, 2, 3, 4], rtol=1e-6)


def test_params_assignment_of_a_wrong_shape_or_name_is_refused_and_changes_nothing():
    net = tiny_net()
    before = {k: v.copy() for k, v in net.params.items()}
    with pytest.raises(ValueError, match=r"params\['W1'\].*shape \(3, 3\).*\(3, 1, 3, 3\)"):
        net.params["W1"] = np.zeros((3, 3))
    with pytest.raises(ValueError, match="not numeric"):
        net.params["b2"] = np.array(["a"] * 5)
    with pytest.raises(KeyError, match=r"no parameter 'W4'; it has \['W1', 'b1', 'W2', 'b2', 'W3', 'b3'\]"):
        net.params["W4"] = np.zeros(3)
    with pytest.raises(TypeError, match="cannot be removed"):
        del net.params["W1"]
    for k, v in before.items():
        np.testing.assert_array_equal(net.params[k], v)
    assert list(net.params) == ["W1", "b1", "W2", "b2", "W3", "b3"] and len(net.params) == 6


def test_params_assignment_invalidates_a_graph_that_saved_the_old_values():
    net = tiny_net()
    x, t = quadrant_blobs(4)
    loss = net.loss(x, t)
    net.params["W3"] = np.zeros_like(net.params["W3"])
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        loss.backward()


def test_numerical_gradient_is_float64_and_leaves_the_network_as_it_was():
    net = tiny_net(input_dim=(1, 6, 6), conv_param={"filter_num": 2, "filter_size": 3}, hidden_size=3,
                   output_size=3)
    x = np.random.default_rng(1).random((2, 1, 6, 6))
    t = np.array([0, 2])
    before = {k: v.copy() for k, v in net.params.items()}
    num = net.numerical_gradient(x, t)
    assert list(num) == ["W1", "b1", "W2", "b2", "W3", "b3"]
    for k, v in net.params.items():
        assert num[k].dtype == np.float64 and num[k].shape == v.shape and v.dtype == np.float32
        np.testing.assert_array_equal(v, before[k])
    back = net.gradient(x, t)
    for k in num:  # float32 backprop against the float64 numerical gradient: float32 rounding apart
        assert np.abs(num[k] - back[k]).mean() < 1e-7, k


def test_numerical_gradient_without_the_conv_bias():
    net = tiny_net(input_dim=(1, 6, 6), conv_param={"filter_num": 2, "filter_size": 3, "bias": False},
                   hidden_size=3, output_size=3, dtype=np.float64)
    x, t = np.random.default_rng(2).random((2, 1, 6, 6)), np.array([1, 2])
    num, back = net.numerical_gradient(x, t), net.gradient(x, t)
    assert list(num) == ["W1", "W2", "b2", "W3", "b3"]
    for k in num:
        assert np.abs(num[k] - back[k]).mean() < 1e-9, k
