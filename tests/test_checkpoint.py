"""Checkpoints: our format round-trips; official .pt files import safely; hostile pickles are refused."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
from official_format import write_official_checkpoint

from yolov7lib import build_model
from yolov7lib.checkpoint import (
    CheckpointError,
    UnsafeCheckpointError,
    load_checkpoint,
    load_model,
    load_official_checkpoint,
    load_official_state_dict,
    save_checkpoint,
)
from yolov7lib.reparam import fuse, reparameterize


def outputs(model, x):
    model.eval()
    with torch.no_grad():
        return model(x)[0]


def test_own_format_round_trip(tmp_path):
    model = build_model("yolov7-tiny", "training", nc=3)
    path = save_checkpoint(tmp_path / "ckpt" / "last.pt", model, epoch=4)
    payload = torch.load(path, weights_only=True)  # plain data only
    assert payload["format"] == "yolov7lib" and payload["version"] == 1 and payload["epoch"] == 4
    assert payload["config"] == {"name": "yolov7-tiny", "form": "training", "nc": 3, "names": None, "width": 1.0,
                                 "depth": 1.0}
    loaded = load_model(path)
    x = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(outputs(loaded, x), outputs(model, x), atol=0, rtol=0)
    assert not list(tmp_path.glob("ckpt/.*tmp"))  # atomic write left nothing behind


def test_own_format_keeps_fused_models(tmp_path):
    deploy = reparameterize(build_model("yolov7", "training", nc=2))
    loaded = load_model(save_checkpoint(tmp_path / "deploy.pt", deploy))
    x = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(outputs(loaded, x), outputs(deploy, x), atol=0, rtol=0)


@pytest.mark.parametrize(
    ("name", "form", "training_style"),
    [("yolov7", "deploy", False), ("yolov7-tiny", "training", True), ("yolov7-w6", "training", True),
     ("yolov7-tiny-silu", "deploy", False), ("yolov7-e6e", "deploy", False)],
)
def test_official_checkpoint_import(tmp_path, name, form, training_style):
    model = build_model(name, form, nc=5)
    path = write_official_checkpoint(model, tmp_path / "official.pt", training_style,
                                     names=list("abcde"))
    with pytest.raises((ModuleNotFoundError, AttributeError, pickle.UnpicklingError)):
        torch.load(path, weights_only=False)  # the official classes are not importable here
    imported = load_official_checkpoint(path)
    assert (imported.config.name, imported.config.form, imported.config.nc) == (name, form, 5)
    assert imported.config.names == tuple("abcde")
    assert next(imported.parameters()).dtype == torch.float32
    # fp16 on disk: the import equals our model with its weights rounded to fp16
    rounded = build_model(name, form, nc=5)
    rounded.load_state_dict({k: v.half().to(v.dtype) for k, v in model.state_dict().items()})
    size = 128 if rounded.head.nl == 4 else 64
    x = torch.rand(1, 3, size, size)
    torch.testing.assert_close(outputs(imported, x), outputs(rounded, x), atol=0, rtol=0)


def test_an_official_checkpoint_written_during_training_gives_its_ema_or_its_model(tmp_path):
    """Inference reads the EMA (as ``attempt_load``); fine-tuning reads the model (as ``train.py``)."""
    model, ema = (build_model("yolov7-tiny", "training", nc=2) for _ in range(2))
    assert not torch.equal(model.state_dict()["model.0.conv.weight"], ema.state_dict()["model.0.conv.weight"])
    path = write_official_checkpoint(model, tmp_path / "last.pt", training_style=True, ema=ema)
    key = "model.0.conv.weight"
    for first, source in (("ema", ema), ("model", model)):
        loaded = load_official_checkpoint(path, first=first).state_dict()[key]
        assert torch.equal(loaded, source.state_dict()[key].half().float())


def test_official_training_checkpoint_to_deploy(tmp_path):
    model = build_model("yolov7-w6", "training", nc=2)
    path = write_official_checkpoint(model, tmp_path / "w6_training.pt", training_style=True)
    deploy = load_official_checkpoint(path, form="deploy")
    assert deploy.config.form == "deploy" and len(deploy.model) == 119
    with pytest.raises(CheckpointError, match="deploy model"):
        load_official_checkpoint(write_official_checkpoint(build_model("yolov7", "deploy"),
                                                           tmp_path / "d.pt"), form="training")


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_hostile_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": Exploit()}, path)
    with pytest.raises(UnsafeCheckpointError, match="system"):
        load_official_checkpoint(path)
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint(path)


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_official_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises((CheckpointError, pickle.UnpicklingError)):
        load_official_checkpoint(junk)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a yolov7lib checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="no pickled YOLOv7 model"):
        load_official_checkpoint(tmp_path / "other.pt")


def test_official_state_dict_mismatch_is_explained():
    model = build_model("yolov7-tiny", "deploy")
    state = build_model("yolov7", "deploy").state_dict()
    with pytest.raises(CheckpointError, match="does not fit yolov7-tiny"):
        load_official_state_dict(model, state)


def test_fused_official_state_dict_loads_into_an_unfused_model():
    source = fuse(build_model("yolov7", "deploy", nc=1).eval())
    target = load_official_state_dict(build_model("yolov7", "deploy", nc=1), source.state_dict())
    x = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(outputs(target, x), outputs(source, x), atol=0, rtol=0)
