"""The YOLOv7 model zoo: one table of variants and one builder (paper §5.1, Table 2).

Every network is ``stem -> backbone stages (transition + ELAN/E-ELAN) -> SPP -> PAN neck (top-down,
then bottom-up) -> prediction convs -> head``. A :class:`Variant` row gives the widths and depths;
:func:`build_model` turns a row into a :class:`~yolov7lib.models.graph.YOLOv7` whose layer order
(and hence state_dict keys) equals the official network's.

Forms: ``training`` has the YOLOR implicit head (``IDetect``) and, for the P6 models, the four
auxiliary prediction convs and ``IAuxDetect``; ``deploy`` has the plain ``Detect`` head only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from .blocks import ACTIVATIONS, SP, SPPCSPC, ReOrg, Upsample
from .csp import CSP, PLAIN, DarkStyle
from .elan import EELAN, ELAN, Block, build_block
from .graph import GraphBuilder, YOLOv7
from .heads import Detect, IAuxDetect, IDetect
from .repconv import RepConv
from .transitions import Transition, TransitionKind

Form = Literal["training", "deploy"]
FORMS: tuple[Form, ...] = ("training", "deploy")

ANCHORS_P5 = ((12, 16, 19, 36, 40, 28), (36, 75, 76, 55, 72, 146), (142, 110, 192, 243, 459, 401))
ANCHORS_TINY = ((10, 13, 16, 30, 33, 23), (30, 61, 62, 45, 59, 119), (116, 90, 156, 198, 373, 326))
ANCHORS_P6 = (
    (19, 27, 44, 40, 38, 94),
    (96, 68, 86, 152, 180, 137),
    (140, 301, 303, 264, 238, 542),
    (436, 615, 739, 380, 925, 792),
)


@dataclass(frozen=True)
class Stage:
    """A backbone stage: an optional stride-2 transition, then an ELAN (or E-ELAN)."""

    block: Block
    down: Transition | None = None


@dataclass(frozen=True)
class Level:
    """A neck level: ``reduce`` is the 1x1 width before upsampling (top-down) or the transition
    (bottom-up), then the level's ELAN."""

    block: Block
    reduce: int = 0
    down: Transition | None = None


@dataclass(frozen=True)
class Variant:
    """One row of the zoo. Stems are (channels, kernel, stride) convs after an optional ReOrg."""

    name: str
    stem: tuple[tuple[int, int, int], ...]
    stages: tuple[Stage, ...]
    spp: int  # SPP output channels
    top_down: tuple[Level, ...]  # coarse to fine
    bottom_up: tuple[Level, ...]  # fine to coarse
    pred: tuple[int, ...]  # lead prediction conv widths, P3 first
    anchors: tuple[tuple[int, ...], ...]
    act: str = "silu"
    reorg: bool = False
    tiny_spp: bool = False
    repconv: bool = False  # RepConv prediction convs (YOLOv7)
    aux: tuple[int, ...] = ()  # auxiliary-head conv widths (P6 training form), P3 first
    img_size: int = 640
    paper_params: float | None = None  # millions, paper Table 2
    paper_gflops: float | None = None
    official_forms: tuple[Form, ...] = FORMS  # forms the official repository ships a cfg for
    notes: str = ""
    ablation: str = ""  # the paper table an ablation-only variant belongs to ("" = released model)
    aux_tap: Literal["partial", "full"] = "partial"  # E-ELAN: aux head before / after the merge (Table 8)
    pred_first: bool = False  # YOLOR order: each level's prediction conv precedes its down transition

    @property
    def p6(self) -> bool:
        return len(self.anchors) == 4


def _e(width: int, depth: int, out: int, mid: int | None = None, step: int = 2) -> ELAN:
    return ELAN(width, depth, out, mid, step)


def _h(width: int, depth: int, out: int) -> ELAN:
    """Head ELAN: chain at half width, every conv concatenated."""
    return ELAN(width, depth, out, width // 2, 1)


def _t(width: int, out: int) -> ELAN:
    """Tiny ELAN: two 3x3 convs, every output concatenated."""
    return ELAN(width, 2, out, None, 1)


def _p6(name: str, stem: int, widths: tuple[int, ...], depth: int, down: TransitionKind,
        pred: tuple[int, ...], aux: tuple[int, ...], *, e_elan: bool = False, **kw) -> Variant:
    """W6 / E6 / D6 / E6E share one shape: 5 stages, 3 top-down and 3 bottom-up levels.

    ``widths`` are the five stage outputs; the neck level widths are ``pred / 2``; the ELAN stems
    are 64, 128, 256, 384, 512 (backbone) and 128, 256, 384, 512 (neck) in every P6 model.
    """
    wrap = EELAN if e_elan else (lambda b: b)
    stems = (64, 128, 256, 384, 512)
    neck = tuple(c // 2 for c in pred)  # P3..P6
    stages = tuple(Stage(wrap(_e(s, depth, w)), Transition(down, w)) for s, w in zip(stems, widths))
    top_down = tuple(
        Level(wrap(_h(stems[k], depth, neck[k - 1])), reduce=neck[k - 1]) for k in (3, 2, 1)
    )
    bottom_up = tuple(
        Level(wrap(_h(stems[k], depth, neck[k - 1])), down=Transition(down, neck[k - 1]))
        for k in (2, 3, 4)
    )
    return Variant(name, ((stem, 3, 1),), stages, neck[3], top_down, bottom_up, pred, ANCHORS_P6,
                   reorg=True, aux=aux, img_size=1280, **kw)


_MP = Transition("mp")
def _p5x(name: str, stem: int, block: int, depth: int, out: int, **kw) -> Variant:
    """YOLOv7-X's topology (backbone-style ELANs in backbone *and* neck, plain-conv predictions) with
    stem width ``stem`` (YOLOv7: 32), ELAN stems ``block`` (64), ELAN depth ``depth`` and transition
    unit ``out`` (the width of the first ELAN's output / 4: 64 for YOLOv7's scale). Table 3's rows."""
    b, o = block, out
    return Variant(
        name,
        stem=((stem, 3, 1), (2 * stem, 3, 2), (2 * stem, 3, 1), (4 * stem, 3, 2)),
        stages=(Stage(_e(b, depth, 4 * o)), Stage(_e(2 * b, depth, 8 * o), Transition("mpconv", 2 * o)),
                Stage(_e(4 * b, depth, 16 * o), Transition("mpconv", 4 * o)),
                Stage(_e(4 * b, depth, 16 * o), Transition("mpconv", 8 * o))),
        spp=8 * o,
        top_down=(Level(_e(4 * b, depth, 4 * o), reduce=4 * o), Level(_e(2 * b, depth, 2 * o), reduce=2 * o)),
        bottom_up=(Level(_e(4 * b, depth, 4 * o), down=Transition("mpconv", 2 * o)),
                   Level(_e(8 * b, depth, 8 * o), down=Transition("mpconv", 4 * o))),
        pred=(4 * o, 8 * o, 16 * o), anchors=ANCHORS_P5, official_forms=(), ablation="Table 3", **kw)


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


_AUX6 = (320, 640, 960, 1280)
_D6 = (384, 768, 1152, 1536)

_TINY = Variant(
    "yolov7-tiny",
    stem=((32, 3, 2), (64, 3, 2)),
    stages=(Stage(_t(32, 64)), Stage(_t(64, 128), _MP), Stage(_t(128, 256), _MP),
            Stage(_t(256, 512), _MP)),
    spp=256, tiny_spp=True,
    top_down=(Level(_t(64, 128), reduce=128), Level(_t(32, 64), reduce=64)),
    bottom_up=(Level(_t(64, 128), down=Transition("conv", 128)),
               Level(_t(128, 256), down=Transition("conv", 256))),
    pred=(128, 256, 512), anchors=ANCHORS_TINY, act="leaky",
    paper_params=6.2, paper_gflops=13.8,
    notes="LeakyReLU(0.1); Table 1 evaluates it at 416 and 320",
)

VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        _TINY,
        replace(_TINY, name="yolov7-tiny-silu", act="silu", official_forms=("deploy",),
                notes="YOLOv7-tiny with SiLU (Table 2); officially released as a deploy cfg only"),
        Variant(
            "yolov7",
            stem=((32, 3, 1), (64, 3, 2), (64, 3, 1), (128, 3, 2)),
            stages=(Stage(_e(64, 4, 256)), Stage(_e(128, 4, 512), Transition("mpconv", 128)),
                    Stage(_e(256, 4, 1024), Transition("mpconv", 256)),
                    Stage(_e(256, 4, 1024), Transition("mpconv", 512))),
            spp=512,
            top_down=(Level(_h(256, 4, 256), reduce=256), Level(_h(128, 4, 128), reduce=128)),
            bottom_up=(Level(_h(256, 4, 256), down=Transition("mpconv", 128)),
                       Level(_h(512, 4, 512), down=Transition("mpconv", 256))),
            pred=(256, 512, 1024), repconv=True, anchors=ANCHORS_P5,
            paper_params=36.9, paper_gflops=104.7,
        ),
        replace(_p5x("yolov7x", stem=40, block=64, depth=6, out=80), official_forms=FORMS, ablation="",
                paper_params=71.3, paper_gflops=189.9,
                notes="compound-scaled X-light (§3.3): ELAN depth 4 -> 6, widths outside the blocks x1.25"),
        _p5x("yolov7x-light", stem=32, block=64, depth=4, out=64, paper_params=47.0, paper_gflops=125.5,
             notes="Table 3 base, inferred: YOLOv7-X with the compound scaling undone (depth 6 -> 4, widths "
                   "outside the blocks / 1.25), i.e. YOLOv7 with X's full-width ELAN neck"),
        _p5x("yolov7x-light-w1.25", stem=40, block=80, depth=4, out=80, paper_params=73.4, paper_gflops=195.5,
             notes="Table 3 width only: every width of the base x1.25 (= scaling.multiply(base, width=1.25))"),
        _p5x("yolov7x-light-d2.0", stem=32, block=64, depth=8, out=64, paper_params=69.3, paper_gflops=187.6,
             notes="Table 3 depth only: 8 stacked convs per ELAN (= scaling.multiply(base, depth=2.0))"),
        _p6("yolov7-w6", 64, (128, 256, 512, 768, 1024), 4, "conv", (256, 512, 768, 1024), _AUX6,
            paper_params=70.4, paper_gflops=360.0),
        _p6("yolov7-e6", 80, (160, 320, 640, 960, 1280), 6, "downc", _AUX6, _AUX6,
            paper_params=97.2, paper_gflops=515.2),
        _p6("yolov7-d6", 96, (192, 384, 768, 1152, 1536), 8, "downc", _D6, _D6,
            paper_params=154.7, paper_gflops=806.8,
            notes="the paper's 154.7M counts the training model (aux head included)"),
        _p6("yolov7-e6e", 80, (160, 320, 640, 960, 1280), 6, "downc", _AUX6, _AUX6,
            e_elan=True, paper_params=151.7, paper_gflops=843.2,
            notes="E-ELAN as two summed ELANs; partial aux head taps the second ELAN (Table 8 'partial aux')"),
    )
}


def _with_elans(v: Variant, **changes) -> tuple[tuple[Stage, ...], tuple[Level, ...], tuple[Level, ...]]:
    """Every ELAN of ``v`` with ``changes`` applied."""
    def block(b: Block) -> Block:
        return replace(b, elan=replace(b.elan, **changes)) if isinstance(b, EELAN) else replace(b, **changes)

    return (tuple(replace(st, block=block(st.block)) for st in v.stages),
            tuple(replace(lv, block=block(lv.block)) for lv in v.top_down),
            tuple(replace(lv, block=block(lv.block)) for lv in v.bottom_up))


def _ablations() -> list[Variant]:
    """Tables 4 and 8 as rows of the same table."""
    rows = []
    # Table 4: planned RepConcatenation on a 3-stacked ELAN model. The base is YOLOv7 with every ELAN
    # made of 3 stacked convs, all concatenated; (a)-(e) replace Conv by RepConvN at the chain
    # positions below (our reading of Figure 6, whose drawing the text does not describe).
    base = VARIANTS["yolov7"]
    placements = {"": (), "-a": (1,), "-b": (2,), "-c": (3,), "-d": (1, 3), "-e": (1, 2, 3)}
    for suffix, rep in placements.items():
        stages, top_down, bottom_up = _with_elans(base, depth=3, step=1, rep=rep)
        rows.append(replace(base, name=f"yolov7-elan3{suffix}", stages=stages, top_down=top_down,
                            bottom_up=bottom_up, official_forms=(), ablation="Table 4", paper_params=None,
                            paper_gflops=None, notes=f"3-stacked ELANs; RepConvN at chain positions {rep}"
                            if rep else "Table 4 base: YOLOv7 with 3-stacked ELANs (every conv concatenated)"))
    # Table 8: the E6E auxiliary head reading the E-ELAN before (partial, official) or after the merge
    e6e = VARIANTS["yolov7-e6e"]
    rows.append(replace(e6e, name="yolov7-e6e-noaux", aux=(), official_forms=(), ablation="Table 8",
                        notes="Table 8 base: E6E trained without an auxiliary head"))
    rows.append(replace(e6e, name="yolov7-e6e-aux", aux_tap="full", official_forms=(), ablation="Table 8",
                        notes="Table 8 aux: the auxiliary head reads the merged E-ELAN output"))
    return rows


VARIANTS.update((v.name, v) for v in _ablations() + _table5())


@dataclass(frozen=True)
class ModelConfig:
    """What a checkpoint needs to rebuild a model: variant name, form, number of classes (names)."""

    name: str
    form: Form = "training"
    nc: int = 80
    names: tuple[str, ...] | None = None
    width: float = 1.0  # reduced-scale models: width / depth multiples (yolov7lib.scaling.multiply)
    depth: float = 1.0


def _tiny_spp(g: GraphBuilder, src: int, c: int) -> int:
    """SPP-CSP of YOLOv7-tiny: two 1x1 branches; max-pools 5/9/13 on the second; two merges."""
    a = g.conv(src, c, 1)
    b = g.conv(src, c, 1)
    pools = [g.add(SP(k), b, c) for k in (5, 9, 13)]
    merged = g.conv(g.concat([*pools[::-1], b]), c, 1)
    return g.conv(g.concat([merged, a]), c, 1)


def build_model(name: str, form: Form = "training", nc: int = 80, width: float = 1.0,
                depth: float = 1.0) -> YOLOv7:
    """Build a YOLOv7 model by name (see :data:`VARIANTS`) in ``training`` or ``deploy`` form.

    The returned module's state_dict keys and shapes equal the official model's for the same cfg.
    ``width`` / ``depth`` multiples give reduced-scale models (:func:`yolov7lib.scaling.multiply`).
    """
    if name not in VARIANTS:
        raise KeyError(f"unknown model {name!r}; choose from {', '.join(VARIANTS)}")
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    if not isinstance(nc, int) or nc < 1:
        raise ValueError(f"nc must be a positive integer, got {nc!r}")
    v = VARIANTS[name]
    if (width, depth) != (1.0, 1.0):
        from ..scaling import multiply

        v = multiply(v, width, depth)
    g = GraphBuilder(act=ACTIVATIONS[v.act])
    x = g.add(ReOrg(), -1, 12, down=2) if v.reorg else -1
    for c, k, s in v.stem:
        x = g.conv(x, c, k, s)
    stage_outs = []
    for stage in v.stages:
        if stage.down is not None:
            x = stage.down.build(g, x)
        x, _ = build_block(g, stage.block, x)
        stage_outs.append(x)
    if v.tiny_spp:
        x = _tiny_spp(g, x, v.spp)
    else:
        x = g.add(SPPCSPC(g.ch(x), v.spp, act=g.act), x, v.spp)
    # PAN neck: top-down with laterals from the backbone stages below the last one
    levels, taps = [x], [x]
    for level, lateral in zip(v.top_down, stage_outs[-2::-1]):
        up = g.add(Upsample(), g.conv(x, level.reduce, 1), level.reduce, down=0.5)
        x = g.concat([g.conv(lateral, level.reduce, 1), up])
        x, tap = build_block(g, level.block, x)
        tap = x if v.aux_tap == "full" else tap
        levels.append(x)
        taps.append(tap)
    def predict(src: int, c: int) -> int:  # a prediction conv (RepConv in YOLOv7)
        return g.add(RepConv(g.ch(src), c, act=g.act), src, c) if v.repconv else g.conv(src, c, 3)

    outs, pred = [x], []
    for level, skip, c in zip(v.bottom_up, levels[-2::-1], v.pred):
        if v.pred_first:
            pred.append(predict(x, c))
        x = level.down.build(g, x, skip)
        x, _ = build_block(g, level.block, x)
        outs.append(x)
    # the remaining prediction convs, then the aux convs (training P6), then the head
    pred += [predict(src, c) for src, c in list(zip(outs, v.pred))[len(pred):]]
    heads_in = list(pred)
    head_cls: type[Detect] = Detect
    if form == "training":
        head_cls = IDetect
        if v.p6 and v.aux:
            heads_in += [g.conv(src, c, 3) for src, c in zip(taps[::-1], v.aux)]
            head_cls = IAuxDetect
    strides = [g.stride(i) for i in pred]
    head = head_cls(nc, v.anchors, [g.ch(i) for i in heads_in], strides)
    g.add(head, heads_in, 0)
    return YOLOv7(g, ModelConfig(name, form, nc, width=width, depth=depth))
