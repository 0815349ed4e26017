"""Build official-format YOLOv7 ``.pt`` files in tests, without the official code.

Official checkpoints pickle whole ``models.yolo.Model`` objects (fp16) whose submodules are
``models.common.*`` / ``models.yolo.*`` classes (official/checkpoints.md). Here stand-in classes
are registered under those module paths just long enough to pickle a module tree that has the
official class names and layout, copied from one of our models.
"""

from __future__ import annotations

import copy
import sys
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn

from yolov7lib.models import blocks, heads, implicit, repconv
from yolov7lib.models.graph import YOLOv7

OFFICIAL_NAME = {
    YOLOv7: "models.yolo.Model",
    heads.Detect: "models.yolo.Detect",
    heads.IDetect: "models.yolo.IDetect",
    heads.IAuxDetect: "models.yolo.IAuxDetect",
    blocks.Conv: "models.common.Conv",
    blocks.Concat: "models.common.Concat",
    blocks.MP: "models.common.MP",
    blocks.SP: "models.common.SP",
    blocks.SPPCSPC: "models.common.SPPCSPC",
    blocks.ReOrg: "models.common.ReOrg",
    blocks.DownC: "models.common.DownC",
    blocks.Shortcut: "models.common.Shortcut",
    repconv.RepConv: "models.common.RepConv",
    implicit.ImplicitA: "models.common.ImplicitA",
    implicit.ImplicitM: "models.common.ImplicitM",
    blocks.Upsample: "torch.nn.modules.upsampling.Upsample",
}
KEEP = {"training", "_parameters", "_buffers", "_modules", "_non_persistent_buffers_set"}


def _fake_modules() -> dict[str, type]:
    classes = {}
    for full in set(OFFICIAL_NAME.values()):
        mod, name = full.rsplit(".", 1)
        if mod.startswith("torch."):
            continue
        if mod not in sys.modules:
            sys.modules[mod] = types.ModuleType(mod)
        cls = type(name, (nn.Module,), {"__module__": mod})
        setattr(sys.modules[mod], name, cls)
        classes[full] = cls
    sys.modules.setdefault("models", types.ModuleType("models"))
    return classes


def _convert(module: nn.Module, classes: dict[str, type]) -> nn.Module:
    full = OFFICIAL_NAME.get(type(module))
    if full is None:  # a torch module; the official models use plain nn.SiLU
        cls = nn.SiLU if isinstance(module, nn.SiLU) else type(module)
    elif full in classes:
        cls = classes[full]
    else:
        cls = nn.Upsample
    new = cls.__new__(cls)
    state = {k: v for k, v in module.__dict__.items() if k in KEEP or (k.startswith("_") and "hook" in k)}
    state["_modules"] = {k: None if v is None else _convert(v, classes) for k, v in module._modules.items()}
    if isinstance(module, nn.Upsample):
        state.update(size=None, scale_factor=2.0, mode="nearest", align_corners=None,
                     recompute_scale_factor=None, name="Upsample")
    if not isinstance(module, (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.Upsample, nn.SiLU,
                               nn.LeakyReLU, nn.ModuleList, nn.Sequential)) and full is None:
        raise TypeError(f"no official counterpart for {type(module)}")
    for attr in ("negative_slope", "inplace", "kernel_size", "stride", "padding", "dilation",
                 "return_indices", "ceil_mode", "in_channels", "out_channels", "groups",
                 "padding_mode", "transposed", "output_padding", "_reversed_padding_repeated_twice",
                 "num_features", "eps", "momentum", "affine", "track_running_stats"):
        if attr in module.__dict__:
            state[attr] = module.__dict__[attr]
    new.__dict__.update(state)
    return new


def write_official_checkpoint(model: YOLOv7, path: Path, training_style: bool = False,
                              names: list[str] | None = None, ema: YOLOv7 | None = None) -> Path:
    """Save ``model`` as the official code would: a whole pickled fp16 module tree (with ``ema``, a
    checkpoint written during training, which holds both)."""
    classes = _fake_modules()
    try:
        trees = []
        for m in (model, ema):
            tree = None if m is None else _convert(copy.deepcopy(m), classes).half()
            if tree is not None:
                tree.names = names or [f"class{i}" for i in range(model.config.nc)]
                tree.nc = model.config.nc
                tree.yaml = {"nc": model.config.nc, "depth_multiple": 1.0, "width_multiple": 1.0}
                tree.stride = model.stride.clone()
            trees.append(tree)
        tree, ema_tree = trees
        if training_style:  # train.py (+ strip_optimizer, which drops the EMA once the run ends)
            ckpt = {"epoch": -1, "best_fitness": np.array([0.5]), "training_results": None,
                    "model": tree, "ema": ema_tree, "updates": None, "optimizer": None, "wandb_id": None}
        else:  # tools/reparameterization.ipynb
            ckpt = {"model": tree, "optimizer": None, "training_results": None, "epoch": -1}
        torch.save(ckpt, path)
    finally:
        for mod in ("models.yolo", "models.common", "models"):
            sys.modules.pop(mod, None)
    return path
