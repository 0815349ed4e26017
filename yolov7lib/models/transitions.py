"""Down-sampling transition blocks between ELAN stages and in the PAN bottom-up path.

Kinds (as the official models use them):

* ``mpconv`` (YOLOv7, X): max-pool branch (MP -> 1x1) and strided branch (1x1 -> 3x3 s2),
  concatenated ``[strided, max-pool]`` (paper Figure 2's transition with max-pool, §3.1);
* ``conv`` (W6, and tiny's head): a 3x3 stride-2 Conv;
* ``downc`` (E6, D6, E6E): the :class:`~yolov7lib.models.blocks.DownC` module;
* ``mp`` (tiny's backbone): a bare 2x2 max-pool.

In the PAN bottom-up path the result is concatenated with the same-scale top-down feature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .blocks import MP, DownC
from .graph import GraphBuilder

TransitionKind = Literal["mpconv", "conv", "downc", "mp"]


@dataclass(frozen=True)
class Transition:
    """A stride-2 transition. ``width``: branch width (mpconv) or output channels (conv, downc)."""

    kind: TransitionKind
    width: int = 0

    def build(self, g: GraphBuilder, src: int, skip: int | None = None) -> int:
        """Append the layers reading ``src``; with ``skip``, concatenate that feature at the end."""
        if self.kind == "mpconv":
            pooled = g.conv(g.add(MP(), src, g.ch(src), down=2), self.width, 1)
            strided = g.conv(g.conv(src, self.width, 1), self.width, 3, 2)
            return g.concat([strided, pooled] + ([] if skip is None else [skip]))
        if self.kind == "conv":
            out = g.conv(src, self.width, 3, 2)
        elif self.kind == "downc":
            out = g.add(DownC(g.ch(src), self.width, act=g.act), src, self.width, down=2)
        elif self.kind == "mp":
            out = g.add(MP(), src, g.ch(src), down=2)
        else:
            raise ValueError(f"unknown transition kind {self.kind!r}")
        return out if skip is None else g.concat([out, skip])
