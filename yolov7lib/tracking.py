"""MLflow tracking of training and evaluation runs.

Each run logs its full config (flattened parameters), per-epoch metrics, tags (git commit, torch,
device, GPU) and artifacts (best checkpoint, figures, result CSV). The default backend is SQLite in
the working directory (``mlflow.db``, artifacts in ``mlartifacts/``), as ``mlflow ui --backend-store-uri
sqlite:///mlflow.db`` expects; ``MLFLOW_TRACKING_URI`` overrides it. A tracking failure never stops
the work: it is reported once as a warning and tracking is switched off for the run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .hooks import Hook, TrainingRun
from .runtime import environment


def default_uri(root: str | os.PathLike = ".") -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(root).resolve() / 'mlflow.db'}"


def check_reachable(uri: str, timeout: float = 2.0) -> None:
    """Raise ``ConnectionError`` at once when an ``http(s)://`` tracking server does not answer, instead
    of MLflow's minutes of retries; other stores (SQLite, files) are local."""
    url = urlsplit(uri)
    if url.scheme not in ("http", "https"):
        return
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as err:
        raise ConnectionError(f"no MLflow server answers at {uri} ({err})") from None


def environment_tags() -> dict[str, str]:
    """The run's environment (:func:`yolov7lib.runtime.environment`) and the git commit."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return {"gpu": "none", **environment(), "git_commit": commit}


def flatten(config: Mapping[str, Any] | Any, prefix: str = "") -> dict[str, str]:
    """Nested config (dicts, dataclasses) as ``a.b = value`` strings."""
    if is_dataclass(config) and not isinstance(config, type):
        config = asdict(config)
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) or (is_dataclass(value) and not isinstance(value, type)):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = str(value)[:500]
    return out


class Tracker:
    """A thin, failure-tolerant wrapper of an MLflow run."""

    def __init__(self, experiment: str = "yolov7lib", run_name: str | None = None, uri: str | None = None,
                 nested: bool = False, tags: Mapping[str, str] | None = None) -> None:
        self.active = True
        self.run_id: str | None = None
        self._mlflow = None
        self._call(self._start, experiment, run_name, uri or default_uri(), nested, dict(tags or {}))

    def _start(self, experiment, run_name, uri, nested, tags) -> None:
        check_reachable(uri)
        import mlflow

        self._mlflow = mlflow
        mlflow.set_tracking_uri(uri)
        if mlflow.get_experiment_by_name(experiment) is None:
            location = None
            if uri.startswith("sqlite:"):
                location = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
            mlflow.create_experiment(experiment, artifact_location=location)
        mlflow.set_experiment(experiment)
        run = mlflow.start_run(run_name=run_name, nested=nested, tags={**environment_tags(), **tags})
        self.run_id = run.info.run_id

    def _call(self, fn, *args, **kwargs) -> None:
        if not self.active:
            return
        try:
            fn(*args, **kwargs)
        except Exception as err:  # tracking must never stop training
            self.active = False
            warnings.warn(f"MLflow tracking failed and is off for this run: {type(err).__name__}: {err}",
                          RuntimeWarning, stacklevel=3)

    def log_params(self, config: Mapping[str, Any] | Any) -> None:
        self._call(lambda: self._mlflow.log_params(flatten(config)))

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        clean = {k.replace("/", "_"): float(v) for k, v in metrics.items()}
        self._call(lambda: self._mlflow.log_metrics(clean, step=step))

    def log_artifact(self, path: str | os.PathLike, folder: str | None = None) -> None:
        if Path(path).exists():
            self._call(lambda: self._mlflow.log_artifact(str(path), folder))

    def end(self, status: str = "FINISHED") -> None:
        self._call(lambda: self._mlflow.end_run(status))
        self.active = False


@contextmanager
def tracked(experiment: str = "yolov7lib", run_name: str | None = None, **kwargs) -> Iterator[Tracker]:
    """``with tracked("table6", "coarse_to_fine seed 0") as run: ...``; a failure ends the run FAILED."""
    run = Tracker(experiment, run_name, **kwargs)
    try:
        yield run
    except BaseException:
        run.end("FAILED")
        raise
    run.end()


class MLflowHook(Hook):
    """Logs a training run: config and hyp, per-epoch metrics, then the best checkpoint, the figures
    of the last evaluation, the results CSV and its curves."""

    def __init__(self, experiment: str = "yolov7lib", run_name: str | None = None, **kwargs) -> None:
        self.experiment, self.run_name, self.kwargs = experiment, run_name, kwargs
        self.run: Tracker | None = None

    def on_train_start(self, trainer: TrainingRun) -> None:
        self.run = Tracker(self.experiment, self.run_name, tags={"model": trainer.cfg.model}, **self.kwargs)
        self.run.log_params({"train": trainer.cfg, "hyp": trainer.hyp})

    def on_epoch_end(self, trainer: TrainingRun, metrics: dict[str, float]) -> None:
        if self.run:
            self.run.log_metrics(metrics, step=trainer.epoch)

    def on_train_end(self, trainer: TrainingRun) -> None:
        if not self.run:
            return
        out = trainer.save_dir
        result = getattr(trainer, "last_eval", None)
        if result is not None:
            result.save(out / "eval")
            for name in ("pr_curve.png", "confusion_matrix.png", "metrics.json", "per_class.csv"):
                self.run.log_artifact(out / "eval" / name, "eval")
        self.run.log_artifact(out / "results.csv")
        self.run.log_artifact(out / "results.png")
        self.run.log_artifact(out / "weights" / "best.pt", "weights")
        self.run.end()


def tracking_hooks(cfg: Any) -> list[Hook]:
    """The MLflow hook for a run whose config asks for tracking (``cfg.tracking``; rank 0 only under
    torchrun), else none."""
    if not cfg.tracking or int(os.environ.get("RANK", 0)) != 0:
        return []
    return [MLflowHook(cfg.experiment, cfg.name)]
