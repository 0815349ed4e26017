"""ELAN and E-ELAN computational blocks (paper §3.1, Figure 2).

An ELAN block has two 1x1 stems on the same input; a chain of ``depth`` 3x3 convs grows from the
second stem; the outputs of every ``step``-th conv of the chain (counted from its end) are
concatenated with both stems and merged by a 1x1 transition conv. The official models use:

* backbone ELAN: ``step=2`` (4, 6 or 8 convs: YOLOv7 / W6; X / E6 / E6E; D6), 3x3 width = stem
  width;
* head ELAN (``ELAN-H``): ``step=1`` (every conv of the chain is concatenated), the chain running at
  half the stem width (YOLOv7, W6, E6, D6, E6E); YOLOv7-X's head uses backbone-style ELANs;
* tiny ELAN: 2 convs, ``step=1``, chain width = stem width.

E-ELAN (expand, shuffle, merge cardinality) is implemented as the official E6E does it: ``groups``
ELANs with identical shapes read the same input and their outputs are summed (``Shortcut``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .blocks import Shortcut
from .csp import CSP
from .graph import GraphBuilder
from .repconv import RepConv


@dataclass(frozen=True)
class ELAN:
    """One ELAN block.

    Attributes:
        width: channels of each of the two 1x1 stems.
        depth: number of stacked 3x3 convs (the block's depth in compound scaling, §3.3).
        out: channels of the closing 1x1 transition conv.
        mid: channels of the stacked 3x3 convs (default: ``width``).
        step: concatenate every ``step``-th conv output of the chain (1 = all of them).
        rep: 1-based positions in the chain built as RepConvN (planned RepConcatenation, §3.2,
            Figure 6, Table 4): RepConv without its identity branch, since each output is concatenated.
    """

    width: int
    depth: int
    out: int
    mid: int | None = None
    step: int = 2
    rep: tuple[int, ...] = ()

    @property
    def chain_width(self) -> int:
        return self.width if self.mid is None else self.mid

    def build(self, g: GraphBuilder, src: int) -> int:
        """Append the block's layers reading ``src``; return the index of its output conv."""
        stem_a = g.conv(src, self.width, 1)
        stem_b = g.conv(src, self.width, 1)
        chain = [stem_b]
        for j in range(1, self.depth + 1):
            if j in self.rep:
                chain.append(g.add(RepConv(g.ch(chain[-1]), self.chain_width, act=g.act, identity=False),
                                   chain[-1], self.chain_width))
            else:
                chain.append(g.conv(chain[-1], self.chain_width, 3))
        picked = [chain[j] for j in range(self.depth, 0, -self.step)]
        cat = g.concat([*picked, stem_b, stem_a])
        return g.conv(cat, self.out, 1)



def head_elan(width: int, depth: int, out: int) -> ELAN:
    """ELAN-H, the neck's ELAN: the chain at half the stem width, every conv concatenated."""
    return ELAN(width, depth, out, width // 2, 1)


def tiny_elan(width: int, out: int) -> ELAN:
    """YOLOv7-tiny's ELAN: two 3x3 convs at the stem width, both concatenated."""
    return ELAN(width, 2, out, None, 1)


@dataclass(frozen=True)
class EELAN:
    """Extended ELAN: ``groups`` parallel ELANs on the same input, merged by summation (§3.1).

    ``build`` returns the merged output; :attr:`last_tap` holds the output of the last group before
    the merge, which the partial auxiliary head of E6E reads (paper §5.4.3, Table 8).
    """

    elan: ELAN
    groups: int = 2

    @property
    def out(self) -> int:
        return self.elan.out

    def build_with_tap(self, g: GraphBuilder, src: int) -> tuple[int, int]:
        outs = [self.elan.build(g, src) for _ in range(self.groups)]
        merged = outs[0]
        for other in outs[1:]:
            merged = g.add(Shortcut(), (other, merged), self.out)
        return merged, outs[-1]

    def build(self, g: GraphBuilder, src: int) -> int:
        return self.build_with_tap(g, src)[0]


Block = ELAN | EELAN | CSP  # CSP: the residual blocks of the YOLOR baselines (Table 5)


def build_block(g: GraphBuilder, block: Block, src: int) -> tuple[int, int]:
    """Build a computational block; return (output, feature tapped by an auxiliary head)."""
    if isinstance(block, EELAN):
        return block.build_with_tap(g, src)
    out = block.build(g, src)
    return out, out
