"""A tiny generated dataset and a tiny trained run, shared by the engine tests."""

from __future__ import annotations

import pytest

from yolov7lib.data.synthetic import generate
from yolov7lib.train import TrainConfig, train


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
