"""The schema of a model: a :class:`Variant` row (stem, backbone stages, SPP, PAN neck levels,
prediction and aux widths, anchors; paper §5.1, Table 2) and the :class:`ModelConfig` a checkpoint
stores to rebuild it. It depends on the block configs only, so that the zoo, the ablation rows and
scaling all read it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .elan import Block
from .transitions import Transition

Form = Literal["training", "deploy"]
FORMS: tuple[Form, ...] = ("training", "deploy")


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


@dataclass(frozen=True)
class ModelConfig:
    """What a checkpoint needs to rebuild a model: variant name, form, number of classes (names)."""

    name: str
    form: Form = "training"
    nc: int = 80
    names: tuple[str, ...] | None = None
    width: float = 1.0  # reduced-scale models: width / depth multiples (:func:`~yolov7lib.models.scaling.multiply`)
    depth: float = 1.0
