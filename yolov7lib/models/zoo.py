"""The released YOLOv7 models, one :class:`~yolov7lib.models.variant.Variant` row each (paper §5.1,
Table 2): ``yolov7-tiny`` (and its SiLU form), ``yolov7``, ``yolov7x``, ``yolov7-w6``, ``yolov7-e6``,
``yolov7-d6``, ``yolov7-e6e``. The rows of the ablations live in :mod:`~yolov7lib.models.ablations`;
:func:`~yolov7lib.models.build.build_model` builds any of them.

Every network is ``stem -> backbone stages (transition + ELAN/E-ELAN) -> SPP -> PAN neck (top-down,
then bottom-up) -> prediction convs -> head``.
"""

from __future__ import annotations

from dataclasses import replace

from .elan import EELAN, ELAN, head_elan, tiny_elan
from .transitions import Transition, TransitionKind
from .variant import Level, Stage, Variant

ANCHORS_P5 = ((12, 16, 19, 36, 40, 28), (36, 75, 76, 55, 72, 146), (142, 110, 192, 243, 459, 401))
ANCHORS_TINY = ((10, 13, 16, 30, 33, 23), (30, 61, 62, 45, 59, 119), (116, 90, 156, 198, 373, 326))
ANCHORS_P6 = (
    (19, 27, 44, 40, 38, 94),
    (96, 68, 86, 152, 180, 137),
    (140, 301, 303, 264, 238, 542),
    (436, 615, 739, 380, 925, 792),
)


def p6_variant(name: str, stem: int, widths: tuple[int, ...], depth: int, down: TransitionKind,
        pred: tuple[int, ...], aux: tuple[int, ...], *, e_elan: bool = False, **kw) -> Variant:
    """W6 / E6 / D6 / E6E share one shape: 5 stages, 3 top-down and 3 bottom-up levels.

    ``widths`` are the five stage outputs; the neck level widths are ``pred / 2``; the ELAN stems
    are 64, 128, 256, 384, 512 (backbone) and 128, 256, 384, 512 (neck) in every P6 model.
    """
    wrap = EELAN if e_elan else (lambda b: b)
    stems = (64, 128, 256, 384, 512)
    neck = tuple(c // 2 for c in pred)  # P3..P6
    stages = tuple(Stage(wrap(ELAN(s, depth, w)), Transition(down, w)) for s, w in zip(stems, widths))
    top_down = tuple(
        Level(wrap(head_elan(stems[k], depth, neck[k - 1])), reduce=neck[k - 1]) for k in (3, 2, 1)
    )
    bottom_up = tuple(
        Level(wrap(head_elan(stems[k], depth, neck[k - 1])), down=Transition(down, neck[k - 1]))
        for k in (2, 3, 4)
    )
    return Variant(name, ((stem, 3, 1),), stages, neck[3], top_down, bottom_up, pred, ANCHORS_P6,
                   reorg=True, aux=aux, img_size=1280, **kw)


_MP = Transition("mp")


def x_variant(name: str, stem: int, block: int, depth: int, out: int, **kw) -> Variant:
    """YOLOv7-X's topology (backbone-style ELANs in backbone *and* neck, plain-conv predictions) with
    stem width ``stem`` (YOLOv7: 32), ELAN stems ``block`` (64), ELAN depth ``depth`` and transition
    unit ``out`` (the width of the first ELAN's output / 4: 64 for YOLOv7's scale); Table 3's rows too."""
    b, o = block, out
    return Variant(
        name,
        stem=((stem, 3, 1), (2 * stem, 3, 2), (2 * stem, 3, 1), (4 * stem, 3, 2)),
        stages=(Stage(ELAN(b, depth, 4 * o)), Stage(ELAN(2 * b, depth, 8 * o), Transition("mpconv", 2 * o)),
                Stage(ELAN(4 * b, depth, 16 * o), Transition("mpconv", 4 * o)),
                Stage(ELAN(4 * b, depth, 16 * o), Transition("mpconv", 8 * o))),
        spp=8 * o,
        top_down=(Level(ELAN(4 * b, depth, 4 * o), reduce=4 * o), Level(ELAN(2 * b, depth, 2 * o), reduce=2 * o)),
        bottom_up=(Level(ELAN(4 * b, depth, 4 * o), down=Transition("mpconv", 2 * o)),
                   Level(ELAN(8 * b, depth, 8 * o), down=Transition("mpconv", 4 * o))),
        pred=(4 * o, 8 * o, 16 * o), anchors=ANCHORS_P5, **kw)


_AUX6 = (320, 640, 960, 1280)
_D6 = (384, 768, 1152, 1536)

_TINY = Variant(
    "yolov7-tiny",
    stem=((32, 3, 2), (64, 3, 2)),
    stages=(Stage(tiny_elan(32, 64)), Stage(tiny_elan(64, 128), _MP), Stage(tiny_elan(128, 256), _MP),
            Stage(tiny_elan(256, 512), _MP)),
    spp=256, tiny_spp=True,
    top_down=(Level(tiny_elan(64, 128), reduce=128), Level(tiny_elan(32, 64), reduce=64)),
    bottom_up=(Level(tiny_elan(64, 128), down=Transition("conv", 128)),
               Level(tiny_elan(128, 256), down=Transition("conv", 256))),
    pred=(128, 256, 512), anchors=ANCHORS_TINY, act="leaky",
    paper_params=6.2, paper_gflops=13.8,
    notes="LeakyReLU(0.1); Table 1 evaluates it at 416 and 320",
)

RELEASED: dict[str, Variant] = {
    v.name: v
    for v in (
        _TINY,
        replace(_TINY, name="yolov7-tiny-silu", act="silu", official_forms=("deploy",),
                notes="YOLOv7-tiny with SiLU (Table 2); officially released as a deploy cfg only"),
        Variant(
            "yolov7",
            stem=((32, 3, 1), (64, 3, 2), (64, 3, 1), (128, 3, 2)),
            stages=(Stage(ELAN(64, 4, 256)), Stage(ELAN(128, 4, 512), Transition("mpconv", 128)),
                    Stage(ELAN(256, 4, 1024), Transition("mpconv", 256)),
                    Stage(ELAN(256, 4, 1024), Transition("mpconv", 512))),
            spp=512,
            top_down=(Level(head_elan(256, 4, 256), reduce=256), Level(head_elan(128, 4, 128), reduce=128)),
            bottom_up=(Level(head_elan(256, 4, 256), down=Transition("mpconv", 128)),
                       Level(head_elan(512, 4, 512), down=Transition("mpconv", 256))),
            pred=(256, 512, 1024), repconv=True, anchors=ANCHORS_P5,
            paper_params=36.9, paper_gflops=104.7,
        ),
        x_variant("yolov7x", stem=40, block=64, depth=6, out=80, paper_params=71.3, paper_gflops=189.9,
                  notes="compound-scaled X-light (§3.3): ELAN depth 4 -> 6, widths outside the blocks x1.25"),
        p6_variant("yolov7-w6", 64, (128, 256, 512, 768, 1024), 4, "conv", (256, 512, 768, 1024), _AUX6,
                   paper_params=70.4, paper_gflops=360.0),
        p6_variant("yolov7-e6", 80, (160, 320, 640, 960, 1280), 6, "downc", _AUX6, _AUX6,
                   paper_params=97.2, paper_gflops=515.2),
        p6_variant("yolov7-d6", 96, (192, 384, 768, 1152, 1536), 8, "downc", _D6, _D6,
                   paper_params=154.7, paper_gflops=806.8,
                   notes="the paper's 154.7M counts the training model (aux head included)"),
        p6_variant("yolov7-e6e", 80, (160, 320, 640, 960, 1280), 6, "downc", _AUX6, _AUX6,
                   e_elan=True, paper_params=151.7, paper_gflops=843.2,
                   notes="E-ELAN as two summed ELANs; partial aux head taps the second ELAN (Table 8 'partial aux')"),
    )
}
