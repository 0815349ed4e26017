"""SimOTA label assignment (YOLOX §2.3, as YOLOv7 uses it for the lead and auxiliary heads).

Among the candidate cells of an image (:mod:`~yolov7lib.assign.candidates`, all levels together),
every ground-truth box ``g`` takes its ``k_g`` cheapest candidates, where
``k_g = max(1, int(sum of its top-q IoUs))`` (q = 10 for P5, 20 for P6) and the cost is
``Σ_c BCE(logit(√(σ(cls_c)·σ(obj))), onehot_g) + 3·(−log(IoU + 1e-8))``. A candidate taken by
several boxes goes to the box with the lowest cost among all boxes of its image.

The whole batch is assigned at once: candidates are grouped per image into a padded
``(images, candidates)`` index, and ground-truth rows are processed in chunks so that no tensor
exceeds ``max_pairs`` (box, candidate) elements, whatever the number of targets per image. The class
cost uses ``Σ_c BCE(x_c, onehot_c) = Σ_c softplus(x_c) − x_cls``, so it costs O(boxes · candidates)
rather than O(boxes · candidates · classes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..boxes import box_iou_pairs, xywh_to_xyxy
from .candidates import Candidates, find_level_candidates


def _group(keys: torch.Tensor, groups: int) -> torch.Tensor:
    """Stable grouping of rows by ``keys``: a ``(groups, max_per_group)`` index padded with -1."""
    order = torch.argsort(keys, stable=True)
    counts = torch.bincount(keys, minlength=groups)
    width = int(counts.max()) if keys.numel() else 0
    starts = torch.cumsum(counts, 0) - counts
    pos = torch.arange(keys.numel(), device=keys.device) - starts[keys[order]]
    index = torch.full((groups, max(width, 1)), -1, dtype=torch.long, device=keys.device)
    index[keys[order], pos] = order
    return index


def _k_smallest(cost: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Mask of the ``k[r]`` smallest entries of each row; equal costs are taken in index order.

    Duplicate candidates (one cell reached from two targets) have equal costs; which of them a box
    takes decides whether two boxes conflict over a cell. Taking the lowest index, as ``torch.topk``
    does on the official one-row-per-box calls, makes the result independent of chunking.
    """
    kth = cost.topk(max(int(k.max()), 1), dim=1, largest=False).values.gather(1, (k - 1).clamp(min=0)[:, None])
    below = cost < kth
    tied = cost == kth
    room = k[:, None] - below.sum(1, keepdim=True)
    return (below | (tied & (tied.cumsum(1) <= room))) & (k > 0)[:, None]


def simota_match(
    preds: list[torch.Tensor],
    targets: torch.Tensor,
    anchors: list[torch.Tensor],
    strides: list[float],
    image_hw: tuple[int, int],
    radius: float,
    topq: int,
    anchor_t: float = 4.0,
    max_pairs: int = 1 << 22,
) -> list[Candidates]:
    """Assign ``targets`` to cells of ``preds`` (raw head outputs, one ``(bs, na, ny, nx, no)`` per
    level); return the positive cells of each level, each with the row of its target.

    Per level, positives are listed image by image in candidate order, as the official code lists
    them (this fixes which of several targets sharing a cell sets its objectness target).
    """
    device, nl = targets.device, len(preds)
    bs, na = preds[0].shape[:2]
    grids = [(p.shape[2], p.shape[3]) for p in preds]
    cand, level = find_level_candidates(targets, torch.stack(anchors), grids, radius, anchor_t)
    if len(cand) == 0:
        return [Candidates(*(torch.zeros(0, dtype=torch.long, device=device),) * 5) for _ in range(nl)]
    counts = torch.bincount(level, minlength=nl).tolist()

    # predicted boxes (pixels, xyxy) and class logits of every candidate
    shape = torch.tensor(grids, device=device)[level]  # (C, 2) ny, nx of the candidate's level
    cells = ((cand.b * na + cand.a) * shape[:, 0] + cand.gj) * shape[:, 1] + cand.gi
    row = torch.cat([p.detach().reshape(-1, p.shape[-1])[c] for p, c in zip(preds, cells.split(counts))]).float()
    stride = torch.tensor(strides, device=device, dtype=torch.float32)[level, None]
    xy = (row[:, :2].sigmoid() * 2.0 - 0.5 + torch.stack((cand.gi, cand.gj), 1)) * stride
    wh = (row[:, 2:4].sigmoid() * 2.0) ** 2 * torch.stack(anchors).float()[level, cand.a] * stride
    boxes = xywh_to_xyxy(torch.cat((xy, wh), 1))
    y = (row[:, 5:].sigmoid() * row[:, 4:5].sigmoid()).sqrt()
    logits = torch.log(y / (1 - y))
    base_cost = F.softplus(logits).sum(1)  # Σ_c BCE(x_c, 0)

    h, w = image_hw
    gt_box = xywh_to_xyxy(targets[:, 2:6].float() * torch.tensor([w, h, w, h], device=device))
    gt_img, gt_cls = targets[:, 0].long(), targets[:, 1].long()
    cand_index = _group(cand.b, bs)  # (bs, C) candidate rows per image, -1 = padding
    gt_index = _group(gt_img, bs)  # (bs, G) target rows per image

    def pair_cost(rows: torch.Tensor, cands: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(IoU, cost) of target rows (R,) against candidate indices (R, K); -1 = padding."""
        valid = cands >= 0
        c = cands.clamp(min=0)
        iou = box_iou_pairs(gt_box[rows, None], boxes[c]).masked_fill(~valid, 0.0)
        cls_cost = base_cost[c] - logits[c, gt_cls[rows, None].expand_as(c)]
        cost = cls_cost + 3.0 * -torch.log(iou + 1e-8)
        return iou, cost.masked_fill(~valid, float("inf"))

    # every target takes its k cheapest candidates, in chunks of rows
    width = cand_index.shape[1]
    chunk = max(1, max_pairs // width)
    picked_gt, picked_cand = [], []
    for start in range(0, targets.shape[0], chunk):
        rows = torch.arange(start, min(start + chunk, targets.shape[0]), device=device)
        cands = cand_index[gt_img[rows]]
        iou, cost = pair_cost(rows, cands)
        q = min(topq, width)
        k = iou.topk(q, dim=1).values.sum(1).int().clamp(min=1)
        k = torch.minimum(k, (cands >= 0).sum(1))
        take = _k_smallest(cost, k)
        picked_gt.append(rows[:, None].expand_as(cands)[take])
        picked_cand.append(cands[take])
    picked_gt, picked_cand = torch.cat(picked_gt), torch.cat(picked_cand)

    # a candidate taken by several targets goes to the cheapest target of its image
    times = torch.bincount(picked_cand, minlength=len(cand))
    matched = torch.full((len(cand),), -1, dtype=torch.long, device=device)
    matched[picked_cand] = picked_gt
    shared = (times > 1).nonzero(as_tuple=True)[0]
    if shared.numel():
        rows = gt_index[cand.b[shared]]  # (S, G) candidate's image's targets
        _, cost = pair_cost(rows.clamp(min=0).flatten(), shared.repeat_interleave(rows.shape[1])[:, None])
        cost = cost.view(rows.shape).masked_fill(rows < 0, float("inf"))
        matched[shared] = rows.gather(1, cost.argmin(1, keepdim=True)).squeeze(1)

    # image by image within each level, as officially
    sel = (times > 0).nonzero(as_tuple=True)[0]
    sel = sel[torch.argsort(level[sel] * bs + cand.b[sel], stable=True)]
    pos = cand.select(sel)
    pos.target = matched[sel]
    sizes = torch.bincount(level[sel], minlength=nl).tolist()
    return [Candidates(*parts) for parts in zip(*(t.split(sizes) for t in (pos.b, pos.a, pos.gj, pos.gi, pos.target)))]
