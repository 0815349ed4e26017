"""The builder: any row of the zoo or of the ablations (:data:`VARIANTS`) as a
:class:`~yolov7lib.models.graph.YOLOv7` whose layer order (and hence state_dict keys) equals the
official network's.

Forms: ``training`` has the YOLOR implicit head (``IDetect``) and, for the P6 models, the four
auxiliary prediction convs and ``IAuxDetect``; ``deploy`` has the plain ``Detect`` head only.
"""

from __future__ import annotations

import torch
from torch import nn

from .ablations import ABLATION_VARIANTS
from .blocks import ACTIVATIONS, SP, SPPCSPC, ReOrg, Upsample
from .elan import build_block
from .graph import GraphBuilder, YOLOv7
from .heads import Detect, IAuxDetect, IDetect
from .repconv import RepConv
from .scaling import multiply
from .variant import FORMS, Form, ModelConfig, Variant
from .zoo import RELEASED

VARIANTS: dict[str, Variant] = {**RELEASED, **ABLATION_VARIANTS}


def _tiny_spp(g: GraphBuilder, src: int, c: int) -> int:
    """SPP-CSP of YOLOv7-tiny: two 1x1 branches; max-pools 5/9/13 on the second; two merges."""
    a = g.conv(src, c, 1)
    b = g.conv(src, c, 1)
    pools = [g.add(SP(k), b, c) for k in (5, 9, 13)]
    merged = g.conv(g.concat([*pools[::-1], b]), c, 1)
    return g.conv(g.concat([merged, a]), c, 1)


def build_model(name: str, form: Form = "training", nc: int = 80, width: float = 1.0,
                depth: float = 1.0) -> YOLOv7:
    """Build a YOLOv7 model by name (see :data:`VARIANTS`) in ``training`` or ``deploy`` form.

    The returned module's state_dict keys and shapes equal the official model's for the same cfg.
    ``width`` / ``depth`` multiples give reduced-scale models (:func:`~yolov7lib.models.scaling.multiply`).
    """
    if name not in VARIANTS:
        raise KeyError(f"unknown model {name!r}; choose from {', '.join(VARIANTS)}")
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    if not isinstance(nc, int) or nc < 1:
        raise ValueError(f"nc must be a positive integer, got {nc!r}")
    v = multiply(VARIANTS[name], width, depth)
    g = GraphBuilder(act=ACTIVATIONS[v.act])
    x = g.add(ReOrg(), -1, 12, down=2) if v.reorg else -1
    for c, k, s in v.stem:
        x = g.conv(x, c, k, s)
    stage_outs = []
    for stage in v.stages:
        if stage.down is not None:
            x = stage.down.build(g, x)
        x, _ = build_block(g, stage.block, x)
        stage_outs.append(x)
    if v.tiny_spp:
        x = _tiny_spp(g, x, v.spp)
    else:
        x = g.add(SPPCSPC(g.ch(x), v.spp, act=g.act), x, v.spp)
    # PAN neck: top-down with laterals from the backbone stages below the last one
    levels, taps = [x], [x]
    for level, lateral in zip(v.top_down, stage_outs[-2::-1]):
        up = g.add(Upsample(), g.conv(x, level.reduce, 1), level.reduce, down=0.5)
        x = g.concat([g.conv(lateral, level.reduce, 1), up])
        x, tap = build_block(g, level.block, x)
        tap = x if v.aux_tap == "full" else tap
        levels.append(x)
        taps.append(tap)
    def predict(src: int, c: int) -> int:  # a prediction conv (RepConv in YOLOv7)
        return g.add(RepConv(g.ch(src), c, act=g.act), src, c) if v.repconv else g.conv(src, c, 3)

    outs, pred = [x], []
    for level, skip, c in zip(v.bottom_up, levels[-2::-1], v.pred):
        if v.pred_first:
            pred.append(predict(x, c))
        x = level.down.build(g, x, skip)
        x, _ = build_block(g, level.block, x)
        outs.append(x)
    # the remaining prediction convs, then the aux convs (training P6), then the head
    pred += [predict(src, c) for src, c in list(zip(outs, v.pred))[len(pred):]]
    heads_in = list(pred)
    head_cls: type[Detect] = Detect
    if form == "training":
        head_cls = IDetect
        if v.p6 and v.aux:
            heads_in += [g.conv(src, c, 3) for src, c in zip(taps[::-1], v.aux)]
            head_cls = IAuxDetect
    strides = [g.stride(i) for i in pred]
    head = head_cls(nc, v.anchors, [g.ch(i) for i in heads_in], strides)
    g.add(head, heads_in, 0)
    model = YOLOv7(g, ModelConfig(name, form, nc, width=width, depth=depth))
    _as_probed(model)
    return model


@torch.no_grad()
def _as_probed(model: nn.Module) -> None:
    """BatchNorm statistics as the official ``Model()`` leaves them: its stride probe, one forward
    pass of a zero image in train mode at PyTorch's default momentum (0.1) before the official 0.03 is
    set, turns every running variance to 0.9 (the zeros keep the means at 0) and counts one batch."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.fill_(0.9)
            m.num_batches_tracked.fill_(1)
