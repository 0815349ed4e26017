"""Training hyper-parameters: the official ``hyp.scratch.{p5,p6,tiny}.yaml`` as the project's config.

All values are the official ones (algorithms.md §6): p6 differs from p5 only in ``lrf``; tiny has
its own loss gains and lighter augmentation. ``iou_t`` is kept for completeness (unused by the OTA
losses), ``paste_in`` is the official "paste-in" copy of object cut-outs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from .loss import LossHyp


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
