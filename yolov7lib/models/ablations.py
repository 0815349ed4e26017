"""The ablation-only models of Tables 3, 4, 5 and 8, as rows of the same schema as the released ones
(:class:`~yolov7lib.models.variant.Variant`, ``ablation`` naming the table):

* Table 3 (§5.4.1, model scaling): the inferred base "v7-X light", width only, depth only;
* Table 4 (§5.4.2, planned RepConcatenation): a 3-stacked-ELAN YOLOv7 and RepConvN placements (a)-(e);
* Table 5 (§5.4.2, planned RepResidual): the YOLOR-CSP and YOLOR-W6 baselines with each dark block;
* Table 8 (§5.4.3, partial auxiliary head): E6E without an aux head and with a full one.
"""

from __future__ import annotations

from dataclasses import replace

from .csp import CSP, PLAIN, DarkStyle
from .elan import EELAN, Block
from .transitions import Transition
from .variant import Level, Stage, Variant
from .zoo import ANCHORS_P5, ANCHORS_P6, RELEASED, x_variant


def _table3() -> list[Variant]:
    """Table 3: the base and its width-only and depth-only scalings (YOLOv7-X, the compound row, is released)."""
    rows = (
        ("yolov7x-light", dict(stem=32, block=64, depth=4, out=64), (47.0, 125.5),
         "Table 3 base, inferred: YOLOv7-X with the compound scaling undone (depth 6 -> 4, widths outside the "
         "blocks / 1.25), i.e. YOLOv7 with X's full-width ELAN neck"),
        ("yolov7x-light-w1.25", dict(stem=40, block=80, depth=4, out=80), (73.4, 195.5),
         "Table 3 width only: every width of the base x1.25 (= scaling.multiply(base, width=1.25))"),
        ("yolov7x-light-d2.0", dict(stem=32, block=64, depth=8, out=64), (69.3, 187.6),
         "Table 3 depth only: 8 stacked convs per ELAN (= scaling.multiply(base, depth=2.0))"),
    )
    return [x_variant(name, **shape, paper_params=paper[0], paper_gflops=paper[1], notes=notes,
                      official_forms=(), ablation="Table 3") for name, shape, paper, notes in rows]


def _yolor(name: str, stem: tuple[tuple[int, int, int], ...], stages: tuple[CSP, ...],
           neck: tuple[int, ...], n: int, style: DarkStyle = PLAIN, **kw) -> Variant:
    """The YOLOR baselines of Table 5 (official ``cfg/baseline/yolor-csp.yaml`` / ``yolor-w6.yaml``):
    CSPDarknet backbone (3x3 stride-2 conv + CSP block per stage), SPPCSPC, a PAN neck of CSP-B
    blocks with ``n`` dark blocks and widths ``neck`` (P3 first), and 3x3 prediction convs of twice
    the neck width, each built before its level's down transition. ``style`` sets every dark block."""
    stages = tuple(replace(b, style=style) for b in stages)
    first = stages[0] if stages[0].kind == "dark" else None
    backbone = ((Stage(first),) if first else ()) + tuple(
        Stage(b, Transition("conv", b.out)) for b in stages[1 if first else 0:])
    top_down = tuple(Level(CSP("B", c, n, style), reduce=c) for c in neck[-2::-1])
    bottom_up = tuple(Level(CSP("B", c, n, style), down=Transition("conv", c)) for c in neck[1:])
    return Variant(name, stem, backbone, neck[-1], top_down, bottom_up, tuple(2 * c for c in neck),
                   pred_first=True, official_forms=(), ablation="Table 5", **kw)


def _table5() -> list[Variant]:
    """Table 5: planned RepResidual on the two YOLOR baselines; every row has all four dark-block
    styles (the paper reports all four on W6 and base/RepRCSP on CSP)."""
    csp = dict(stem=((32, 3, 1), (64, 3, 2)),
               stages=(CSP("dark", 64), CSP("C", 128, 2), CSP("C", 256, 8), CSP("C", 512, 8),
                       CSP("C", 1024, 4)),
               neck=(128, 256, 512), n=2, anchors=ANCHORS_P5)
    w6 = dict(stem=((64, 3, 1),),
              stages=(CSP("A", 128, 3), CSP("A", 256, 7), CSP("A", 512, 7), CSP("A", 768, 3),
                      CSP("A", 1024, 3)),
              neck=(128, 256, 384, 512), n=3, anchors=ANCHORS_P6, reorg=True, img_size=1280)
    styles = {"": PLAIN, "-repcsp": DarkStyle(rep=True), "-rcsp": DarkStyle(reversed=True),
              "-reprcsp": DarkStyle(reversed=True, rep=True)}
    rows = []
    for base, kw, paper in (("yolor-csp", csp, (52.9, 120.4)), ("yolor-w6", w6, (79.8, 453.2))):
        for suffix, style in styles.items():
            rows.append(_yolor(
                base + suffix, style=style, paper_params=None if suffix else paper[0],
                paper_gflops=None if suffix else paper[1],
                notes=f"{style.label} dark blocks" if suffix else
                f"Table 5 base ({base.upper()}, official cfg/baseline); the dark block is 1x1 then 3x3",
                **kw))
    return rows


def _with_elans(v: Variant, **changes) -> tuple[tuple[Stage, ...], tuple[Level, ...], tuple[Level, ...]]:
    """Every ELAN of ``v`` with ``changes`` applied."""
    def block(b: Block) -> Block:
        return replace(b, elan=replace(b.elan, **changes)) if isinstance(b, EELAN) else replace(b, **changes)

    return (tuple(replace(st, block=block(st.block)) for st in v.stages),
            tuple(replace(lv, block=block(lv.block)) for lv in v.top_down),
            tuple(replace(lv, block=block(lv.block)) for lv in v.bottom_up))


def _table4_and_8() -> list[Variant]:
    """Tables 4 and 8: changes of a released model."""
    rows = []
    # Table 4: planned RepConcatenation on a 3-stacked ELAN model. The base is YOLOv7 with every ELAN
    # made of 3 stacked convs, all concatenated; (a)-(e) replace Conv by RepConvN at the chain
    # positions below (our reading of Figure 6, whose drawing the text does not describe).
    base = RELEASED["yolov7"]
    placements = {"": (), "-a": (1,), "-b": (2,), "-c": (3,), "-d": (1, 3), "-e": (1, 2, 3)}
    for suffix, rep in placements.items():
        stages, top_down, bottom_up = _with_elans(base, depth=3, step=1, rep=rep)
        rows.append(replace(base, name=f"yolov7-elan3{suffix}", stages=stages, top_down=top_down,
                            bottom_up=bottom_up, official_forms=(), ablation="Table 4", paper_params=None,
                            paper_gflops=None, notes=f"3-stacked ELANs; RepConvN at chain positions {rep}"
                            if rep else "Table 4 base: YOLOv7 with 3-stacked ELANs (every conv concatenated)"))
    # Table 8: the E6E auxiliary head reading the E-ELAN before (partial, official) or after the merge
    e6e = RELEASED["yolov7-e6e"]
    rows.append(replace(e6e, name="yolov7-e6e-noaux", aux=(), official_forms=(), ablation="Table 8",
                        notes="Table 8 base: E6E trained without an auxiliary head"))
    rows.append(replace(e6e, name="yolov7-e6e-aux", aux_tap="full", official_forms=(), ablation="Table 8",
                        notes="Table 8 aux: the auxiliary head reads the merged E-ELAN output"))
    return rows


ABLATION_VARIANTS: dict[str, Variant] = {v.name: v for v in _table3() + _table4_and_8() + _table5()}
