"""CSPDarknet residual blocks and planned RepResidual (paper §3.2, Figure 7, Table 5).

The residual ablation of the paper is run on YOLOR-CSP and YOLOR-W6, whose computational blocks are
CSPDarknet "dark blocks" (a 1x1 conv, a 3x3 conv and a residual sum) wrapped in cross-stage-partial
blocks of three shapes (official names ``BottleneckCSPA/B/C``; ``c`` is the block's output, ``h`` half
of it):

* ``A``: two 1x1 stems ``c1 -> h``; ``n`` dark blocks on the first; 1x1 merge of ``[dark, stem2] -> c``;
* ``B``: one 1x1 stem ``c1 -> c``; ``n`` dark blocks on it; a 1x1 ``c -> c`` on the stem; 1x1 merge
  of ``[dark, that conv] -> c``;
* ``C``: two 1x1 stems ``c1 -> h``; ``n`` dark blocks on the first then a 1x1 ``h -> h``; 1x1 merge of
  ``[that conv, stem2] -> c``.

The dark blocks inside a CSP block keep their width (``e = 1``); YOLOR-CSP's lone stride-4 dark block
halves it (``e = 0.5``). The three Table 5 placements (our reading of the row names, which the paper
does not spell out):

* **RepCSP**: the 3x3 conv becomes a RepConv. Its output feeds the residual sum, so by the paper's
  rule (§3.2: a RepConv whose output meets a residual or concatenation must drop its identity) it is
  RepConvN;
* **RCSP** ("reversed CSPDarknet", Figure 7): the 1x1 and 3x3 convs swap places, 3x3 first;
* **RepRCSP**: reversed, with the (now first) 3x3 conv a RepConv. Its output feeds a 1x1 conv, not the
  sum, so it keeps the identity branch wherever its input and output widths agree; this is what
  reversing the block is for ("to fit our planned re-parameterized model design strategy").

All placements have the base's parameter count once re-parameterized.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from .blocks import ActFactory, Conv, silu
from .graph import GraphBuilder
from .repconv import RepConv

CSPKind = Literal["A", "B", "C"]


@dataclass(frozen=True)
class DarkStyle:
    """How every dark block of a model is built (Table 5's rows)."""

    reversed: bool = False  # RCSP: 3x3 conv first, then 1x1
    rep: bool = False  # planned RepConv at the 3x3 position

    @property
    def label(self) -> str:
        return ("Rep" if self.rep else "") + ("RCSP" if self.reversed else "CSP")


PLAIN = DarkStyle()  # the baselines' dark block: 1x1 then 3x3, plain convs


class DarkBlock(nn.Module):
    """A CSPDarknet dark block ``x + cv2(cv1(x))`` (official ``Bottleneck``; keys ``cv1``, ``cv2``).

    Normal: ``cv1`` 1x1 ``c1 -> c_``, ``cv2`` 3x3 ``c_ -> c2``. Reversed (RCSP): ``cv1`` 3x3, ``cv2``
    1x1. The residual exists when ``c1 == c2``.
    """

    def __init__(self, c1: int, c2: int, e: float = 0.5, style: DarkStyle = PLAIN,
                 act: ActFactory = silu) -> None:
        super().__init__()
        c_ = int(c2 * e)
        k1, k2 = (3, 1) if style.reversed else (1, 3)
        self.cv1 = self._conv(c1, c_, k1, style, act, identity=None)
        # the 3x3 output of a normal block feeds the residual sum: RepConvN (no identity, §3.2)
        self.cv2 = self._conv(c_, c2, k2, style, act, identity=False)
        self.add = c1 == c2

    @staticmethod
    def _conv(c1: int, c2: int, k: int, style: DarkStyle, act: ActFactory,
              identity: bool | None) -> nn.Module:
        if k == 3 and style.rep:
            return RepConv(c1, c2, act=act, identity=identity)
        return Conv(c1, c2, k, 1, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class CSPBlock(nn.Module):
    """A cross-stage-partial block of kind ``A``, ``B`` or ``C`` (module docstring) over ``n`` dark
    blocks; attribute names ``cv1``..``cv4`` and ``m`` as the official modules have them."""

    def __init__(self, c1: int, c2: int, n: int, kind: CSPKind, style: DarkStyle = PLAIN,
                 act: ActFactory = silu) -> None:
        super().__init__()
        if kind not in ("A", "B", "C"):
            raise ValueError(f"CSP kind must be 'A', 'B' or 'C', got {kind!r}")
        self.kind = kind
        h = c2 if kind == "B" else c2 // 2
        self.cv1 = Conv(c1, h, 1, 1, act)
        self.cv2 = Conv(h if kind == "B" else c1, h, 1, 1, act)
        if kind == "C":
            self.cv3 = Conv(h, h, 1, 1, act)
            self.cv4 = Conv(2 * h, c2, 1, 1, act)
        else:
            self.cv3 = Conv(2 * h, c2, 1, 1, act)
        self.m = nn.Sequential(*(DarkBlock(h, h, 1.0, style, act) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stem = self.cv1(x)
        if self.kind == "A":
            return self.cv3(torch.cat((self.m(stem), self.cv2(x)), 1))
        if self.kind == "B":
            return self.cv3(torch.cat((self.m(stem), self.cv2(stem)), 1))
        return self.cv4(torch.cat((self.cv3(self.m(stem)), self.cv2(x)), 1))


@dataclass(frozen=True)
class CSP:
    """A CSP block in a variant's table: ``kind``, output channels ``out`` and ``n`` dark blocks
    (the block's depth in scaling). ``kind = "dark"`` is one bare dark block (``e = 0.5``)."""

    kind: CSPKind | Literal["dark"]
    out: int
    n: int = 1
    style: DarkStyle = PLAIN

    def build(self, g: GraphBuilder, src: int) -> int:
        if self.kind == "dark":
            return g.add(DarkBlock(g.ch(src), self.out, 0.5, self.style, g.act), src, self.out)
        return g.add(CSPBlock(g.ch(src), self.out, self.n, self.kind, self.style, g.act), src, self.out)
