"""Lead head guided label assignment and the paper's auxiliary-head ablations (§4.2, Tables 6, 7).

Strategies for the auxiliary head (the lead head always gets fine labels from its own predictions):

* ``none``: the auxiliary head gets no labels (Table 6 "base");
* ``independent``: fine labels computed from the auxiliary head's own predictions (Figure 5(c));
* ``lead_guided``: the lead head's fine labels (Figure 5(d));
* ``coarse_to_fine``: coarse labels (5-cell candidates) matched on the lead head's predictions
  (Figure 5(e)); the official YOLOv7 training (``ComputeLossAuxOTA``).

Table 7's decoder constraint is a property of the loss, not of the assignment: see
:class:`yolov7lib.loss.YOLOv7Loss` (``aux_decoder``).
"""

from __future__ import annotations

import warnings
from typing import Literal

import torch

from .candidates import COARSE, FINE, Candidates
from .simota import simota_match

AuxStrategy = Literal["none", "independent", "lead_guided", "coarse_to_fine"]
STRATEGIES: tuple[AuxStrategy, ...] = ("none", "independent", "lead_guided", "coarse_to_fine")


def assign(
    lead: list[torch.Tensor],
    aux: list[torch.Tensor] | None,
    targets: torch.Tensor,
    anchors: list[torch.Tensor],
    strides: list[float],
    image_hw: tuple[int, int],
    topq: int,
    strategy: AuxStrategy = "coarse_to_fine",
    anchor_t: float = 4.0,
) -> tuple[list[Candidates], list[Candidates] | None]:
    """Positive cells of the lead head and (if ``aux`` is given) of the auxiliary head."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown aux strategy {strategy!r}; choose from {STRATEGIES}")
    fine = match_safely(lead, targets, anchors, strides, image_hw, FINE, topq, anchor_t)
    if aux is None or strategy == "none":
        return fine, None
    if strategy == "lead_guided":
        return fine, fine
    source, radius = (aux, FINE) if strategy == "independent" else (lead, COARSE)
    return fine, match_safely(source, targets, anchors, strides, image_hw, radius, topq, anchor_t)


def match_safely(preds, targets, anchors, strides, image_hw, radius, topq, anchor_t,
                 max_pairs: int = 1 << 22, min_pairs: int = 1 << 16) -> list[Candidates]:
    """:func:`simota_match`, retried when memory runs out: with smaller chunks, then (for an
    accelerator) on the CPU for this batch. A warning says so; the result is the same."""
    while True:
        try:
            return simota_match(preds, targets, anchors, strides, image_hw, radius, topq, anchor_t, max_pairs)
        except torch.OutOfMemoryError:
            if max_pairs > min_pairs:
                max_pairs //= 4
                warnings.warn(f"label assignment ran out of memory; retrying in chunks of {max_pairs} pairs",
                              RuntimeWarning, stacklevel=2)
                continue
            if targets.device.type == "cpu":
                raise
            warnings.warn("label assignment ran out of device memory; assigning this batch on the CPU",
                          RuntimeWarning, stacklevel=2)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            device = targets.device
            cpu = simota_match([p.detach().cpu() for p in preds], targets.cpu(), [a.cpu() for a in anchors],
                               strides, image_hw, radius, topq, anchor_t, max_pairs)
            return [c.to(device) for c in cpu]
