"""Detection heads: the lead head (``Detect`` / ``IDetect``) and lead + auxiliary head (``IAuxDetect``).

Paper §4.2 and Figure 5: in training, the P6 models attach an auxiliary head to intermediate
features; its predictions are supervised with coarse labels guided by the lead head's predictions
(see :mod:`yolov7lib.assign`). At inference only the lead head remains (``Detect``).

Output layout is the official one: each level gives a raw tensor ``(bs, na, ny, nx, nc + 5)``
(box xywh logits, objectness, classes). In train mode the head returns the list of raw tensors
(lead levels, then aux levels for ``IAuxDetect``); in eval mode ``(decoded, raw_lead)`` where
``decoded`` is ``(bs, sum(na*ny*nx), nc + 5)`` with boxes in input pixels:
``xy = (2σ(t_xy) − 0.5 + grid)·stride`` and ``wh = (2σ(t_wh))²·anchor``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .implicit import ImplicitA, ImplicitM

Anchors = Sequence[Sequence[float]]


def fold_implicit(
    weight: torch.Tensor, bias: torch.Tensor, ia: torch.Tensor, im: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold YOLOR implicit knowledge into a 1x1 conv: ``im ⊙ (W(x + ia) + b) = W'x + b'``.

    Returns ``W' = im ⊙ W`` (per output channel) and ``b' = im ⊙ (b + W·ia)``.
    """
    w2 = weight.reshape(weight.shape[0], -1)
    scale = im.reshape(-1)
    new_bias = (bias + w2 @ ia.reshape(-1)) * scale
    return weight * scale.reshape(-1, 1, 1, 1), new_bias


class Detect(nn.Module):
    """Plain YOLO head: one 1x1 conv per level (the deploy form of every YOLOv7 model)."""

    multi_input = True

    def __init__(
        self, nc: int, anchors: Anchors, ch: Sequence[int], strides: Sequence[float]
    ) -> None:
        super().__init__()
        if nc < 1:
            raise ValueError(f"nc must be >= 1, got {nc}")
        self.nc, self.no, self.nl = nc, nc + 5, len(anchors)
        self.na = len(anchors[0]) // 2
        if len(ch) < self.nl or len(strides) != self.nl:
            raise ValueError("need one input channel count and one stride per anchor level")
        a = torch.tensor(anchors, dtype=torch.float32).view(self.nl, -1, 2)
        self.strides = tuple(float(x) for x in strides)
        s = torch.tensor(self.strides, dtype=torch.float32)
        self.register_buffer("anchors", a / s.view(-1, 1, 1))  # grid units
        self.register_buffer("anchor_grid", a.clone().view(self.nl, 1, -1, 1, 1, 2))  # pixels
        self.register_buffer("stride", s, persistent=False)
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in ch[: self.nl])
        self._grids: dict[tuple[int, int, torch.device, torch.dtype], torch.Tensor] = {}
        self.initialize_biases(self.m)

    @torch.no_grad()
    def initialize_biases(self, convs: nn.ModuleList) -> None:
        """Objectness and class priors (official ``_initialize_biases``): 8 objects per 640² image,
        class probability 0.6 / (nc − 0.99)."""
        for conv, s in zip(convs, self.strides):
            b = conv.bias.view(self.na, -1)
            b[:, 4] += math.log(8 / (640 / s) ** 2)
            b[:, 5:] += math.log(0.6 / (self.nc - 0.99))

    def _shape(self, p: torch.Tensor) -> torch.Tensor:
        bs, _, ny, nx = p.shape
        return p.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()

    def lead(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Raw lead-head outputs, one ``(bs, na, ny, nx, no)`` tensor per level."""
        return [self._shape(self.m[i](xs[i])) for i in range(self.nl)]

    def grid(self, ny: int, nx: int, like: torch.Tensor) -> torch.Tensor:
        key = (ny, nx, like.device, like.dtype)
        g = self._grids.get(key)
        if g is None:
            yv, xv = torch.meshgrid(
                torch.arange(ny, device=like.device), torch.arange(nx, device=like.device),
                indexing="ij",
            )
            g = torch.stack((xv, yv), 2).view(1, 1, ny, nx, 2).to(like.dtype)
            self._grids[key] = g
        return g

    def decode(self, raw: Sequence[torch.Tensor]) -> torch.Tensor:
        """Boxes in input pixels (xywh), objectness and class probabilities, all levels concatenated."""
        z = []
        for i, p in enumerate(raw):
            bs, _, ny, nx, no = p.shape
            y = p.sigmoid()
            xy = (y[..., :2] * 2.0 - 0.5 + self.grid(ny, nx, p)) * self.stride[i]
            wh = (y[..., 2:4] * 2.0) ** 2 * self.anchor_grid[i]
            z.append(torch.cat((xy, wh, y[..., 4:]), -1).view(bs, -1, no))
        return torch.cat(z, 1)

    def forward(self, xs: Sequence[torch.Tensor]):
        raw = self.lead(xs)
        if self.training:
            return raw
        return self.decode(raw), raw

    def fuse(self) -> None:
        """Nothing to fold in a plain head."""


class IDetect(Detect):
    """Lead head with YOLOR implicit knowledge: ``p = im ⊙ conv(x + ia)`` (training form)."""

    def __init__(
        self, nc: int, anchors: Anchors, ch: Sequence[int], strides: Sequence[float]
    ) -> None:
        super().__init__(nc, anchors, ch, strides)
        self.ia = nn.ModuleList(ImplicitA(c) for c in ch[: self.nl])
        self.im = nn.ModuleList(ImplicitM(self.no * self.na) for _ in range(self.nl))
        self.fused = False

    def lead(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if self.fused:
            return super().lead(xs)
        return [self._shape(self.im[i](self.m[i](self.ia[i](xs[i])))) for i in range(self.nl)]

    def folded_lead(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Weight and bias of lead conv ``i`` with the implicit knowledge folded in."""
        conv = self.m[i]
        if self.fused:
            return conv.weight.detach().clone(), conv.bias.detach().clone()
        return fold_implicit(conv.weight, conv.bias, self.ia[i].implicit, self.im[i].implicit)

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold ``ia``/``im`` into the lead convs. As the official ``IDetect.fuse`` does, the
        implicit parameters stay registered (the fused model keeps the official parameter count and
        key layout) but are no longer applied."""
        if self.fused:
            return
        for i, conv in enumerate(self.m):
            w, b = self.folded_lead(i)
            conv.weight.copy_(w)
            conv.bias.copy_(b)
        self.fused = True


class IAuxDetect(IDetect):
    """Lead head (with implicit knowledge) plus the auxiliary head ``m2`` (plain 1x1 convs).

    Inputs are ``[lead P3..Pn, aux P3..Pn]``; train mode returns ``2·nl`` raw tensors in that
    order; eval mode decodes the lead levels only, as the official head does. After :meth:`fuse`
    the aux convs are no longer evaluated (official ``fuseforward``).
    """

    def __init__(
        self, nc: int, anchors: Anchors, ch: Sequence[int], strides: Sequence[float]
    ) -> None:
        nl = len(anchors)
        if len(ch) != 2 * nl:
            raise ValueError(f"IAuxDetect needs {2 * nl} inputs (lead + aux), got {len(ch)}")
        # Detect's, not IDetect's, constructor: the official state_dict registers m, m2, ia, im in that order
        Detect.__init__(self, nc, anchors, ch, strides)
        self.m2 = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in ch[nl:])
        self.ia = nn.ModuleList(ImplicitA(c) for c in ch[:nl])
        self.im = nn.ModuleList(ImplicitM(self.no * self.na) for _ in range(nl))
        self.fused = False
        self.initialize_biases(self.m2)

    def aux(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Raw auxiliary-head outputs."""
        return [self._shape(self.m2[i](xs[self.nl + i])) for i in range(self.nl)]

    def forward(self, xs: Sequence[torch.Tensor]):
        raw = self.lead(xs)
        if self.fused:  # the official fused forward skips the aux convs
            return raw if self.training else (self.decode(raw), raw)
        aux = self.aux(xs)  # computed in eval too, as officially (and so counted in its GFLOPs)
        if self.training:
            return raw + aux
        return self.decode(raw), raw
