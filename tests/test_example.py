"""examples/mnist_cnn.py: end to end on a subset of Fashion-MNIST (Debian's dataset-fashion-mnist);
bad arguments, Ctrl-C and divergence on a tiny synthetic IDX set."""
import importlib.util
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from data_helpers import ROOT, fake_arrays, write_set

from tinygrad_cnn import data
from tinygrad_cnn.data import DEBIAN_FASHION_DIR, ChecksumMismatchError
from tinygrad_cnn.models import SimpleConvNet

EXAMPLE = ROOT / "examples" / "mnist_cnn.py"
needs_fashion = pytest.mark.skipif(not os.path.isdir(DEBIAN_FASHION_DIR),
                                   reason="Debian's dataset-fashion-mnist is not installed")
has_matplotlib = importlib.util.find_spec("matplotlib") is not None


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("mnist_cnn_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def synth(tmp_path):
    """A tiny learnable IDX set (not canonical: needs --no-verify) in tmp_path/synth."""
    rng = np.random.default_rng(0)
    arrays = fake_arrays(n=100)
    for split in ("train", "t10k"):
        t = rng.integers(0, 10, 100).astype(np.uint8)
        x = (rng.random((100, 28, 28)) * 60).astype(np.uint8)
        for k in range(10):
            x[t == k, 2 * k:2 * k + 4, :] = 250
        arrays[f"{split}-images-idx3-ubyte"], arrays[f"{split}-labels-idx1-ubyte"] = x, t
    write_set(tmp_path / "synth", arrays, gz=False)
    return tmp_path / "synth"


def run(args, cwd, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "XDG_CACHE_HOME": str(cwd / "cache")}
    env.pop("TINYGRAD_CNN_DATA", None)
    return subprocess.Popen([sys.executable, str(EXAMPLE), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=cwd, env=env, **kw)


@needs_fashion
def test_example_runs_end_to_end(tmp_path):
    out = tmp_path / "run"
    proc = run(["--dataset", "fashion-mnist", "--limit", "600", "--epochs", "2", "--init", "he", "--out", str(out)],
               tmp_path)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "final test accuracy on 600 fashion-mnist images" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs_done"] == 2
    assert len(metrics["epochs"]) == 2 and metrics["dataset"] == "fashion-mnist"
    assert metrics["final_test_accuracy"] > 0.5  # chance is 0.1
    assert metrics["epochs"][1]["loss"] < metrics["epochs"][0]["loss"]
    assert (out / "params.npz").stat().st_size > 0
    if has_matplotlib:
        for picture in ("learning_curve", "filters_before", "filters_after", "feature_maps"):
            assert (out / f"{picture}.png").read_bytes()[:4] == b"\x89PNG", picture
        assert "filters_after.png, feature_maps.png" in stdout
    assert not list(out.glob("*.part*"))


BAD_ARGS = [
    (["--limit", "0"], "argument --limit: must be at least 1, got 0"),
    (["--limit", "-100"], "argument --limit: must be at least 1, got -100"),
    (["--eval-samples", "0"], "argument --eval-samples: must be at least 1, got 0"),
    (["--data-dir", "synht"], "argument --data-dir: no such folder: synht"),
    (["--data-dir", "a-file"], "argument --data-dir: not a folder: a-file"),
    (["--epochs", "-1"], "argument --epochs: must be at least 1, got -1"),
    (["--epochs", "two"], "argument --epochs: expected an integer, got 'two'"),
    (["--batch-size", "0"], "argument --batch-size: must be at least 1, got 0"),
    (["--lr", "-1"], "argument --lr: must be a positive finite number, got -1"),
    (["--lr", "nan"], "argument --lr: must be a positive finite number, got nan"),
    (["--optimizer", "foo"], "argument --optimizer: invalid choice: 'foo'"),
    (["--init", "bogus"], "argument --init: expected a positive number, 'he' or 'xavier', got 'bogus'"),
    (["--seed", "-3"], "argument --seed: must be at least 0, got -3"),
    (["--out", "a-file"], "argument --out: a-file exists and is not a folder"),
    (["--out", "a-file/run"], "argument --out: cannot make a-file/run: "),
]


@pytest.mark.parametrize("args, message", BAD_ARGS, ids=[" ".join(a) for a, _ in BAD_ARGS])
def test_bad_arguments_are_usage_errors_before_any_folder(example, tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(SystemExit) as info:
        example.main([*args, "--out", "runs/x"] if "--out" not in args else args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and message in err, err
    assert sorted(os.listdir(tmp_path)) == ["a-file"]


def test_a_bad_argument_exits_2_from_the_shell(tmp_path):
    proc = run(["--data-dir", "misspelled", "--epochs", "1"], tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and err.count("\n") == 1 and "no such folder: misspelled" in err
    assert os.listdir(tmp_path) == []  # no misspelled folder, no runs/


def _metrics(out):
    return json.loads((out / "metrics.json").read_text())


def _loads_and_is_finite(path):
    net = SimpleConvNet(conv_param={"filter_num": 30, "filter_size": 5, "padding": 1, "bias": False})
    net.load_params(path)
    return all(np.isfinite(v).all() for v in net.params.values())


def test_ctrl_c_writes_the_run_folder_and_exits_130(tmp_path, synth):
    out = tmp_path / "run"
    proc = run(["--data-dir", str(synth), "--no-verify", "--epochs", "100000", "--batch-size", "20",
                "--eval-samples", "20", "--out", str(out)], tmp_path)
    for line in proc.stdout:
        if line.startswith("epoch 2/"):
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.count("\n") == 1 and err.startswith("interrupted after ") and "Traceback" not in err, err
    metrics = _metrics(out)
    assert metrics["status"] == "interrupted" and metrics["epochs_done"] >= 2
    assert len(metrics["epochs"]) == metrics["epochs_done"] and metrics["final_test_accuracy"] is None
    assert _loads_and_is_finite(out / "params.npz")
    if has_matplotlib:
        assert (out / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
        assert (out / "filters_after.png").read_bytes()[:4] == b"\x89PNG"  # the filters so far
    assert not list(out.glob("*.part"))


def test_divergence_writes_the_run_folder_and_exits_1(tmp_path, synth):
    out = tmp_path / "run"
    proc = run(["--data-dir", str(synth), "--no-verify", "--epochs", "3", "--lr", "1e6", "--optimizer", "sgd",
                "--batch-size", "20", "--out", str(out)], tmp_path)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert err.count("\n") == 1 and err.startswith("diverged after 0 of 3 epochs: loss became nan"), err
    metrics = _metrics(out)
    assert metrics["status"] == "diverged" and metrics["epochs_done"] == 0 and metrics["iterations_done"] > 0
    assert _loads_and_is_finite(out / "params.npz")
    if has_matplotlib:
        assert (out / "learning_curve.png").stat().st_size > 0


def test_data_errors_are_one_message_and_no_folder(tmp_path, synth):
    proc = run(["--data-dir", str(synth), "--epochs", "1"], tmp_path)  # not the canonical files
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "Traceback" not in err
    assert err.startswith(f"error: {synth}/train-images-idx3-ubyte: ") and "pass verify=False" in err
    assert sorted(os.listdir(tmp_path)) == ["synth"]


def test_data_dir_holds_the_data_set_its_files_are(example, tmp_path, monkeypatch):
    """With --data-dir and --dataset auto: Fashion-MNIST's files are Fashion-MNIST, not a
    reason to fall back or fail; a folder of neither is an error, not another data set."""
    fashion = fake_arrays(seed=1)
    sums, sizes = write_set(tmp_path / "f", fashion)
    monkeypatch.setitem(data.SHA256, "fashion-mnist", sums)
    monkeypatch.setitem(data.SIZES, "fashion-mnist", sizes)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    name, ((x, t), _) = example.load_data("auto", str(tmp_path / "f"))
    assert name == "fashion-mnist" and x.shape == (5, 1, 28, 28)
    np.testing.assert_array_equal(t, fashion["train-labels-idx1-ubyte"])
    write_set(tmp_path / "neither", fake_arrays(seed=2))
    with pytest.raises(ChecksumMismatchError, match="fashion-mnist's"):
        example.load_data("auto", str(tmp_path / "neither"))
    assert example.load_data("auto", str(tmp_path / "neither"), verify=False)[0] == "custom"
