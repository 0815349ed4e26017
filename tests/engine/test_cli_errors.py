"""Mistakes cost nothing: every probe of a bad input gives one ``error:`` line and status 2, before any
data is read; no run is overwritten; a resume writes beside its checkpoint."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest

from yolov7lib.bench import input_shape
from yolov7lib.cli import main as cli
from yolov7lib.console import UserError
from yolov7lib.train import add_arguments, config_from_args

PROBES = {  # arguments -> what the one line must say
    "train --batch 0": "--batch must be at least 1",
    "train --epochs -1": "--epochs must be at least 1",
    "train --val-interval 0": "--val-interval must be at least 1",
    "train --seed -1": "and --seed cannot be negative",
    "train --amp fp61": "--amp 'fp61' is not one of",
    "train --aux-strategy lead": "--aux-strategy 'lead' is not one of",
    "train --hyp nope": "neither a preset (p5, p6, tiny)",
    "train --set lr0": "write KEY=NUMBER",
    "train --set lr=0.1": "--set lr: no such hyp value",
    "train --set fl_gamma=1.5": "hyp fl_gamma 1.5: focal loss (fl_gamma) and copy-paste are not implemented",
    "train --set loss_ota=2": "hyp loss_ota 2: 1 for the OTA losses",
    "train --model yolov9": "is not a model; choose from",
    "train --device cuda:0": "CUDA is not available",
    "val --weights EMPTY --data x.yaml": "is an empty file, not a checkpoint",
    "val --weights TEXT --data x.yaml": "is not a PyTorch checkpoint",
    "detect --weights MISSING --source .": "no checkpoint at",
    "val --weights MISSING --data x.yaml --device tpu": "--device 'tpu' is not a device",
    "detect --weights MISSING --source . --device cuda": "CUDA is not available",
    "bench --device 3": "CUDA is not available",
    "train --data MISSING": "no such data YAML or dataset folder",
    "train --weights MISSING": "no such checkpoint",
    "train --data BAD": "data YAML lacks val",  # read before the run folder is made
}


@pytest.mark.parametrize("probe", PROBES)
def test_one_clear_line_for_a_mistake(probe, tmp_path, capsys, monkeypatch):
    if "--device" in probe:
        monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    (tmp_path / "empty.pt").touch()
    (tmp_path / "text.pt").write_text("not a checkpoint\n")
    (tmp_path / "bad.yaml").write_text("train: images/train\nnc: 1\n")
    files = {"EMPTY": tmp_path / "empty.pt", "TEXT": tmp_path / "text.pt", "MISSING": tmp_path / "none.pt",
             "BAD": tmp_path / "bad.yaml"}
    argv = [str(files.get(a, a)) for a in probe.split()]
    monkeypatch.chdir(tmp_path)  # no data/synthetic here: a check that came after reading data would fail
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and PROBES[probe] in err[0], err
    assert not (tmp_path / "runs").exists()  # no empty run folder left behind, no run name used up
    with pytest.raises((UserError, OSError)):  # --verbose: the traceback instead
        cli([*argv, "--verbose"])


BAD_FLAGS = {  # arguments -> argparse's one line (after the usage)
    "val --weights w.pt --data d.yaml --batch 0": "argument --batch/--batch-size: must be at least 1, got 0",
    "val --weights w.pt --data d.yaml --workers -1": "argument --workers: must be at least 0, got -1",
    "val --weights w.pt --data d.yaml --conf-thres 2": "argument --conf-thres: must lie in [0, 1], got 2",
    "detect --weights w.pt --source . --img 8": "argument --img/--img-size: must be at least 32, got 8",
    "detect --weights w.pt --source . --iou-thres x": "argument --iou-thres: 'x' is not a number",
    "bench --batch 1 0": "argument --batch: must be at least 1, got 0",
    "bench --repeats 0": "argument --repeats: must be at least 1, got 0",
    "bench --img 1.5": "argument --img: '1.5' is not an integer",
    "export --weights w.pt --img 64 64 64": "argument --img: one size, or height and width",
    "export --weights w.pt --half": "argument --half: FP16 export needs CUDA",
}


@pytest.mark.parametrize("probe", BAD_FLAGS)
def test_a_flag_out_of_range_is_one_line_before_any_work(probe, capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(SystemExit) as exit:
        cli(probe.split())
    assert exit.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("error: " + BAD_FLAGS[probe]) and not any("Traceback" in line for line in err), err


def _config(argv: list[str]):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from_args(parser.parse_args(argv))


def test_a_taken_run_name_gets_the_next_free_one(tiny_data, tmp_path):
    flags = ["--project", str(tmp_path), "--name", "exp", "--data", str(tiny_data)]
    assert _config(flags)[0].name == "exp"
    (tmp_path / "exp").mkdir()
    assert _config(flags)[0].name == "exp2"
    (tmp_path / "exp2").mkdir()
    assert _config(flags)[0].name == "exp3"
    assert _config([*flags, "--exist-ok"])[0].name == "exp"


def test_img_rounded_up_to_the_largest_stride(trained, tiny_data, tmp_path):
    """As the official check_img_size: train, val, detect, export and bench round --img up, with a warning."""
    with pytest.warns(UserWarning, match="not a multiple of the model's largest stride 64: training at 128"):
        cfg, _ = _config(["--model", "yolov7-e6", "--img", "100", "--exist-ok", "--data", str(tiny_data)])
        assert cfg.img_size == 128
    weights = str(trained[0].save_dir / "weights" / "last.pt")
    images = tiny_data.parent / "images" / "val"
    with pytest.warns(UserWarning, match="stride 32: evaluating at 64"):
        cli(["val", "--weights", weights, "--data", str(tiny_data), "--img", "50", "--no-tracking",
             "--workers", "0", "--out", str(tmp_path / "val")])
    with pytest.warns(UserWarning, match="stride 32: detecting at 64"):
        cli(["detect", "--weights", weights, "--source", str(images), "--img", "40", "--out", str(tmp_path / "d")])
    with pytest.warns(UserWarning, match="stride 32: exporting at 64"):
        cli(["export", "--weights", weights, "--img", "40", "--out", str(tmp_path / "m.onnx")])
    with pytest.warns(UserWarning, match="stride 64: timing at 128"):
        assert input_shape("yolov7-e6", "fixed", 100) == (128, 128)


def test_resume_writes_beside_its_checkpoint(trained, tmp_path, monkeypatch):
    cfg, _ = trained
    copy = tmp_path / "elsewhere" / "copied_run"
    shutil.copytree(cfg.save_dir, copy)
    monkeypatch.chdir(tmp_path)  # another working folder: the data is found through the checkpoint
    resumed, path = _config(["--resume", str(copy / "weights" / "last.pt")])
    assert resumed.save_dir == copy.resolve() and Path(resumed.data).exists()
    assert resumed.model == cfg.model and resumed.epochs == cfg.epochs
    with pytest.raises(UserError, match="holds weights only"):
        _config(["--resume", str(copy / "weights" / "best.pt")])


def test_training_on_a_split_without_objects_is_an_error(tmp_path):
    from conftest import tiny_config

    from yolov7lib.data.synthetic import generate
    from yolov7lib.train import Trainer

    data = generate(tmp_path / "data", train=4, val=2, size=64, seed=1, workers=1)
    for label in (tmp_path / "data" / "labels" / "train").glob("*.txt"):
        label.write_text("")
    with pytest.raises(UserError, match="has no objects: nothing to learn"):
        Trainer(tiny_config(data, tmp_path / "runs"))


def test_fine_tuning_says_what_differs_and_what_was_not_transferred(trained, tmp_path, capsys):
    from conftest import tiny_config

    from yolov7lib.train import Trainer

    cfg, _ = trained
    best = str(cfg.save_dir / "weights" / "best.pt")
    Trainer(tiny_config(cfg.data, tmp_path, name="same", weights=best))
    same = capsys.readouterr().out
    assert "transferred" in same and "->" not in same and "not transferred" not in same
    with pytest.warns(RuntimeWarning, match="fits less than half"):
        Trainer(tiny_config(cfg.data, tmp_path, name="narrow", weights=best, width=0.5))
    narrow = capsys.readouterr().out
    assert "width 1.0 -> 0.5" in narrow and "not transferred (kept at their initialization): model.0" in narrow


def test_val_refuses_a_model_of_other_classes(trained, tmp_path, capsys):
    from yolov7lib.data.synthetic import Scene, generate

    cfg, _ = trained
    other = generate(tmp_path / "three", train=2, val=2, size=64, seed=2, workers=1, scene=Scene(classes=3))
    assert cli(["val", "--weights", str(cfg.save_dir / "weights" / "best.pt"), "--data", str(other),
                "--no-tracking"]) == 2
    assert "predicts 8 classes but" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "says"), [
    (["train", "6", "--profile", "nope"], "error: profile 'nope' is not in params.yaml; choose from smoke"),
    (["jobs", "6"], "error: no params.yaml in "),  # not at the repository's root
    (["train", "6", "--jobs", "-1"], "argument --jobs: must be at least 0, got -1"),
    (["train", "6", "--seed", "-1"], "argument --seed: must be at least 0, got -1"),
])
def test_the_pipeline_says_a_mistake_in_one_line(argv, says, tmp_path, capsys, monkeypatch):
    from yolov7lib import pipeline
    from yolov7lib.console import run

    monkeypatch.chdir(tmp_path if argv == ["jobs", "6"] else Path(__file__).resolve().parents[2])
    try:
        assert run(pipeline.main, argv) == 2
    except SystemExit as exit:  # argparse's own line
        assert exit.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert says in err[-1] and not any("Traceback" in line for line in err), err


def test_ctrl_c_is_one_line_not_a_traceback(capsys):
    from yolov7lib.console import run

    def main(argv):
        raise KeyboardInterrupt

    assert run(main, []) == 130
    assert capsys.readouterr().err == "interrupted\n"
    with pytest.raises(KeyboardInterrupt):
        run(main, ["--verbose"])
