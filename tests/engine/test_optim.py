"""The official optimiser recipe: parameter groups, nominal batch, warm-up, schedules, EMA."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from yolov7lib import build_model
from yolov7lib.ema import ModelEMA
from yolov7lib.hyp import P5
from yolov7lib.models.implicit import ImplicitA, ImplicitM
from yolov7lib.optim import accumulation, build_optimizer, one_cycle, parameter_groups, warmup


@pytest.fixture(scope="module")
def model():
    return build_model("yolov7-tiny", "training", nc=3)


def test_groups_are_disjoint_and_complete(model):
    norm, weights, biases = parameter_groups(model)
    ids = [id(p) for p in norm + weights + biases]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    implicit = [m.implicit for m in model.modules() if isinstance(m, ImplicitA | ImplicitM)]
    bn = [m.weight for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert implicit and {id(p) for p in implicit + bn} == {id(p) for p in norm}
    assert all(p.ndim == 4 for p in weights) and all(p.ndim == 1 for p in biases)


@pytest.mark.parametrize(("batch", "accumulate", "decay"), [(16, 4, 5e-4), (32, 2, 5e-4), (128, 1, 1e-3),
                                                             (48, 1, 3.75e-4)])
def test_nominal_batch(model, batch, accumulate, decay):
    opt = build_optimizer(model, P5, batch)
    assert accumulation(batch) == accumulate
    assert [g["weight_decay"] for g in opt.param_groups] == pytest.approx([0.0, decay, 0.0])
    assert all(g["nesterov"] and g["momentum"] == 0.937 for g in opt.param_groups)


def test_warmup_ramps(model):
    opt = build_optimizer(model, P5, 16)
    torch.optim.lr_scheduler.LambdaLR(opt, one_cycle(P5.lrf, 300))
    assert warmup(opt, 0, 1000, P5, 1.0, 16) == 1
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.0, 0.0, 0.1])
    assert opt.param_groups[0]["momentum"] == pytest.approx(0.8)
    assert warmup(opt, 1000, 1000, P5, 0.5, 16) == 4
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.005] * 3)
    assert opt.param_groups[0]["momentum"] == pytest.approx(0.937)


def test_one_cycle():
    lf = one_cycle(0.1, 300)
    assert lf(0) == 1.0 and lf(300) == pytest.approx(0.1) and lf(150) == pytest.approx(0.55)


def test_ema_decay_and_buffers():
    net = nn.Sequential(nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1))
    ema = ModelEMA(net)
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[1].running_mean.fill_(2.0)
    before_w, before_m = ema.ema[0].weight.clone(), ema.ema[1].running_mean.clone()
    ema.update(net)
    d = 0.9999 * (1 - math.exp(-1 / 2000))
    assert ema.rate(1) == pytest.approx(d)
    torch.testing.assert_close(ema.ema[0].weight, before_w * d + (1 - d))
    torch.testing.assert_close(ema.ema[1].running_mean, before_m * d + 2.0 * (1 - d))
    assert ema.ema[1].num_batches_tracked == 0  # integer buffers are not averaged
