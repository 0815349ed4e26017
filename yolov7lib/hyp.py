"""Training hyper-parameters: the official ``hyp.scratch.{p5,p6,tiny}.yaml`` as the project's config.

All values are the official ones (algorithms.md §6): p6 differs from p5 only in ``lrf``; tiny has
its own loss gains and lighter augmentation. ``iou_t`` is kept for completeness (unused by the OTA
losses), ``paste_in`` is the official "paste-in" copy of object cut-outs, ``loss_ota: 0`` selects the
loss without SimOTA (``ComputeLoss``; a model with an auxiliary head keeps the OTA loss, as officially).
Focal loss (``fl_gamma``) and copy-paste (``copy_paste``), 0 in every official file, are not
implemented: ``yolov7 train`` refuses other values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace

import yaml


@dataclass(frozen=True)
class LossHyp:
    """Loss hyper-parameters (``hyp.scratch.*.yaml``); gains are applied as given."""

    box: float = 0.05
    cls: float = 0.3
    obj: float = 0.7
    cls_pw: float = 1.0
    obj_pw: float = 1.0
    anchor_t: float = 4.0
    label_smoothing: float = 0.0

    @classmethod
    def from_mapping(cls, hyp: Mapping[str, float] | LossHyp) -> LossHyp:
        if isinstance(hyp, LossHyp):
            return hyp
        names = {f.name for f in fields(cls)}
        return cls(**{k: float(v) for k, v in hyp.items() if k in names})

    def scaled(self, nc: int, img_size: int, nl: int) -> LossHyp:
        """Gains scaled as train.py does: box·3/nl, cls·nc/80·3/nl, obj·(img/640)²·3/nl."""
        k = 3 / nl
        return replace(self, box=self.box * k, cls=self.cls * nc / 80 * k,
                       obj=self.obj * (img_size / 640) ** 2 * k)


@dataclass(frozen=True)
class Hyp(LossHyp):
    """A full hyp file; the loss gains (box, cls, obj, cls_pw, obj_pw, anchor_t) come from LossHyp."""

    lr0: float = 0.01
    lrf: float = 0.1
    momentum: float = 0.937
    weight_decay: float = 0.0005
    warmup_epochs: float = 3.0
    warmup_momentum: float = 0.8
    warmup_bias_lr: float = 0.1
    iou_t: float = 0.2
    fl_gamma: float = 0.0
    hsv_h: float = 0.015
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    degrees: float = 0.0
    translate: float = 0.2
    scale: float = 0.9
    shear: float = 0.0
    perspective: float = 0.0
    flipud: float = 0.0
    fliplr: float = 0.5
    mosaic: float = 1.0
    mixup: float = 0.15
    copy_paste: float = 0.0
    paste_in: float = 0.15
    loss_ota: int = 1

    def loss(self) -> LossHyp:
        return LossHyp.from_mapping(asdict(self))

    def to_dict(self) -> dict:
        return asdict(self)


P5 = Hyp()
P6 = replace(P5, lrf=0.2)
TINY = replace(P5, lrf=0.01, cls=0.5, obj=1.0, translate=0.1, scale=0.5, mixup=0.05, paste_in=0.05)
HYPS = {"p5": P5, "p6": P6, "tiny": TINY}


def load_hyp(name: str, overrides: dict[str, float] | None = None) -> Hyp:
    """A named preset (p5, p6, tiny) or a hyp YAML (official keys), with ``overrides`` applied."""
    if name in HYPS:
        hyp = HYPS[name]
    else:
        with open(name) as f:
            raw = yaml.safe_load(f) or {}
        known = {f.name for f in fields(Hyp)}
        hyp = Hyp(**{k: v for k, v in raw.items() if k in known})
    return replace(hyp, **(overrides or {}))
