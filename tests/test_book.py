"""The lecture book's ch. 7 scripts ("Deep Learning from Scratch": train_convnet.py,
gradient_check.py, visualize_filter.py, common/trainer.py) with only their imports changed:
top-level names, the numerical gradient check, numpy helpers on predict's output, the
params.pkl that save_params / load_params exchange with the book, and a restricted
unpickler that runs nothing from the file."""
import builtins
import os
import pickle
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_models import quadrant_blobs, tiny_net

import tinygrad_cnn
from tinygrad_cnn import SimpleConvNet, Trainer, load_mnist, manual_seed
from tinygrad_cnn._io import UnsafePickleError

ROOT = Path(__file__).resolve().parents[1]
KEYS = ["W1", "b1", "W2", "b2", "W3", "b3"]


def test_the_books_names_are_top_level():
    assert {"SimpleConvNet", "Trainer", "load_mnist"} <= set(tinygrad_cnn.__all__)
    assert load_mnist is tinygrad_cnn.data.load_mnist
    assert SimpleConvNet is tinygrad_cnn.models.SimpleConvNet and Trainer is tinygrad_cnn.trainer.Trainer


# ----------------------------------------------------------------------------- gradient_check.py


def book_gradient_check(network, x, t) -> dict:
    """What the book's gradient_check.py prints: mean |numerical - backprop| per parameter."""
    grad_num = network.numerical_gradient(x, t)
    grad = network.gradient(x, t)
    return {key: np.abs(grad_num[key] - grad[key]).mean() for key in grad_num}


@pytest.mark.parametrize("dtype, bound", [(np.float64, 1e-9), (None, 1e-7)])
def test_ch07_gradient_check(dtype, bound):
    """ch07/gradient_check.py: one 10x10 image, its label as a (1, 1) array. A float64 network
    agrees to ~1e-10; the default float32 one to its own rounding (the numerical side is
    float64 either way, so no 1e-4 noise from float32 differences)."""
    manual_seed(0)
    network = SimpleConvNet(input_dim=(1, 10, 10), conv_param={"filter_num": 10, "filter_size": 3, "pad": 0,
                                                               "stride": 1},
                            hidden_size=10, output_size=10, weight_init_std=0.01, dtype=dtype)
    x = np.random.default_rng(0).random(100).reshape((1, 1, 10, 10))
    t = np.array([1]).reshape((1, 1))
    diffs = book_gradient_check(network, x, t)
    assert list(diffs) == KEYS
    assert max(diffs.values()) < bound, diffs


def test_ch05_gradient_check_pattern_with_one_hot_labels_to_1e_8():
    """ch05's pattern (three samples, one-hot labels, np.average of the differences) on a small
    SimpleConvNet."""
    net = tiny_net(input_dim=(1, 6, 6), conv_param={"filter_num": 2, "filter_size": 3}, hidden_size=4,
                   output_size=3, weight_init_std=0.5, dtype=np.float64)
    x = np.random.default_rng(4).random((3, 1, 6, 6))
    t = np.eye(3)[[2, 0, 1]]
    grad_numerical, grad_backprop = net.numerical_gradient(x, t), net.gradient(x, t)
    for key in grad_numerical:
        assert np.average(np.abs(grad_backprop[key] - grad_numerical[key])) < 1e-8, key
        assert np.abs(grad_backprop[key]).max() > 1e-4, key  # a real gradient, not zeros on both sides


# ----------------------------------------------------------------------------- numpy helpers on predict's output


def book_softmax(x):
    x = x - np.max(x, axis=-1, keepdims=True)
    return np.exp(x) / np.sum(np.exp(x), axis=-1, keepdims=True)


def book_cross_entropy_error(y, t):
    if y.ndim == 1:
        t, y = t.reshape(1, t.size), y.reshape(1, y.size)
    if t.size == y.size:
        t = t.argmax(axis=1)
    return -np.sum(np.log(y[np.arange(y.shape[0]), t] + 1e-7)) / y.shape[0]


def test_predict_output_works_with_the_books_numpy_helpers():
    net = tiny_net()
    x, t = quadrant_blobs(7, seed=5)
    y = net.predict(x)
    assert y.shape == (7, 4) and y.ndim == 2
    pred = np.argmax(y, axis=1)  # accuracy() and the trainer
    assert isinstance(pred, np.ndarray) and pred.shape == (7,)
    acc = np.sum(pred == t) / x.shape[0]
    assert acc == pytest.approx(net.accuracy(x, t))
    p = book_softmax(y)
    np.testing.assert_allclose(np.sum(p, axis=1), 1.0, rtol=1e-6)
    loss = net.loss(x, t)
    assert book_cross_entropy_error(p, t) == pytest.approx(float(loss), rel=1e-4)
    assert book_cross_entropy_error(p, np.eye(4)[t]) == pytest.approx(float(loss), rel=1e-4)
    assert f"{loss:.4f}" == f"{float(loss):.4f}"


def test_the_books_optimizer_updates_through_params_train_the_network():
    """common/trainer.py with the book's own optimizers: params[key] -= lr * grads[key] (SGD) and
    Adam's state from params.items(); the updates must reach the network."""
    net = tiny_net(weight_init_std="he")
    x, t = quadrant_blobs(40, seed=6)
    params = net.params
    m = {key: np.zeros_like(val) for key, val in params.items()}
    first = float(net.loss(x, t))
    for _ in range(30):
        grads = net.gradient(x, t)
        for key in params.keys():
            m[key] = 0.9 * m[key] + grads[key]
            params[key] -= 0.05 * m[key]
    assert float(net.loss(x, t)) < 0.5 * first


def test_visualize_filter_draws_the_first_layers_filters(tmp_path):
    plt = pytest.importorskip("matplotlib.pyplot")
    net = tiny_net()
    filters = net.params["W1"]
    FN, C, FH, FW = filters.shape
    nx = 8
    ny = int(np.ceil(FN / nx))
    fig = plt.figure()
    for i in range(FN):
        ax = fig.add_subplot(ny, nx, i + 1, xticks=[], yticks=[])
        ax.imshow(filters[i, 0], cmap=plt.cm.gray_r, interpolation="nearest")
    fig.savefig(tmp_path / "filters.png")
    plt.close(fig)
    assert (tmp_path / "filters.png").stat().st_size > 0


# ----------------------------------------------------------------------------- train_convnet.py


def test_train_convnet_flow_on_a_tiny_synthetic_set(tmp_path, monkeypatch, capsys):
    """ch07/train_convnet.py with the Trainer's arguments as the book gives them, then
    save_params("params.pkl") and visualize_filter's load_params("params.pkl")."""
    monkeypatch.chdir(tmp_path)
    x_train, t_train = quadrant_blobs(200, seed=0)
    x_test, t_test = quadrant_blobs(60, seed=1)
    t_train = t_train.reshape(-1, 1)  # the book's labels come in any of its shapes
    max_epochs = 3
    manual_seed(0)
    network = SimpleConvNet(input_dim=(1, 8, 8), conv_param={"filter_num": 4, "filter_size": 3, "pad": 0,
                                                             "stride": 1},
                            hidden_size=10, output_size=4, weight_init_std="he")
    trainer = Trainer(network, x_train, t_train, x_test, t_test, epochs=max_epochs, mini_batch_size=20,
                      optimizer="Adam", optimizer_param={"lr": 0.01}, evaluate_sample_num_per_epoch=1000)
    trainer.train()
    network.save_params("params.pkl")
    out = capsys.readouterr().out
    assert "final test accuracy" in out
    x = np.arange(max_epochs)  # the book plots these against each other
    assert len(trainer.train_acc_list) == len(trainer.test_acc_list) == len(x)
    assert trainer.test_acc_list[-1] > 0.9
    assert sorted(os.listdir(tmp_path)) == ["params.pkl"]
    with open("params.pkl", "rb") as f:  # what the book's load_params does
        book = pickle.load(f)
    assert list(book) == KEYS and all(type(v) is np.ndarray for v in book.values())
    again = SimpleConvNet(input_dim=(1, 8, 8), conv_param={"filter_num": 4, "filter_size": 3}, hidden_size=10,
                          output_size=4)
    again.load_params("params.pkl")
    for key in KEYS:
        np.testing.assert_array_equal(again.params[key], network.params[key])
        np.testing.assert_array_equal(book[key], network.params[key])
    assert again.accuracy(x_test, t_test) == network.accuracy(x_test, t_test)


# ----------------------------------------------------------------------------- params.pkl


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_load_params_reads_a_plain_pickle_of_a_dict_of_float64_arrays(tmp_path, protocol):
    """The book's save_params: pickle.dump of a dict of float64 arrays (any protocol)."""
    rng = np.random.default_rng(protocol)
    params = {k: rng.standard_normal(v.shape) for k, v in tiny_net().params.items()}
    with open(tmp_path / "params.pkl", "wb") as f:
        pickle.dump(params, f, protocol=protocol)
    net = tiny_net(weight_init_std=1.0)
    net.load_params(tmp_path / "params.pkl")
    for k, v in params.items():
        assert net.params[k].dtype == np.float32
        np.testing.assert_array_equal(net.params[k], v.astype(np.float32))


def test_a_pickle_round_trip_keeps_every_dtype_order_and_layout(tmp_path):
    arrays = {"f": np.arange(6.0).reshape(2, 3), "big": np.arange(3, dtype=">i4"), "fortran":
              np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)), "strided": np.arange(10.0)[::3],
              "empty": np.zeros((0, 2)), "bool": np.array([True, False]), "complex": np.array([1 + 2j]),
              "scalar": np.float64(0.5), "int": 7}
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        path = tmp_path / f"p{protocol}.pkl"
        path.write_bytes(pickle.dumps(arrays, protocol=protocol))
        back = tinygrad_cnn._io.load_arrays(path)
        assert list(back) == list(arrays)
        for k, v in arrays.items():
            v = np.asarray(v)
            assert back[k].dtype == v.dtype and back[k].flags.writeable, (protocol, k)
            np.testing.assert_array_equal(back[k], v)


def test_save_params_pkl_is_the_books_format_and_npz_otherwise(tmp_path):
    net = tiny_net()
    net.save_params(tmp_path / "params.pkl")
    net.save_params(tmp_path / "params.npz")
    net.save_params(tmp_path / "PARAMS.PKL")
    assert (tmp_path / "params.pkl").read_bytes()[:2] == b"\x80\x04"  # protocol 4: Python 3.4 and later
    assert (tmp_path / "PARAMS.PKL").read_bytes() == (tmp_path / "params.pkl").read_bytes()
    assert (tmp_path / "params.npz").read_bytes()[:2] == b"PK"
    with open(tmp_path / "params.pkl", "rb") as f:
        plain = pickle.load(f)
    assert type(plain) is dict and list(plain) == KEYS
    for k, v in net.params.items():
        assert type(plain[k]) is np.ndarray and plain[k].dtype == v.dtype
        np.testing.assert_array_equal(plain[k], v)


def test_save_params_pkl_is_atomic_and_keeps_permissions(tmp_path):
    path = tmp_path / "params.pkl"
    path.write_bytes(b"old")
    path.chmod(0o600)
    tiny_net().save_params(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["params.pkl"]  # no temporary file left
    with pytest.raises(ValueError, match="numbers only"):
        tinygrad_cnn._io.save_arrays_pickle(path, {"s": np.array(["text"])})
    assert sorted(os.listdir(tmp_path)) == ["params.pkl"] and path.read_bytes()[:2] == b"\x80\x04"


class RunsCode:
    """Pickles to a call of `func(*args)`: what a malicious params.pkl would hold."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(marker: Path) -> dict:
    """The refused global's name -> an object whose unpickling would create `marker`."""
    code = f"open({str(marker)!r}, 'w').close()"
    return {
        "builtins.exec": RunsCode(builtins.exec, code),
        "builtins.eval": RunsCode(builtins.eval, code),
        f"{os.system.__module__}.system": RunsCode(os.system, f"touch {marker}"),  # posix.system
        "subprocess.call": RunsCode(subprocess.call, ["touch", str(marker)]),
    }


@pytest.mark.parametrize("name", list(_payloads(Path("unused"))))
def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path, name):
    marker = tmp_path / "ran"
    evil = {"W1": np.zeros((3, 1, 3, 3)), "b1": _payloads(marker)[name]}  # behind a real array, as a doctored file
    path = tmp_path / "params.pkl"
    path.write_bytes(pickle.dumps(evil, protocol=4))
    net = tiny_net()
    before = {k: v.copy() for k, v in net.params.items()}
    with pytest.raises(UnsafePickleError) as info:
        net.load_params(path)
    assert isinstance(info.value, ValueError) and isinstance(info.value, pickle.UnpicklingError)
    assert str(info.value).startswith(f"{path}: refused the global {name}")
    assert not marker.exists()
    for k, v in net.params.items():
        np.testing.assert_array_equal(v, before[k])


def test_the_payload_does_run_under_a_plain_pickle_load(tmp_path):
    """The control for the test above: the same bytes do run code when unpickled normally."""
    marker = tmp_path / "ran"
    data = pickle.dumps({"b1": _payloads(marker)["builtins.exec"]}, protocol=4)
    pickle.loads(data)
    assert marker.exists()


@pytest.mark.parametrize("make, refused", [
    (lambda: {"W1": np.array([1, None], dtype=object)}, "the dtype 'O8'"),
    (lambda: {"W1": np.zeros(2, dtype=[("a", "f8")])}, "the dtype 'V8'"),
    (lambda: {"W1": np.ma.masked_array([1.0])}, "the global numpy.ma.core._mareconstruct"),
    (lambda: {"W1": np.recarray(1, dtype=[("a", "f8")])}, f"the global {np.recarray.__module__}.recarray"),
    (lambda: {"W1": np.array(["text"])}, "the dtype 'U4'"),
])
def test_numpy_objects_other_than_numeric_arrays_are_refused(tmp_path, make, refused):
    path = tmp_path / "params.pkl"
    path.write_bytes(pickle.dumps(make(), protocol=2))
    with pytest.raises(UnsafePickleError, match=re.escape(f"{path}: refused {refused}")):
        tiny_net().load_params(path)


def test_a_crafted_dtype_that_would_crash_numpy_is_refused(tmp_path):
    """numpy.dtype's own __setstate__ takes its flags from the file: a void dtype claiming an
    object field makes numpy read 8 bytes of the file as a PyObject pointer (a segfault, or
    worse). Run in a child process so that a regression cannot take the test run down."""
    script = textwrap.dedent(f"""
        import pickle, numpy as np
        from tinygrad_cnn._io import load_arrays, UnsafePickleError

        class Dtype:
            def __reduce__(self):
                return np.dtype, ("V8", False, True), (3, "|", None, ("a",), {{"a": (np.dtype("f8"), 0)}}, 8, 1, 1)

        class Array:
            def __reduce__(self):
                return np.zeros(0).__reduce__()[0], (np.ndarray, (0,), b"b"), (1, (1,), Dtype(), False, b"A" * 8)

        path = {str(tmp_path / "params.pkl")!r}
        open(path, "wb").write(pickle.dumps({{"W1": Array()}}, protocol=4))
        try:
            load_arrays(path)
        except UnsafePickleError as e:
            print(e)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "refused the dtype 'V8'" in proc.stdout


@pytest.mark.parametrize("content, message", [
    (pickle.dumps([np.zeros(2)], protocol=4), "a pickle of a list, not a dict of named arrays"),
    (pickle.dumps({"W1": "text"}, protocol=4), "'W1' holds a str, not an array of numbers"),
    (pickle.dumps({1: np.zeros(2)}, protocol=4), "the key 1 is a int, not a name"),
    (pickle.dumps({"W1": np.zeros(100)}, protocol=4)[:120], "a damaged pickle checkpoint"),
])
def test_a_pickle_that_is_not_named_arrays_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "params.pkl"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(f"{path}: {message}")):
        tiny_net().load_params(path)


def test_load_params_names_the_file_when_the_book_pickle_does_not_fit(tmp_path):
    path = tmp_path / "params.pkl"
    params = {k: np.zeros(v.shape) for k, v in tiny_net().params.items()}
    params["W2"] = np.zeros((5, 5))
    path.write_bytes(pickle.dumps(params))
    with pytest.raises(ValueError, match=rf"(?s){re.escape(str(path))}: Error.*size mismatch for W2"):
        tiny_net().load_params(path)


# ----------------------------------------------------------------------------- README


_GOOD = {protocol: pickle.dumps({"W1": np.arange(6.0).reshape(2, 3), "b1": np.array([1, 2], np.int32),
                                 "s": np.float32(1)}, protocol=protocol) for protocol in range(2, 6)}


@settings(max_examples=200)
@given(st.sampled_from(sorted(_GOOD)), st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)), min_size=1,
                                                 max_size=3),
       st.one_of(st.none(), st.integers(0, 400)))
def test_a_corrupted_pickle_is_a_value_error_never_a_crash(tmp_path_factory, protocol, changes, cut):
    """Random bytes changed (lengths, memo indices, opcodes) and cuts: arrays or a ValueError,
    never a MemoryError from a length field claiming gigabytes, nor anything worse."""
    data = bytearray(_GOOD[protocol])
    for where, byte in changes:
        data[where % len(data)] = byte
    path = tmp_path_factory.mktemp("fuzz") / "params.pkl"
    path.write_bytes(bytes(data[:cut]))
    try:
        arrays = tinygrad_cnn._io.load_arrays(path)
    except ValueError:
        return
    assert all(isinstance(a, np.ndarray) and a.dtype.kind in "biufc" for a in arrays.values())
