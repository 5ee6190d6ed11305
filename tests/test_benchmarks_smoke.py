"""Smoke test of the benchmark harness (benchmarks/): it runs on a tiny size in this process,
writes its JSON and markdown, and every contender (Flax, torch, another impl of ours) computes
the same outputs and gradients as ours on the same weights. Timings are never asserted."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

import lstm_jax
from benchmarks import environment, ours, peers, report, run, timing, validation_cost
from benchmarks.workloads import MODELS, Size, flops, make_workload

TINY = Size(batch=2, time=5, input=3, hidden=4)


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    config = run.Config(
        quick=True,
        out=out,
        sizes=(TINY,),
        variants=("scan",),
        torch_memory=False,
        plan=timing.TimingPlan(warmup=1, min_reps=1, max_reps=2, target_s=0.0, gap_s=0.0),
        ceiling_n=64,
    )
    outputs: dict = {}
    results = run.run_suite(config, keep_outputs=outputs)
    paths = report.write_results(results, out, run.output_stem(results))
    return results, outputs, paths


def test_writes_json_and_markdown(suite):
    _, _, (json_path, md_path) = suite
    assert json_path.name.endswith("-cpu-quick.json") or "malloc-tuned" in json_path.name
    saved = json.loads(json_path.read_text())
    assert {(r["model"], r["mode"]) for r in saved["rows"]} == {
        (m, mode) for m in MODELS for mode in ("forward", "train")
    }
    for row in saved["rows"]:
        assert {"ours", "flax", "torch"} <= set(row["contenders"])
        for c in row["contenders"].values():
            assert c["median_ms"] > 0 and c["ratio_vs_ours"] > 0 and c["ceiling_fraction"] > 0
        assert row["contenders"]["ours"]["compile_s"] > 0
        assert row["contenders"]["ours"]["memory"]["temp_plus_output"] >= 0
    env = saved["environment"]
    assert env["versions"]["jax"] and env["versions"]["torch"] and env["cores"] >= 1
    assert "allocator" in env and "cpu_model" in env
    text = md_path.read_text()
    assert "flax/ours" in text and "torch/ours" in text and "Variants of ours" in text


@pytest.mark.parametrize("model", MODELS)
def test_contenders_compute_what_ours_computes(suite, model):
    _, outputs, _ = suite
    by_name = outputs[f"{model} {TINY.label}"]
    reference = by_name["ours"]
    assert {"flax", "torch"} <= set(by_name)
    for name, got in by_name.items():
        for key in ("ys", "dxs"):
            np.testing.assert_allclose(got[key], reference[key], rtol=1e-5, atol=1e-6, err_msg=name)
        assert len(got["dparams"]) == len(reference["dparams"]), name
        for g, r in zip(got["dparams"], reference["dparams"], strict=True):
            np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6, err_msg=name)


def _skip_without_keras():
    if importlib.util.find_spec("keras") is None:
        pytest.skip("keras is not installed (it is in the benchmarks extra)")
    if "keras" not in peers.PEERS:
        pytest.skip("KERAS_BACKEND names another backend than jax")


@pytest.mark.parametrize("model", MODELS)
def test_keras_computes_what_ours_computes(suite, model):
    # The suite's batch has no seq_lengths: Keras masks padding its own way, so this compares
    # whole sequences, outputs and gradients wrt the inputs and every parameter.
    _skip_without_keras()
    _, outputs, _ = suite
    got, reference = (
        outputs[f"{model} {TINY.label}"]["keras"],
        outputs[f"{model} {TINY.label}"]["ours"],
    )
    assert got["ys"].shape == reference["ys"].shape
    for key in ("ys", "dxs"):
        np.testing.assert_allclose(got[key], reference[key], rtol=1e-5, atol=1e-6, err_msg=key)
    assert len(got["dparams"]) == len(reference["dparams"])
    for k, (g, r) in enumerate(zip(got["dparams"], reference["dparams"], strict=True)):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6, err_msg=f"parameter {k}")


def test_keras_gru_layout_round_trips():
    # The GRU is the one with reordered gates (ours r, z, n; Keras z, r, h) and a split bias.
    _skip_without_keras()
    workload = make_workload("gru", TINY)
    p = workload.params
    kernel, _, bias = peers.to_keras("gru", p)
    h = TINY.hidden
    np.testing.assert_array_equal(kernel[:, :h], p.w_ih[:, h : 2 * h])  # z
    np.testing.assert_array_equal(kernel[:, h : 2 * h], p.w_ih[:, :h])  # r
    np.testing.assert_array_equal(bias[1], np.concatenate([np.zeros(2 * h), p.b_hn]))
    back = peers.from_keras("gru", peers.to_keras("gru", p))
    for got, want in zip(back, [p.w_ih, p.w_hh, p.b, p.b_hn], strict=True):
        np.testing.assert_array_equal(got, want)


def test_every_row_has_the_scan_variant(suite):
    results, _, _ = suite
    for row in results["rows"]:
        assert row["contenders"]["ours[impl=scan]"]["options"] == {"impl": "scan"}


def test_variant_options_leave_out_what_auto_resolves_to():
    workload = make_workload("lstm", TINY)
    options = ours.variant_options(workload, ours.VARIANT_KINDS)
    auto = lstm_jax.impl.resolve("auto")
    assert all(lstm_jax.impl.resolve(o["impl"]) != auto for o in options)
    assert len(options) == len(ours.VARIANT_KINDS) - 1
    assert ours.variant_name({"impl": lstm_jax.Split(hoist=True)}) == "ours[impl=Split(hoist=True)]"
    with pytest.raises(ValueError, match="variants"):
        ours.variant_options(workload, ("lanes",))


def test_validation_cost_times_the_checked_and_unchecked_step(monkeypatch):
    monkeypatch.setattr(validation_cost, "BATCH", 2)
    monkeypatch.setattr(validation_cost, "INPUT", 3)
    monkeypatch.setattr(validation_cost, "HIDDEN", 4)
    monkeypatch.setattr(validation_cost, "TIME", 2)
    monkeypatch.setattr(validation_cost, "PLAN", timing.TimingPlan(1, 1, 1, 0.0, 0.0))
    result = validation_cost.measure("gru")
    assert set(result["median_ms"]) >= {"eager step", "eager unchecked", "eager unroll"}
    assert result["eager_step_over_unchecked"] > 0


def test_flops_count_both_directions_and_backward():
    size = Size(batch=2, time=3, input=5, hidden=7)
    lstm_forward = 2 * 2 * (5 + 7) * 4 * 7 * 3
    assert flops("lstm", size, "forward") == lstm_forward
    assert flops("bilstm", size, "train") == 2 * 3 * lstm_forward
    assert flops("gru", size, "forward") == lstm_forward * 3 / 4


def test_command_line_options():
    config, malloc_tuned = run.parse_args(
        ["--quick", "--variants", "all", "--models", "lstm,gru", "--max-reps", "4"]
    )
    assert config.quick and malloc_tuned is False
    assert config.variants == ours.VARIANT_KINDS and config.models == ("lstm", "gru")
    assert config.resolved_plan().max_reps == 4
    assert run.parse_args(["--malloc-tuned"])[1] is True
    with pytest.raises(SystemExit):
        run.parse_args(["--models", "lstm,transformer"])
    with pytest.raises(SystemExit):
        run.parse_args(["--variants", "fused"])


def test_allocator_settings_are_reported(monkeypatch):
    for key, value in environment.TUNED_MALLOC.items():
        monkeypatch.setenv(key, value)
    assert environment.allocator_settings()["tuned"] is True
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    assert environment.allocator_settings()["tuned"] is False


@pytest.mark.slow
def test_gpu_benchmark_quick_runs_on_cpu_and_fails_soft(tmp_path):
    # benchmarks/gpu.py on one tiny row: ours run (pallas in interpret mode), the GPU-only
    # contenders record their errors instead of stopping the run, and both files are written.
    from benchmarks import gpu

    results = gpu.main(["--quick", "--out", str(tmp_path)])
    assert len(results["rows"]) == 2 and not results["skipped"]
    for row in results["rows"]:
        entries = row["contenders"]
        for name in ("pallas", "scan", "split"):
            assert entries[name]["median_ms"] > 0, (name, entries[name])
        assert "needs a GPU" in entries["cudnn"]["error"]
        assert "error" in entries["torch cuDNN"]
    assert {p.suffix for p in tmp_path.iterdir()} == {".json", ".md"}
    report = next(tmp_path.glob("*.md")).read_text()
    assert "| lstm B2 T5 H4 float32 train |" in report
    # the minGRU/minLSTM section ran its tiny row in both modes
    assert [(r["time"], r["mode"]) for r in results["min_rnn"]["rows"]] == [
        (8, "forward"),
        (8, "train"),
    ]
    assert "## minGRU / minLSTM: parallel scan" in report
