"""Planned re-parameterization: training model -> deploy model -> fused deploy model (paper §3.2, §4.1).

One call, :func:`reparameterize`, walks modules (no layer indices):

1. training -> deploy: the deploy network of the same variant is built and every key it shares
   with the training network is copied; the head's lead convs receive the YOLOR implicit knowledge
   folded in (``im ⊙ (W(x + ia) + b)``); the auxiliary head and its convs (P6) are dropped;
2. fusion: every Conv's BatchNorm is folded into its convolution and every RepConv's three
   branches become one 3x3 convolution.

Unlike the official notebook, the P6 deploy head keeps the anchors the training head had (the
notebook resets them to the cfg's anchors, losing anything autoanchor changed).
"""

from __future__ import annotations

import copy
from dataclasses import replace

import torch
from torch import nn

from .models import ModelConfig, build_model
from .models.graph import YOLOv7
from .models.heads import IDetect


def fuse(model: nn.Module) -> nn.Module:
    """Fuse in place every submodule that knows how (Conv+BN, RepConv, implicit head); return it."""
    for module in list(model.modules()):
        if module is not model and callable(getattr(module, "fuse", None)):
            module.fuse()
    return model


@torch.no_grad()
def to_deploy(model: YOLOv7) -> YOLOv7:
    """The deploy-form (unfused) network computing the same lead predictions as ``model``."""
    config: ModelConfig = model.config
    if config.form == "deploy":
        return copy.deepcopy(model)
    param = next(model.parameters())
    deploy = build_model(config.name, "deploy", config.nc, config.width, config.depth).to(
        device=param.device, dtype=param.dtype)
    source = model.state_dict()
    state = deploy.state_dict()
    head_prefix = f"model.{len(deploy.model) - 1}."
    train_head = model.head
    shared = [k for k in state if not k.startswith(head_prefix)]
    missing = [k for k in shared if k not in source]
    if missing:
        raise ValueError(
            f"cannot convert: the training model lacks {len(missing)} deploy keys (first: "
            f"{missing[0]}); was it fused already? Re-parameterize the unfused training model."
        )
    for key in shared:
        state[key] = source[key]
    state[head_prefix + "anchors"] = train_head.anchors.clone()
    state[head_prefix + "anchor_grid"] = train_head.anchor_grid.clone()
    for i in range(train_head.nl):
        if isinstance(train_head, IDetect):
            weight, bias = train_head.folded_lead(i)
        else:
            weight, bias = train_head.m[i].weight, train_head.m[i].bias
        state[f"{head_prefix}m.{i}.weight"] = weight
        state[f"{head_prefix}m.{i}.bias"] = bias
    deploy.load_state_dict(state, strict=True)
    deploy.config = replace(config, form="deploy")
    return deploy.train(model.training)


def reparameterize(model: YOLOv7) -> YOLOv7:
    """Return the fused deploy model (eval mode) equivalent to ``model``; ``model`` is unchanged."""
    return fuse(to_deploy(model)).eval()
