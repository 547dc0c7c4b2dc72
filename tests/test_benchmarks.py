"""The benchmark scripts run for a few steps (so they cannot rot). No timing is asserted."""
import json
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_conv_pool  # noqa: E402
import gemm_floor  # noqa: E402
import bench_models  # noqa: E402
import bench_pool_kernels  # noqa: E402
import bench_hand_numpy  # noqa: E402
import bench_train_step  # noqa: E402
import profile_step  # noqa: E402
import thread_costs  # noqa: E402
import where_time_goes  # noqa: E402

from tinygrad_cnn import ops, optim  # noqa: E402


def test_train_step_benchmark_runs(tmp_path):
    out = tmp_path / "r.json"
    result = bench_train_step.main(["--repeats", "2", "--batch", "8", "--memory-steps", "3", "--json", str(out)])
    assert {"ours step", "ours inference", "lecture step", "lecture inference"} <= set(result["ms"])
    assert "step lecture/ours (speed-up)" in result["ratios"]
    assert result["memory"]["peak_step_mb"] > 0
    assert json.loads(out.read_text())["batch"] == 8


def test_conv_pool_benchmark_runs():
    result = bench_conv_pool.main(["--repeats", "2", "--batch", "4"])
    assert {"conv2d ours/lecture", "max_pool2d ours/lecture"} <= set(result["ratios"])


def test_pool_kernels_benchmark_runs_and_puts_the_kernels_back():
    from tinygrad_cnn import kernels
    rows = bench_pool_kernels.main(["--old", kernels.pooling.__file__, "--rounds", "1", "--only", "b1 NCHW"])
    assert {r["kernel"] for r in rows} == {"max_pool arg", "max_pool", "pool_scatter"}
    before = kernels.max_pool
    result = bench_pool_kernels.main(["--old", kernels.pooling.__file__, "--step", "lecture", "--batch", "2", "--rounds", "1"])
    assert set(result) == {"old", "new"} and kernels.max_pool is before


def test_step_profile_runs_and_puts_the_timers_back():
    before = vars(ops.MatMul)["forward"], vars(optim.Optimizer)["step"]
    result = profile_step.main(["--steps", "2", "--warmup", "1", "--batch", "4"])
    assert {"MatMul.forward", "MaxPool2d.forward", "Relu.backward", "optimizer.step"} <= set(result["ops_ms"])
    assert (vars(ops.MatMul)["forward"], vars(optim.Optimizer)["step"]) == before
    result = profile_step.main(["--steps", "1", "--warmup", "1", "--batch", "2", "--network", "lenet5", "--inference"])
    assert result["network"] == "lenet5" and "optimizer.step" not in result["ops_ms"]


def test_hand_written_step_runs_and_matches_autograd():
    result = bench_hand_numpy.main(["--repeats", "2", "--batch", "6"])
    assert {"hand-written numpy step", "ours step"} <= set(result["ms"])
    assert result["gradient_max_rel_diff"] < 1e-5  # the same gradients: the two do the same work


def test_models_benchmark_runs_with_agreeing_logits(tmp_path):
    out = tmp_path / "m.json"
    result = bench_models.main(["--cases", "lecture:2,lenet5:2", "--repeats", "1", "--warmup", "1", "--settle", "0",
                                  "--json", str(out)])
    cases = {c["network"]: c for c in result["cases"]}
    assert set(cases) == {"lecture", "lenet5"}
    for c in cases.values():
        assert {"ours step", "ours inference"} <= set(c["ms"])
        assert c["memory"]["ours_alloc_mb"] > 0
        if "torch step" in c["ms"]:  # logits were checked to agree before timing
            assert c["ratios"]["step"]["median"] > 0 and c["memory"]["torch_alloc_mb"] > 0
    assert json.loads(out.read_text())["runs"] == 1


def test_models_benchmark_networks_build_and_measure_rss():
    for name in bench_models.NETWORKS:
        ours, _ = bench_models.build(name, None)
        x = np.zeros((2, 1, 28, 28), np.float32)
        assert ours(x).shape == (2, 10)
    assert bench_models.rss_peak_here("lecture", 3, "ours") >= 0
    with pytest.raises(ValueError, match="bad case"):
        bench_models.parse_cases("lecture:0")


def test_gemm_floor_lists_the_products_of_a_step():
    result = gemm_floor.main(["--cases", "deepconvnet:2,lecture:1", "--repeats", "1"])
    deep, lecture = result["cases"]
    whats = [p["what"] for p in deep["products"]]
    assert whats.count("forward") == 8 and whats.count("weight grad") == 8 and whats.count("input grad") == 7
    # the lecture net: conv (30, 25) @ (25, 576), its weight gradient, then three products per linear layer
    assert [p["mkn"] for p in lecture["products"]][:2] == [(30, 25, 576), (25, 576, 30)]
    assert lecture["step_gflop"] > lecture["inference_gflop"] > 0 and deep["step_ms"] > 0
    assert result["cores"] >= 1 and gemm_floor.time_product_per_core((30, 5000, 25), "weight grad", 1) > 0


def test_where_time_goes_puts_each_op_under_its_layer_and_the_timers_back():
    from helpers import torch
    assert where_time_goes._torch_kind("autograd::engine::evaluate_function: ConvolutionBackward0") == "conv"
    assert where_time_goes._torch_kind("aten::max_pool2d") == "pooling"
    assert where_time_goes._torch_kind("Optimizer.step#Adam.step") == "optimizer"
    assert where_time_goes._torch_kind("aten::flatten") == "rest"
    before = vars(ops.MatMul)["forward"], vars(optim.Optimizer)["zero_grad"]
    step = bench_models.case_fns("mnist_example", 2, None)["ours step"]
    step()
    with where_time_goes.OurTimers() as timers:
        step()
    assert set(timers.ms) >= {"conv", "linear", "activation", "pooling", "dropout", "loss", "optimizer"}
    assert all(v > 0 for v in timers.ms.values())
    assert (vars(ops.MatMul)["forward"], vars(optim.Optimizer)["zero_grad"]) == before
    if torch is None:
        return
    result = where_time_goes.profile("lenet5", 2, steps=2, per_block=1)
    assert result["ours"]["conv"] > 0 and result["torch"]["conv"] > 0
    assert set(result["floor"]) == {"conv", "linear"} and result["step"]["torch"] > 0


def test_thread_costs_runs_and_leaves_no_worker_spinning(tmp_path):
    before = threading.active_count()
    out = tmp_path / "t.json"
    result = thread_costs.main(["--repeats", "3", "--sizes-mb", "1", "--json", str(out)])
    assert set(result["wake_us"]) == {0, 0.1, 1, 5, 10, 50} and min(result["wake_us"].values()) > 0
    for row in result["handoff_us"].values():
        assert {"one thread", "split (pool)"} <= set(row)
    assert set(result["bandwidth_gb_s"]) == {1} and min(result["bandwidth_gb_s"][1]) > 0
    assert json.loads(out.read_text())["products_ms"]["alone"] > 0
    assert threading.active_count() <= before + 1  # (the package's pool may have started its worker)
