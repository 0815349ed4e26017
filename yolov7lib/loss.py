"""The YOLOv7 training loss: CIoU box loss, objectness and class BCE, lead + auxiliary heads.

One loss serves every head and every assignment strategy of the paper's ablations (§4.2,
Tables 6-7); the assignment is a parameter (:mod:`yolov7lib.assign`). It reproduces the official
``ComputeLossOTA`` (P5, no aux head) and ``ComputeLossAuxOTA`` (P6, coarse-to-fine lead-guided aux
head) numbers: per level ``i``

* ``lbox += mean(1 − CIoU(decoded box, target))`` over the positives;
* ``lobj += balance[i] · BCE(obj logits, CIoU.clamp(0) at positives, 0 elsewhere)`` (mean over all
  cells; where several positives share a cell, the last one listed sets its target);
* ``lcls += BCE(class logits, one-hot)`` (mean over positives × classes; skipped when nc = 1);
* the auxiliary head adds the same three terms on its own outputs and labels, weighted 0.25.

The result is ``(box·lbox + obj·lobj + cls·lcls) × batch size``.

Decoder of the auxiliary head (Table 7): ``constrained`` decodes offsets as ``2σ − 0.5`` (the
official code), which cannot reach the centres of coarse positives one cell away — the constraint the
paper puts on the coarse head; ``free`` uses ``3σ − 1`` (commented out in the official code), which
can.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .assign import FINE, AuxStrategy, Candidates, assign, level_candidates
from .boxes import bbox_ciou
from .hyp import LossHyp

AuxDecoder = Literal["constrained", "free"]
_DECODERS = {"constrained": (2.0, 0.5), "free": (3.0, 1.0)}


def balance(nl: int) -> list[float]:
    """Objectness weight per level: [4, 1, 0.4] for P5, [4, 1, 0.25, 0.06] for P6."""
    return [4.0, 1.0, 0.4] if nl == 3 else [4.0, 1.0, 0.25, 0.06, 0.02][:nl]


@dataclass
class LossOutput:
    """``loss`` (differentiable, × batch size), detached components, and the assignment."""

    loss: torch.Tensor
    lbox: torch.Tensor
    lobj: torch.Tensor
    lcls: torch.Tensor
    lead: list[Candidates]
    aux: list[Candidates] | None

    @property
    def components(self) -> torch.Tensor:
        """``(lbox, lobj, lcls, loss / batch)`` as the official loss returns them."""
        return torch.stack((self.lbox, self.lobj, self.lcls, self.lbox + self.lobj + self.lcls))


class _LevelTerms(torch.autograd.Function):
    """``Σ softplus(pred[..., 4])`` over every cell, and the full rows ``pred[b, a, gj, gi]`` of the
    positives, from one level's raw output.

    The dense part of the objectness BCE is computed here without copying the objectness channel,
    and the backward writes both gradients into one tensor (``σ(x)`` into channel 4 and zeros
    elsewhere in a single pass, then the rows' gradients at their cells) instead of materialising
    and adding full-size tensors.
    """

    @staticmethod
    def forward(ctx, pred: torch.Tensor, cells: torch.Tensor):
        flat = pred.reshape(-1, pred.shape[-1])
        obj = flat[:, 4].float().contiguous()
        ctx.save_for_backward(obj, cells)
        ctx.shape, ctx.dtype = pred.shape, pred.dtype
        ctx.set_materialize_grads(False)
        return F.softplus(obj).sum(), flat[cells]

    @staticmethod
    def backward(ctx, grad_sum: torch.Tensor | None, grad_rows: torch.Tensor | None):
        obj, cells = ctx.saved_tensors
        no = ctx.shape[-1]
        if grad_sum is None:
            grad = torch.zeros(ctx.shape, dtype=ctx.dtype, device=obj.device)
            flat = grad.view(-1, no)
        else:  # every row is (0, 0, 0, 0, σ(x)·g, 0, ...): written in one pass, no zero fill first
            grad = torch.empty(ctx.shape, dtype=ctx.dtype, device=obj.device)
            flat = grad.view(-1, no)
            unit = torch.zeros(no, dtype=obj.dtype, device=obj.device)
            unit[4] = 1.0
            torch.mul(unit, torch.sigmoid(obj).mul_(grad_sum)[:, None], out=flat)
        if grad_rows is not None:
            flat.index_add_(0, cells, grad_rows.to(grad.dtype))
        return grad, None


def _last_occurrence(cells: torch.Tensor) -> torch.Tensor:
    """Mask of the last of the positives sharing a cell (the official index assignment on the CPU
    lets the last one set the objectness target), computed the same way on every device."""
    keep = torch.zeros(cells.numel(), dtype=torch.bool, device=cells.device)
    if cells.numel():
        _, inverse = torch.unique(cells, return_inverse=True)
        order = torch.arange(cells.numel(), device=cells.device)
        last = torch.full((int(inverse.max()) + 1,), -1, dtype=torch.long, device=cells.device)
        keep[last.scatter_reduce_(0, inverse, order, "amax")] = True
    return keep


class LevelGroup(NamedTuple):
    """One prediction level of one head, as the loss sums it."""

    pred: torch.Tensor  # raw output (bs, na, ny, nx, nc + 5)
    positives: Candidates  # the assignment's positives on this level
    anchors: torch.Tensor  # (na, 2), grid units
    decoder: tuple[float, float]  # (scale, shift) of the xy offsets: (2, 0.5) constrained, (3, 1) free (Table 7)
    head_weight: float  # 1 for the lead head, 0.25 for the auxiliary one
    obj_weight: float  # head_weight × the level's objectness balance


class _RowWeights(NamedTuple):
    """Per positive row, from its level group: the decoder, the grid size and the weights that turn
    sums into the official per-level means."""

    scale: torch.Tensor
    shift: torch.Tensor
    nx: torch.Tensor
    ny: torch.Tensor
    box: torch.Tensor  # head weight / positives of the level
    cls: torch.Tensor  # head weight / (positives × classes)
    obj: torch.Tensor  # objectness weight / cells of the level


def _loss_terms(groups: Sequence[LevelGroup], targets: torch.Tensor, nc: int,
                hyp: LossHyp) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weighted (box, obj, cls) sums over the level ``groups`` of every head.

    All groups' positives are decoded and scored in one pass; per-row weights turn the sums into the
    official per-level means (``lbox``: mean over the level's positives; ``lcls``: over positives ×
    classes; ``lobj``: over all cells). With ``obj_pw == 1`` (all official hyps)
    ``BCE(x, t) = softplus(x) − t·x``: the dense sums come from :class:`_LevelTerms` and targets are
    non-zero only at positives, so no dense target tensor is built.
    """
    device = targets.device
    rows, cells, wh, gij, tgt, table, counts, dense = [], [], [], [], [], [], [], []
    offset = 0
    for g in groups:
        pos = g.positives
        _, na, ny, nx, _ = g.pred.shape
        c = ((pos.b * na + pos.a) * ny + pos.gj) * nx + pos.gi
        level_dense, ps = _LevelTerms.apply(g.pred, c)
        n, area = len(pos), g.pred.numel() // g.pred.shape[-1]
        dense.append((level_dense, g.obj_weight / area))
        rows.append(ps)
        cells.append(c + offset)  # distinct across groups, for the duplicate-cell rule
        wh.append(g.anchors[pos.a])
        gij.append(torch.stack((pos.gi, pos.gj), 1))
        tgt.append(pos.target)
        table.append((*g.decoder, nx, ny, g.head_weight / max(n, 1), g.head_weight / max(n * nc, 1),
                      g.obj_weight / area))
        counts.append(n)
        offset += area
    zero = torch.zeros((), device=device)
    lbox, lobj, lcls = zero, sum((w * d for d, w in dense), zero), zero
    ps = torch.cat(rows).float()
    if not len(ps):
        return lbox, lobj, lcls
    group = torch.repeat_interleave(torch.arange(len(table), device=device), torch.tensor(counts, device=device))
    w = _RowWeights(*torch.tensor(table, device=device)[group].unbind(1))
    pxy = ps[:, :2].sigmoid() * w.scale[:, None] - w.shift[:, None]
    pwh = (ps[:, 2:4].sigmoid() * 2) ** 2 * torch.cat(wh).float()
    tgt = torch.cat(tgt)
    tbox = targets[tgt, 2:6].float() * torch.stack((w.nx, w.ny, w.nx, w.ny), 1)
    ciou = bbox_ciou(torch.cat((pxy, pwh), 1), torch.cat((tbox[:, :2] - torch.cat(gij), tbox[:, 2:]), 1))
    lbox = ((1.0 - ciou) * w.box).sum()
    cells = torch.cat(cells)
    keep = _last_occurrence(cells)
    values = ciou.detach().clamp(0)
    if nc > 1:
        onehot = torch.full_like(ps[:, 5:], 0.5 * hyp.label_smoothing)
        onehot[torch.arange(len(ps), device=device), targets[tgt, 1].long()] = 1.0 - 0.5 * hyp.label_smoothing
        bce = F.binary_cross_entropy_with_logits(ps[:, 5:], onehot, reduction="none",
                                                 pos_weight=ps.new_tensor([hyp.cls_pw]))
        lcls = (bce.sum(1) * w.cls).sum()
    if hyp.obj_pw == 1.0:
        return lbox, lobj - (ps[:, 4] * values * keep * w.obj).sum(), lcls
    # another pos_weight: the dense BCE, with its target tensor
    target = torch.zeros(offset, device=device)
    target[cells[keep]] = values[keep]
    lobj = zero
    for g, tg in zip(groups, target.split([g.pred.numel() // g.pred.shape[-1] for g in groups])):
        lobj = lobj + g.obj_weight * F.binary_cross_entropy_with_logits(
            g.pred[..., 4].float().reshape(-1), tg, pos_weight=tg.new_tensor([hyp.obj_pw]))
    return lbox, lobj, lcls


def compute_loss(
    preds: Sequence[torch.Tensor],
    targets: torch.Tensor,
    anchors: Sequence[torch.Tensor],
    strides: Sequence[float],
    nc: int,
    hyp: Mapping[str, float] | LossHyp,
    image_hw: tuple[int, int],
    strategy: AuxStrategy = "coarse_to_fine",
    aux_decoder: AuxDecoder = "constrained",
    topq: int | None = None,
    aux_weight: float = 0.25,
    ota: bool = True,
) -> LossOutput:
    """The YOLOv7 loss of raw head outputs.

    Args:
        preds: raw outputs ``(bs, na, ny, nx, nc + 5)``: ``nl`` lead levels, optionally followed by
            ``nl`` auxiliary levels.
        targets: ``(T, 6)`` rows ``(image, class, cx, cy, w, h)`` normalised to the input.
        anchors: per level ``(na, 2)`` anchor sizes in grid units (``head.anchors``).
        strides: per level stride in pixels.
        nc: number of classes; ``hyp``: gains (as given) and ``anchor_t``, ``label_smoothing``.
        image_hw: network input height and width in pixels.
        strategy: auxiliary-head assignment (:mod:`yolov7lib.assign.lead_guided`).
        topq: SimOTA's top-q (default 10 for 3 levels, 20 for 4, as officially).
        ota: False: every fine candidate is a positive, without SimOTA (the official ``ComputeLoss``,
            which ``loss_ota: 0`` selects; lead head only).
    """
    hyp = LossHyp.from_mapping(hyp)
    nl = len(anchors)
    if len(preds) not in (nl, 2 * nl):
        raise ValueError(f"expected {nl} or {2 * nl} prediction levels, got {len(preds)}")
    if targets.ndim != 2 or targets.shape[1] != 6:
        raise ValueError(f"targets must be (T, 6) rows (image, class, cx, cy, w, h), got {tuple(targets.shape)}")
    lead, aux = list(preds[:nl]), (list(preds[nl:]) or None)
    anchors = [a.to(targets.device) for a in anchors]
    topq = topq or (10 if nl == 3 else 20)
    if ota:
        lead_pos, aux_pos = assign(lead, aux, targets, anchors, list(strides), image_hw, topq, strategy,
                                   hyp.anchor_t)
    elif aux is None:
        lead_pos, aux_pos = level_candidates(lead, targets, anchors, FINE, hyp.anchor_t), None
    else:
        raise ValueError("the loss without OTA (loss_ota 0) has no auxiliary head, as officially")
    weights = balance(nl)
    groups = [LevelGroup(lead[i], lead_pos[i], anchors[i], _DECODERS["constrained"], 1.0, weights[i])
              for i in range(nl)]
    if aux_pos is not None:
        groups += [LevelGroup(aux[i], aux_pos[i], anchors[i], _DECODERS[aux_decoder], aux_weight,
                              aux_weight * weights[i]) for i in range(nl)]
    lbox, lobj, lcls = _loss_terms(groups, targets, nc, hyp)
    lbox, lobj, lcls = lbox * hyp.box, lobj * hyp.obj, lcls * hyp.cls
    loss = (lbox + lobj + lcls) * lead[0].shape[0]
    return LossOutput(loss, lbox.detach(), lobj.detach(), lcls.detach(), lead_pos, aux_pos)


class YOLOv7Loss(nn.Module):
    """The loss of a model, picked from its head: an auxiliary head gets the coarse-to-fine
    lead-guided loss (``ComputeLossAuxOTA``), a lead-only head the plain OTA loss
    (``ComputeLossOTA``), or with ``ota=False`` (``loss_ota: 0``) the loss without SimOTA
    (``ComputeLoss``), which an auxiliary head ignores as the official ``train_aux.py`` does.

    The anchors are read from the head at every call, so anchors changed after construction
    (autoanchor, a loaded checkpoint) are used; the head is referenced, not registered.
    """

    def __init__(
        self,
        model: nn.Module,
        hyp: Mapping[str, float] | LossHyp,
        strategy: AuxStrategy | None = None,
        aux_decoder: AuxDecoder = "constrained",
        ota: bool = True,
    ) -> None:
        super().__init__()
        head = model.head if hasattr(model, "head") else model
        self.nc, self.nl = head.nc, head.nl
        self.strides = list(head.strides)
        object.__setattr__(self, "_head", head)  # not a submodule: its parameters stay the model's
        self.hyp = LossHyp.from_mapping(hyp)
        self.has_aux = hasattr(head, "m2")
        self.strategy: AuxStrategy = strategy or ("coarse_to_fine" if self.has_aux else "none")
        self.aux_decoder = aux_decoder
        self.ota = ota or self.has_aux

    def forward(self, preds: Sequence[torch.Tensor], targets: torch.Tensor) -> LossOutput:
        ny, nx = preds[0].shape[2:4]
        image_hw = (int(ny * self.strides[0]), int(nx * self.strides[0]))
        anchors = list(self._head.anchors.detach())
        return compute_loss(preds, targets, anchors, self.strides, self.nc, self.hyp, image_hw, self.strategy,
                            self.aux_decoder, ota=self.ota)
