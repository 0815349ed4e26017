"""Hooks: what a training run calls at its start, after each epoch and at its end (MLflow tracking,
:class:`yolov7lib.tracking.MLflowHook`, is one). A hook reads the trainer; it never changes the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol


class TrainingRun(Protocol):
    """What a hook may read of the trainer (:class:`yolov7lib.train.Trainer`)."""

    cfg: Any  # TrainConfig
    hyp: Any  # Hyp
    epoch: int
    save_dir: Path


class Hook:
    """Callbacks of a training run; subclass and override what you need."""

    def on_train_start(self, trainer: TrainingRun) -> None: ...

    def on_epoch_end(self, trainer: TrainingRun, metrics: dict[str, float]) -> None: ...

    def on_train_end(self, trainer: TrainingRun) -> None: ...
