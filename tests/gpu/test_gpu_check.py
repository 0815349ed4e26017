"""``make gpu-check`` without CUDA: every section that does not need it runs at its small CPU size,
and the CUDA ones say in one line that they were skipped."""

from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_check_runs_on_the_cpu(trained, tiny_data, tmp_path):
    cfg, _ = trained
    args = (f"--device cpu --out {tmp_path / 'out'} --work {tmp_path / 'work'} --data {tiny_data} "
            f"--reference {cfg.save_dir / 'weights' / 'last.pt'}")
    proc = subprocess.run(["make", "-s", "-C", str(ROOT), "gpu-check", f"GPU_CHECK_ARGS={args}"], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    summary = (tmp_path / "out" / "summary.md").read_text()
    for section in ("CUDA tests", "torch.compile"):
        assert f"| {section} | skipped: needs CUDA |" in summary
    for section in ("Table 10", "training step", "loader", "speed table", "gpu profile"):
        assert f"| {section} | done: " in summary
    with open(tmp_path / "out" / "speed.csv") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    assert {"ours:eager", "ours:channels_last", "ours:onnxruntime"} <= {r["impl"] for r in rows}
    assert all(float(r["max_rel_diff"]) < 1e-3 for r in rows)
    with open(tmp_path / "out" / "table10.csv") as f:
        cells = {(r["precision"], r["iou"]): r for r in csv.DictReader(f)}
    assert cells[("FP16", "0.65")]["status"] == "needs GPU" and cells[("FP32", "0.65")]["AP"] != "nan"
    assert (tmp_path / "out" / "train.csv").exists() and (tmp_path / "out" / "loader.csv").exists()
    with open(tmp_path / "out" / "gpu_profile.csv") as f:
        assert [r["table"] for r in csv.DictReader(f)] == [f"Table {n}" for n in range(3, 9)]


def test_a_section_starts_only_if_it_can_end_within_the_budget():
    import argparse
    import sys

    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gpu_check import skipped

    args = argparse.Namespace(skip=["loader"], budget_s=480.0)
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert skipped("loader", False, 30, cuda, 0, args) == "--skip"
    assert skipped("torch.compile", True, 200, cpu, 0, args) == "needs CUDA"
    assert skipped("torch.compile", True, 200, cuda, 280, args) is None
    assert skipped("torch.compile", True, 200, cuda, 281, args).startswith("it would end after the 480 s budget")
    assert skipped("speed table", False, 150, cpu, 900, args) is None  # the small CPU run is not budgeted


def test_every_section_takes_what_the_loop_gives_it_and_the_cuda_tests_run(tiny_data, tmp_path):
    """The loop calls each section with (report, sizes, args, device): a section with another signature
    would fail only on a GPU. The CUDA-tests section itself runs here (its module skips without CUDA),
    with a timeout that leaves the later sections their expected time."""
    import argparse
    import inspect
    import sys

    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_check

    for _, function, _, _ in gpu_check.SECTIONS:
        inspect.signature(function).bind(None, None, None, None)
    assert gpu_check.reserved_after("CUDA tests") == 45  # the gpu profile; compile is optional
    report = gpu_check.Report(tmp_path, "CPU")
    args = argparse.Namespace(reference=tmp_path / "none.pt", data=tiny_data, tests_timeout=300.0, budget_s=480.0)
    outcome = gpu_check.cuda_tests(report, gpu_check.CPU, args, torch.device("cpu"))
    assert "skipped" in outcome and (tmp_path / "cuda_tests.txt").exists()


def test_a_model_that_fails_in_the_speed_table_costs_only_its_rows(tmp_path, monkeypatch):
    import argparse
    import sys

    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_check

    real = gpu_check.bench.bench_model

    def bench_model(name, *a, **k):
        if name == "yolov7-tiny":
            raise RuntimeError("CUDA out of memory")
        return real(name, *a, **k)

    monkeypatch.setattr(gpu_check.bench, "bench_model", bench_model)
    sizes = gpu_check.Sizes(**{**vars(gpu_check.CPU), "models": ["yolov7-tiny", "yolov7-tiny-silu"],
                               "paths": ["eager"], "batches": (1,), "img": 64, "warmup": 0, "repeats": 1})
    report = gpu_check.Report(tmp_path, "CPU")
    args = argparse.Namespace(peer=False, budget_s=480.0)
    outcome = gpu_check.speed(report, sizes, args, torch.device("cpu"), protocols=("fixed",))
    assert outcome == "1 rows, 1 model(s) failed"
    assert [r.model for r in report.speed_rows] == ["yolov7-tiny-silu"]
    assert any("FAILED: yolov7-tiny (RuntimeError: CUDA out of memory)" in line for line in report.tables)
