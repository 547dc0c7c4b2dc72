"""examples/mnist_cnn.py end to end on a subset of Fashion-MNIST (Debian's dataset-fashion-mnist)."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinygrad_cnn.data import DEBIAN_FASHION_DIR

ROOT = Path(__file__).resolve().parents[1]
needs_fashion = pytest.mark.skipif(not os.path.isdir(DEBIAN_FASHION_DIR),
                                   reason="Debian's dataset-fashion-mnist is not installed")


@needs_fashion
def test_example_runs_end_to_end(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "mnist_cnn.py"), "--dataset", "fashion-mnist", "--limit", "600",
         "--epochs", "2", "--init", "he", "--out", str(out), "--data-dir", str(tmp_path / "nothing-here")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "final test accuracy on 600 fashion-mnist images" in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 2 and metrics["dataset"] == "fashion-mnist"
    assert metrics["final_test_accuracy"] > 0.5  # chance is 0.1
    assert metrics["epochs"][1]["loss"] < metrics["epochs"][0]["loss"]
    assert (out / "params.npz").stat().st_size > 0
    if importlib.util.find_spec("matplotlib"):
        assert (out / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(out.glob("*.part*"))
