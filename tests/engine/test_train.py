"""The training loop: checkpoints, exact resume after SIGKILL, non-finite losses, the CLI, torchrun."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import tiny_config

from yolov7lib.checkpoint import load_checkpoint, load_model
from yolov7lib.cli import main as cli
from yolov7lib.train import TrainConfig, Trainer, config_from_args, results_figure

FLAGS = ["--cfg", "yolov7-tiny", "--hyp", "tiny", "--img", "64", "--batch", "4", "--workers", "0",
         "--warmup-min-iters", "2", "--no-tracking", "--no-progress"]


def results(run: Path) -> list[dict]:
    with open(run / "results.csv") as f:
        return list(csv.DictReader(f))


def test_run_writes_checkpoints_and_results(trained):
    cfg, metrics = trained
    run = cfg.save_dir
    assert {"val/AP", "val/AP50", "train/box", "fitness"} <= set(metrics)
    rows = results(run)
    assert [r["epoch"] for r in rows] == ["0", "1"]
    last = load_checkpoint(run / "weights" / "last.pt")
    assert last["epoch"] == 1 and {"optimizer", "scheduler", "scaler", "rng", "model_state"} <= set(last)
    assert last["train_config"]["img_size"] == 64
    assert (run / "results.png").stat().st_size > 0  # the curves of results.csv
    model = load_model(run / "weights" / "best.pt")
    assert model.config.names and len(model.config.names) == 8


def test_results_csv_keeps_its_columns_on_epochs_without_validation(tmp_path):
    """With ``val_interval`` > 1 the rows of validated and unvalidated epochs share one header."""
    writer = SimpleNamespace(save_dir=tmp_path)
    train_only = {"train/loss": 1.0, "lr0": 0.01, "fitness": 0.0, "epoch_seconds": 2.0}
    Trainer._write_results(writer, 0, train_only)
    Trainer._write_results(writer, 1, {"train/loss": 0.5, "lr0": 0.01, "val/AP": 0.25, "val/AP50": 0.5,
                                       "fitness": 0.275, "epoch_seconds": 3.0})
    rows = results(tmp_path)
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert rows[0]["val/AP50"] == "" and rows[0]["fitness"] == "0" and rows[0]["epoch_seconds"] == "2"
    assert rows[1]["val/AP50"] == "0.5" and rows[1]["fitness"] == "0.275" and rows[1]["val/APl"] == ""
    fig = results_figure(tmp_path / "results.csv")  # the curves: validated epochs only where validated
    panels = {ax.get_title(): [line.get_xydata().tolist() for line in ax.lines] for ax in fig.axes}
    assert panels["loss"] == [[[1, 1.0], [2, 0.5]]] and panels["AP@[.5:.95]"] == [[[2, 0.25]]]
    assert panels["learning rate per group"] == [[[1, 0.01], [2, 0.01]]] and panels["AR100"] == []


def test_a_resume_drops_the_rows_written_after_its_checkpoint(tmp_path):
    """A row is written before its epoch's checkpoint: a stop between the two leaves a row that the
    resumed run writes again, so the resume drops it."""
    run = SimpleNamespace(save_dir=tmp_path, rank=0)
    for epoch in range(3):
        Trainer._write_results(run, epoch, {"train/loss": 1.0 / (epoch + 1), "fitness": 0.0})
    Trainer._trim_results(run, 1)
    assert [r["epoch"] for r in results(tmp_path)] == ["0", "1"]


def _train_cmd(data, project, name, *extra):
    return [sys.executable, "-m", "yolov7lib.train", *FLAGS, "--data", str(data), "--project", str(project),
            "--name", name, *extra]


def test_resume_after_sigkill_is_bit_identical(tiny_data, tmp_path):
    """A run killed with SIGKILL in its 3rd epoch and resumed ends with the weights of an
    uninterrupted run, bit for bit."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(_train_cmd(tiny_data, tmp_path, "whole", "--epochs", "4"), check=True, env=env,
                   capture_output=True)
    proc = subprocess.Popen(_train_cmd(tiny_data, tmp_path, "killed", "--epochs", "4"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run = tmp_path / "killed"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (run / "results.csv").exists() and len(results(run)) >= 2:
            time.sleep(0.3)  # into the third epoch
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert load_checkpoint(run / "weights" / "last.pt")["epoch"] < 3
    subprocess.run(_train_cmd(tiny_data, tmp_path, "killed", "--resume"), check=True, env=env,
                   capture_output=True)
    a = load_checkpoint(tmp_path / "whole" / "weights" / "last.pt")
    b = load_checkpoint(run / "weights" / "last.pt")
    assert a["epoch"] == b["epoch"] == 3
    for key in ("model_state", "state_dict"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}/{name} differs"


def test_ctrl_c_says_what_is_saved_and_how_to_go_on(tiny_data, tmp_path, monkeypatch, capsys):
    """Ctrl-C in the 2nd epoch: one line naming the saved epoch and the command that continues; the
    same in the 1st epoch says nothing is saved (only "interrupted")."""
    from yolov7lib.console import run
    from yolov7lib.train import main

    real = Trainer.train_epoch

    def train_epoch(self, epoch):
        if epoch == self.stop_at:
            raise KeyboardInterrupt
        return real(self, epoch)

    argv = [*FLAGS, "--data", str(tiny_data), "--project", str(tmp_path), "--epochs", "3", "--limit-batches", "1"]
    for stop_at, says in ((1, "interrupted: 1 of 3 epochs are saved in"), (0, "interrupted")):
        monkeypatch.setattr(Trainer, "stop_at", stop_at, raising=False)
        monkeypatch.setattr(Trainer, "train_epoch", train_epoch)
        assert run(main, [*argv, "--name", f"stop{stop_at}"]) == 130
        last = tmp_path / f"stop{stop_at}" / "weights" / "last.pt"
        assert capsys.readouterr().err.strip().splitlines()[-1] == (
            f"{says} {last}; continue with: yolov7 train --resume {last}" if stop_at else says)
    monkeypatch.setattr(Trainer, "stop_at", None)
    assert run(main, ["--resume", str(tmp_path / "stop1" / "weights" / "last.pt"), "--progress"]) == 0
    assert load_checkpoint(tmp_path / "stop1" / "weights" / "last.pt")["epoch"] == 2
    out = capsys.readouterr().out.splitlines()  # with --progress: each class's metrics, then what was written
    assert out[-11].split() == ["class", "images", "labels", "AP50", "AP", "AR100"] and out[-10].split()[0] == "all"
    assert out[-1].startswith("2 epoch(s) in ") and out[-1].endswith(
        f"; {tmp_path / 'stop1'}: weights/last.pt, weights/best.pt, results.csv, results.png")


def test_resume_takes_the_runs_own_settings(trained):
    cfg, _ = trained
    import argparse

    from yolov7lib.train import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--project", cfg.project, "--name", cfg.name, "--resume", "--epochs", "3"])
    resumed, path = config_from_args(args)
    assert path.endswith("last.pt") and resumed.img_size == 64 and resumed.epochs == 3
    assert not resumed.progress and resumed.overrides == {}  # the run's own, not the flags' defaults
    # a flag given with its default value still counts (300 is the default of --epochs); --set adds
    args = parser.parse_args(["--resume", path, "--epochs", "300", "--progress", "--set", "lr0=0.02"])
    resumed, _ = config_from_args(args)
    assert (resumed.epochs, resumed.progress, resumed.img_size, resumed.overrides) == (300, True, 64, {"lr0": 0.02})


def test_non_finite_loss_skips_then_stops(tiny_data, tmp_path):
    trainer = Trainer(tiny_config(tiny_data, tmp_path, max_nonfinite=2, epochs=1))

    class NaNLoss:
        def __call__(self, preds, targets):
            out = trainer_loss(preds, targets)
            out.loss = out.loss * float("nan")
            return out

    trainer_loss = trainer.criterion
    trainer.criterion = NaNLoss()
    with pytest.warns(RuntimeWarning, match="non-finite loss"), pytest.raises(FloatingPointError):
        trainer.fit()


def test_cli_val(trained, tiny_data, tmp_path, capsys):
    cfg, _ = trained
    best = str(cfg.save_dir / "weights" / "best.pt")
    cli(["val", "--weights", best, "--data", str(tiny_data), "--img", "64", "--batch", "4", "--workers", "0",
         "--no-tracking", "--out", str(tmp_path / "val")])
    out = capsys.readouterr().out
    assert "AP50" in out and (tmp_path / "val" / "pr_curve.png").exists()
    assert "class    images    labels      AP50        AP     AR100" in out  # 8 classes: each one's line
    assert len((tmp_path / "val" / "per_class.csv").read_text().splitlines()) == 1 + 8
    with pytest.raises(SystemExit):
        cli(["nonsense"])


def test_torchrun_two_processes(tiny_data, tmp_path):
    """DDP on the CPU with gloo: 2 processes, a few steps, one checkpoint written by rank 0."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "yolov7lib.train", *FLAGS, "--data", str(tiny_data), "--project", str(tmp_path), "--name",
           "ddp", "--epochs", "1", "--limit-batches", "2", "--sync-bn"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert load_checkpoint(tmp_path / "ddp" / "weights" / "last.pt")["epoch"] == 0


def test_config_round_trip():
    cfg = TrainConfig(overrides={"lr0": 0.02})
    assert TrainConfig(**{**cfg.__dict__}).overrides == {"lr0": 0.02}


def test_bf16_autocast_trains_on_the_cpu(tiny_data, tmp_path):
    """``amp="bf16"`` runs the forward pass under CPU autocast (what benchmarks/learn_synthetic.py
    uses): bfloat16 activations, float32 weights, a finite loss, and the weights move."""
    trainer = Trainer(tiny_config(tiny_data, tmp_path, amp="bf16", epochs=1))
    before = [p.detach().clone() for p in trainer.model.parameters()]
    dtypes = set()
    handle = trainer.model.head.register_forward_hook(lambda m, i, o: dtypes.add(i[0][0].dtype))
    metrics = trainer.train_epoch(0)
    handle.remove()
    assert trainer.amp_dtype == torch.bfloat16 and torch.bfloat16 in dtypes
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert torch.isfinite(torch.tensor(metrics["train/loss"]))
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))


@pytest.mark.parametrize("autoanchor", [True, False])
def test_the_start_checks_the_anchors_then_rounds_the_weights_to_fp16(tiny_data, tmp_path, monkeypatch, autoanchor):
    """As the official start: autoanchor on the training labels (unless --no-autoanchor), then every
    weight rounded to FP16 precision, after the EMA took its copy."""
    import yolov7lib.train as train_module

    calls = []
    real = train_module.check_anchors
    monkeypatch.setattr(train_module, "check_anchors", lambda head, shapes, boxes, *a, **k: calls.append(
        (len(shapes), sum(map(len, boxes)))) or real(head, shapes, boxes, *a, **k))
    trainer = Trainer(tiny_config(tiny_data, tmp_path, autoanchor=autoanchor))
    assert calls == ([(12, sum(len(im.boxes) for im in trainer.train_set.images))] if autoanchor else [])
    weights = list(trainer.model.parameters())
    assert all(torch.equal(p, p.half().float()) for p in weights)
    assert not all(torch.equal(p, p.half().float()) for p in trainer.ema.ema.parameters())


def test_multi_scale_sizes_are_stride_multiples_in_range_and_drawn_per_rank():
    from yolov7lib.train import multi_scale_size

    sizes = {rank: [multi_scale_size(640, 32, 0, rank, ni) for ni in range(200)] for rank in (0, 1)}
    assert all(s % 32 == 0 and 320 <= s <= 960 for s in sizes[0] + sizes[1])
    assert len(set(sizes[0])) > 10 and sizes[0] != sizes[1]  # each rank its own draws
    assert sizes[0] == [multi_scale_size(640, 32, 0, 0, ni) for ni in range(200)]  # reproducible


def test_a_multi_scale_run_trains(tiny_data, tmp_path):
    trainer = Trainer(tiny_config(tiny_data, tmp_path, multi_scale=True, epochs=1, limit_batches=2))
    shapes = []
    trainer.model.register_forward_pre_hook(lambda module, args: shapes.append(tuple(args[0].shape[2:])))
    metrics = trainer.fit()
    assert torch.isfinite(torch.tensor(metrics["train/loss"]))
    assert all(h % 32 == 0 and w % 32 == 0 for h, w in shapes)
