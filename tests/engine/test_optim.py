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


def _per_tensor_average(ema: nn.Module, model: nn.Module, d: float) -> None:
    """The official EMA rule, one tensor at a time: what the foreach update must equal bit for bit."""
    current = model.state_dict()
    for name, v in ema.state_dict().items():
        if v.dtype.is_floating_point:
            v *= d
            v += (1.0 - d) * current[name]


def test_ema_foreach_equals_the_per_tensor_rule_and_follows_a_moved_model():
    torch.manual_seed(0)
    net = build_model("yolov7-tiny", "training", nc=3, width=0.25).to(memory_format=torch.channels_last)
    ema, reference = ModelEMA(net), ModelEMA(net)
    for step in range(3):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
            for b in net.buffers():
                if b.dtype.is_floating_point:
                    b.mul_(1.5)
        if step == 1:  # validation turns the average contiguous and replaces its tensors
            ema.ema.to(memory_format=torch.contiguous_format)
            reference.ema.to(memory_format=torch.contiguous_format)
        ema.update(net)
        reference.updates += 1
        with torch.no_grad():
            _per_tensor_average(reference.ema, net, reference.rate(reference.updates))
    mine, theirs = ema.ema.state_dict(), reference.ema.state_dict()
    assert all(torch.equal(mine[k], theirs[k]) for k in theirs)
    assert not torch.equal(mine["model.0.conv.weight"], net.state_dict()["model.0.conv.weight"])


@pytest.mark.parametrize("adam", [False, True])
def test_optimizer_foreach_equals_one_call_per_tensor(adam):
    torch.manual_seed(0)
    nets = [build_model("yolov7-tiny", "training", nc=3, width=0.25) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    opts = [build_optimizer(net, P5, 16, adam) for net in nets]
    for group in opts[1].param_groups:
        group["foreach"] = False
    x = torch.rand(2, 3, 64, 64)
    for _ in range(3):
        for net, opt in zip(nets, opts):
            opt.zero_grad()
            sum(p.square().mean() for p in net(x)).backward()
            opt.step()
    assert all(g["foreach"] for g in opts[0].param_groups)
    assert all(torch.equal(a, b) for a, b in zip(nets[0].state_dict().values(), nets[1].state_dict().values()))
