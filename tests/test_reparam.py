"""Planned re-parameterization: the fused deploy model computes what the training model does."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import TRAINING_MODELS
from torch import nn

from yolov7lib import build_model
from yolov7lib.models.heads import Detect, IDetect
from yolov7lib.models.repconv import RepConv
from yolov7lib.reparam import fuse, reparameterize

# Random networks with calibrated BatchNorm are chaotic: fp32 rounding grows layer by layer.
# Calibrate BN statistics on data, then set the BN scale to 0.7, which keeps the network in a
# stable regime whose outputs still depend on the input (checked below).
BN_SCALE = 0.7


@torch.no_grad()
def calibrate(model: nn.Module, size: int, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average
    model.train()
    model(torch.rand(2, 3, size, size, generator=gen))
    for bn in bns:
        bn.momentum = 0.03
        bn.weight.fill_(BN_SCALE)
    for p in model.parameters():  # perturb the implicit knowledge so its folding is exercised
        if p.dim() == 4 and p.shape[0] == 1:
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    model.eval()


@pytest.mark.parametrize("name", TRAINING_MODELS)
def test_deploy_fused_model_equals_training_model(name):
    torch.manual_seed(0)
    model = build_model(name, "training")
    calibrate(model, 128)
    deploy = reparameterize(model)
    assert deploy.config.form == "deploy"
    assert isinstance(deploy.head, Detect) and not isinstance(deploy.head, IDetect)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in deploy.modules())
    assert all(m.rbr_reparam is not None for m in deploy.modules() if isinstance(m, RepConv))
    x1, x2 = torch.rand(1, 3, 128, 128), torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        ref1, ref2 = model(x1)[0], model(x2)[0]
        out1 = deploy(x1)[0]
    err = (out1 - ref1)[..., :4].abs().max().item()
    assert err < 1e-3  # pixels
    assert (ref2 - ref1)[..., :4].abs().max().item() > 30 * err  # not degenerate
    torch.testing.assert_close(out1[..., 4:], ref1[..., 4:], atol=1e-5, rtol=0)


def test_reparameterize_leaves_the_training_model_alone():
    model = build_model("yolov7-tiny", "training")
    before = copy.deepcopy(model.state_dict())
    reparameterize(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_deploy_models_fuse_in_place():
    model = build_model("yolov7", "deploy")
    calibrate(model, 64)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)[0]
        out = fuse(model)(x)[0]
    assert (out - ref)[..., :4].abs().max().item() < 1e-3


def test_a_fused_training_model_cannot_be_converted():
    model = fuse(build_model("yolov7-tiny", "training"))
    with pytest.raises(ValueError, match="fused already"):
        reparameterize(model)


def test_p6_deploy_keeps_the_training_anchors():
    model = build_model("yolov7-w6", "training")
    with torch.no_grad():
        model.head.anchors.mul_(1.1)
        model.head.anchor_grid.mul_(1.1)
    deploy = reparameterize(model)
    assert torch.equal(deploy.head.anchor_grid, model.head.anchor_grid)
