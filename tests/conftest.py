from __future__ import annotations

import csv
import gzip
import json
import sys
from pathlib import Path

import pytest
import torch

from yolov7lib.data.synthetic import generate
from yolov7lib.train import TrainConfig, train

TESTS = Path(__file__).parent
DATA = TESTS / "data"
sys.path.insert(0, str(TESTS))  # helpers: golden.py, official_format.py

# The 15 official models (7 training + 8 deploy cfgs).
OFFICIAL_MODELS = [
    (name, form)
    for form in ("training", "deploy")
    for name in ("yolov7-tiny", "yolov7-tiny-silu", "yolov7", "yolov7x", "yolov7-w6", "yolov7-e6",
                 "yolov7-d6", "yolov7-e6e")
    if not (form == "training" and name == "yolov7-tiny-silu")
]
TRAINING_MODELS = [name for name, form in OFFICIAL_MODELS if form == "training"]


@pytest.fixture(autouse=True, scope="session")
def _threads():
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def official_csv() -> dict[tuple[str, str], dict[str, str]]:
    """official/models.csv rows keyed by (cfg name, kind)."""
    with open(DATA / "official_models.csv") as f:
        return {(Path(r["cfg"]).stem, r["kind"]): r for r in csv.DictReader(f)}


@pytest.fixture(scope="session")
def official_layouts() -> dict[str, list[tuple[str, tuple[int, ...]]]]:
    """Official state_dict keys and shapes in registration order, per '<form>__<cfg>[.fused]'."""
    with gzip.open(DATA / "official_state_dict_layouts.json.gz", "rt") as f:
        raw = json.load(f)
    return {name: [(k, tuple(s)) for k, s in keys] for name, keys in raw.items()}


# A tiny generated dataset and a tiny trained run, shared by the engine and GPU tests.
def tiny_config(data, project, name="run", **kw) -> TrainConfig:
    base = dict(model="yolov7-tiny", data=str(data), hyp="tiny", img_size=64, batch_size=4, epochs=2, workers=0,
                warmup_min_iters=2, tracking=False, progress=False, project=str(project), name=name)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    return generate(out, train=12, val=6, size=64, seed=3, workers=1)


@pytest.fixture(scope="session")
def trained(tiny_data, tmp_path_factory):
    """A 2-epoch run: (config, metrics)."""
    project = tmp_path_factory.mktemp("runs")
    cfg = tiny_config(tiny_data, project)
    return cfg, train(cfg)
