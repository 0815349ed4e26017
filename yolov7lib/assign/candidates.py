"""Fine and coarse positive candidates (paper §4.2, Figure 5(e)).

For each target and each anchor whose shape ratio to the target is below ``anchor_t`` (4.0), the
cell holding the target centre is a candidate, plus neighbouring cells:

* **fine** (lead head): the two neighbours closest to the centre, one horizontal and one vertical
  (offset ``g = 0.5``): up to 3 cells per target and anchor;
* **coarse** (auxiliary head): all four neighbours (``g = 1.0``): up to 5 cells.

Neighbours are not taken across the image border (``x > 1`` on both sides). Candidates are listed in
the official order (offset, then anchor, then target), which fixes tie-breaking downstream.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

FINE = 0.5  # lead head: centre + 2 nearest neighbours
COARSE = 1.0  # aux head: centre + 4 neighbours
_OFFSETS = ((0, 0), (1, 0), (0, 1), (-1, 0), (0, -1))


@dataclass
class Candidates:
    """Candidate cells of one level: image, anchor, cell row/column, and the target they came from."""

    b: torch.Tensor
    a: torch.Tensor
    gj: torch.Tensor
    gi: torch.Tensor
    target: torch.Tensor  # row index into the targets tensor

    def __len__(self) -> int:
        return self.b.shape[0]

    def select(self, mask: torch.Tensor) -> Candidates:
        return Candidates(self.b[mask], self.a[mask], self.gj[mask], self.gi[mask], self.target[mask])

    def to(self, device: torch.device | str) -> Candidates:
        return Candidates(self.b.to(device), self.a.to(device), self.gj.to(device), self.gi.to(device),
                          self.target.to(device))


def find_candidates(
    targets: torch.Tensor,
    anchors: torch.Tensor,
    grid: tuple[int, int],
    radius: float = FINE,
    anchor_t: float = 4.0,
) -> Candidates:
    """Candidates of one level.

    Args:
        targets: ``(T, 6)`` rows ``(image, class, cx, cy, w, h)``, normalised to [0, 1].
        anchors: ``(na, 2)`` anchor sizes in grid units of this level.
        grid: ``(ny, nx)`` of this level.
        radius: :data:`FINE` (0.5) or :data:`COARSE` (1.0).
        anchor_t: largest allowed ratio between target and anchor sides.
    """
    return find_level_candidates(targets, anchors[None], [grid], radius, anchor_t)[0]


def find_level_candidates(
    targets: torch.Tensor,
    anchors: torch.Tensor,
    grids: list[tuple[int, int]],
    radius: float = FINE,
    anchor_t: float = 4.0,
) -> tuple[Candidates, torch.Tensor]:
    """Candidates of all levels at once, level by level, and the level of each.

    ``anchors`` is ``(nl, na, 2)`` in grid units of each level, ``grids`` the ``(ny, nx)`` of each;
    the other arguments are those of :func:`find_candidates`. Within a level the order is the
    official one; doing all levels in one pass saves most of the per-operation overhead.
    """
    device = targets.device
    size = torch.tensor([[nx, ny] for ny, nx in grids], device=device, dtype=targets.dtype)  # (nl, 2)
    gxy = targets[None, :, 2:4] * size[:, None]  # (nl, T, 2)
    ratio = (targets[None, :, 4:6] * size[:, None])[:, None] / anchors[:, :, None]  # (nl, na, T, 2)
    fits = torch.max(ratio, 1.0 / ratio).amax(3) < anchor_t
    level, anchor_idx, target_idx = fits.nonzero(as_tuple=True)  # level-, then anchor-major
    gxy, lsize = gxy[level, target_idx], size[level]
    gxi = lsize - gxy
    near = ((gxy % 1.0 < radius) & (gxy > 1.0)).T  # left, up
    far = ((gxi % 1.0 < radius) & (gxi > 1.0)).T  # right, down
    taken = torch.stack((torch.ones_like(near[0]), near[0], near[1], far[0], far[1]))
    offset_idx, pair = taken.nonzero(as_tuple=True)  # offset-major ...
    if len(grids) > 1:  # ... within each level
        order = torch.argsort(level[pair], stable=True)
        offset_idx, pair = offset_idx[order], pair[order]
    offsets = torch.tensor(_OFFSETS, device=device, dtype=targets.dtype)[offset_idx] * radius
    gij = torch.minimum((gxy[pair] - offsets).long(), lsize[pair].long() - 1).clamp(min=0)
    target = target_idx[pair]
    found = Candidates(b=targets[target, 0].long(), a=anchor_idx[pair], gj=gij[:, 1], gi=gij[:, 0], target=target)
    return found, level[pair]


def level_candidates(preds: list[torch.Tensor], targets: torch.Tensor, anchors: list[torch.Tensor],
                     radius: float = FINE, anchor_t: float = 4.0) -> list[Candidates]:
    """Every candidate of every level of raw outputs ``preds`` as its positive, without matching:
    the official ``ComputeLoss`` assignment (YOLOv5's), which ``loss_ota: 0`` selects."""
    grids = [(p.shape[2], p.shape[3]) for p in preds]
    found, level = find_level_candidates(targets, torch.stack(anchors), grids, radius, anchor_t)
    return [found.select(level == i) for i in range(len(preds))]
