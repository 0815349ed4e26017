"""Model scaling (paper §3.3, Figure 3; §5.4.1, Table 3).

:func:`compound` is the paper's compound scaling for concatenation-based models: the depth of every
computational block (the number of stacked convs of an ELAN) × ``depth``, which widens each block's
concatenation by a factor ``f``; every width outside the blocks (stem, each block's closing 1x1,
transitions, SPP, neck reductions, prediction convs) is then × ``f``, so that each block's output
stays proportional to its input. The blocks' own stems and chains keep their widths. From the base of
Table 3 ("v7-X light", :data:`~yolov7lib.models.build.VARIANTS` ``yolov7x-light``) ``compound(base, 1.5)``
gives YOLOv7-X exactly (f = 5/4); from W6, ``compound(w6, 1.5)`` and ``compound(w6, 2.0)`` give the
widths and depths of E6 and D6 (f = 5/4 and 6/4). The official configs depart from the rule in
three places the rule cannot express: E6 / D6 use DownC transitions instead of strided convs, their
auxiliary-head convs are not scaled by ``f`` (E6 keeps W6's, D6 scales them by 1.2), and YOLOv7-X's
neck uses full-width ELANs where YOLOv7 uses ELAN-H (the Table 3 base therefore has X's topology).

:func:`multiply` scales a zoo variant uniformly, as the official YAMLs' ``width_multiple`` /
``depth_multiple`` do for other model families: every channel count × ``width`` (rounded up to a
multiple of 8) and the depth of every computational block (the number of stacked convs of an ELAN)
× ``depth``. The project uses it for the reduced-scale models of its CPU profiles
(``build_model(name, width=0.5)``).
"""

from __future__ import annotations

import math
from dataclasses import replace

from .csp import CSP
from .elan import EELAN, ELAN, Block
from .transitions import Transition
from .variant import Variant


def channels(c: int, width: float) -> int:
    """``c × width`` rounded up to a multiple of 8 (the official ``make_divisible``); 0 stays 0."""
    return 0 if c == 0 else max(8, math.ceil(c * width / 8) * 8)


def blocks(depth: int, factor: float, step: int = 1) -> int:
    """An ELAN depth × ``factor``, a positive multiple of the block's concatenation ``step``."""
    return max(step, round(depth * factor / step) * step)


def _block(b: Block, width: float, depth: float, inside: bool = True) -> Block:
    """``b`` with depth × ``depth`` and its output × ``width``; its stems and chain too if ``inside``."""
    if isinstance(b, EELAN):
        return replace(b, elan=_block(b.elan, width, depth, inside))
    if isinstance(b, CSP):  # the official depth_multiple rule for the YOLOR baselines
        return replace(b, out=channels(b.out, width), n=max(1, round(b.n * depth)))
    inner = width if inside else 1.0
    return replace(b, width=channels(b.width, inner), out=channels(b.out, width),
                   mid=None if b.mid is None else channels(b.mid, inner), depth=blocks(b.depth, depth, b.step))


def _elan(b: Block) -> ELAN:
    if isinstance(b, CSP):
        raise ValueError("compound scaling (§3.3) applies to concatenation-based (ELAN) models, not CSP blocks")
    return b.elan if isinstance(b, EELAN) else b


def concat_width(b: Block, depth: int | None = None) -> int:
    """Channels of an ELAN's concatenation: both stems and every ``step``-th conv of the chain."""
    e = _elan(b)
    return 2 * e.width + (e.depth if depth is None else depth) // e.step * e.chain_width


def _down(t: Transition | None, width: float) -> Transition | None:
    return None if t is None else replace(t, width=channels(t.width, width))


def _rescale(variant: Variant, width: float, depth: float, inside: bool, aux: bool) -> Variant:
    return replace(
        variant,
        stem=tuple((channels(c, width), k, s) for c, k, s in variant.stem),
        stages=tuple(replace(st, block=_block(st.block, width, depth, inside), down=_down(st.down, width))
                     for st in variant.stages),
        spp=channels(variant.spp, width),
        top_down=tuple(replace(lv, block=_block(lv.block, width, depth, inside), reduce=channels(lv.reduce, width),
                               down=_down(lv.down, width)) for lv in variant.top_down),
        bottom_up=tuple(replace(lv, block=_block(lv.block, width, depth, inside), reduce=channels(lv.reduce, width),
                                down=_down(lv.down, width)) for lv in variant.bottom_up),
        pred=tuple(channels(c, width) for c in variant.pred),
        aux=tuple(channels(c, width) for c in variant.aux) if aux else variant.aux,
        paper_params=None,
        paper_gflops=None,
    )


def compound(variant: Variant, depth: float, name: str | None = None) -> Variant:
    """Compound scaling (§3.3): block depth × ``depth``, widths outside the blocks × the growth of the
    blocks' concatenation. Raises if the blocks of ``variant`` would grow by different factors."""
    blocks_ = [st.block for st in variant.stages] + [lv.block for lv in variant.top_down + variant.bottom_up]
    factors = {concat_width(b, blocks(_elan(b).depth, depth, _elan(b).step)) / concat_width(b) for b in blocks_}
    if len(factors) != 1:
        raise ValueError(f"{variant.name}: its blocks widen by different factors {sorted(factors)}")
    return replace(_rescale(variant, factors.pop(), depth, inside=False, aux=False),
                   name=name or f"{variant.name}@compound{depth:g}")


def multiply(variant: Variant, width: float = 1.0, depth: float = 1.0) -> Variant:
    """``variant`` with every width × ``width`` and every ELAN depth × ``depth``."""
    if width <= 0 or depth <= 0:
        raise ValueError(f"width and depth multiples must be positive, got {width}, {depth}")
    if width == 1.0 and depth == 1.0:
        return variant
    return replace(_rescale(variant, width, depth, inside=True, aux=True), name=f"{variant.name}@w{width:g}d{depth:g}")
