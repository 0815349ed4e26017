"""The paper pipeline behind ``dvc repro``: profiles, ablation runs, and tables beside the paper.

* :func:`profile` reads ``params.yaml``: ``profile`` names one of ``profiles`` (``smoke``, ``cpu``,
  ``gpu``, ``paper``), whose ``data`` / ``train`` / ``seeds`` settings every notebook uses.
* :class:`TableRun` trains every arm of an ablation table under identical settings for each paired
  seed (one MLflow parent run per table, a nested run per arm and seed); a finished run is reused, so
  an interrupted stage resumes where it stopped. It writes the table that
  :func:`yolov7lib.ablation.summarize` builds from the runs' own outputs, headed by what was run.

The paper's tables ship with the package (``yolov7lib/paper/tableN.csv``; values in %).
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .train import TrainConfig


def repo_root(start: str | os.PathLike | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) holding ``params.yaml`` (notebooks run
    from ``notebooks/`` in JupyterLab and from the repository root under DVC)."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "params.yaml").exists():
            return folder
    raise FileNotFoundError(f"no params.yaml at or above {here}")


def load_params(path: str | os.PathLike = "params.yaml") -> dict:
    with open(path) as f:
        return yaml.safe_load(f) or {}


def profile(name: str | None = None, path: str | os.PathLike = "params.yaml") -> dict:
    """The settings of profile ``name`` (default: the file's ``profile``), with ``name`` added."""
    params = load_params(path)
    name = name or params.get("profile", "cpu")
    profiles = params.get("profiles", {})
    if name not in profiles:
        raise KeyError(f"profile {name!r} is not in {path}; choose from {', '.join(profiles)}")
    return {"name": name, **profiles[name]}


def data_yaml(prof: dict) -> str:
    """The profile's data YAML: its own (``data.yaml``: COCO) or the generated synthetic dataset."""
    return prof.get("data", {}).get("yaml", "data/synthetic/data.yaml")


def paper_table(number: int | str) -> list[dict[str, str]]:
    """Rows of the paper's table ``number`` (``yolov7lib/paper/tableN.csv``)."""
    text = resources.files("yolov7lib.paper").joinpath(f"table{number}.csv").read_text()
    return list(csv.DictReader(text.splitlines()))


@dataclass
class Arm:
    """One row of an ablation table: the paper's row label, a model and training-config changes."""

    label: str
    model: str
    changes: dict[str, Any] = field(default_factory=dict)


def train_config(prof: dict, arm: Arm, seed: int, project: Path, data: str) -> TrainConfig:
    """The profile's training settings for ``arm`` and ``seed`` (``train`` keys are TrainConfig fields)."""
    known = {f.name for f in fields(TrainConfig)}
    settings = {k: v for k, v in prof.get("train", {}).items() if k in known}
    changes = dict(arm.changes)
    overrides = {**(settings.pop("overrides", None) or {}), **(changes.pop("overrides", None) or {})}
    name = f"{arm.label}/seed{seed}".replace(" ", "_")
    return TrainConfig(**{**settings, **changes, "model": arm.model, "seed": seed, "data": data,
                          "project": str(project), "name": name, "tracking": False, "progress": False,
                          "overrides": overrides})


def finished_metrics(cfg: TrainConfig) -> dict[str, float] | None:
    """The final metrics of a run that already completed (same settings), else None."""
    from .checkpoint import CheckpointError, load_checkpoint

    last = cfg.save_dir / "weights" / "last.pt"
    try:
        ckpt = load_checkpoint(last)
    except (CheckpointError, FileNotFoundError, OSError):
        return None
    # settings added since the run was saved count as their defaults, which is what the run used
    stored = {**asdict(TrainConfig()), **(ckpt.get("train_config") or {})}
    done = ckpt.get("epoch") == cfg.epochs - 1 and stored == {**cfg.__dict__}
    return ckpt.get("metrics") if done else None


def _metric_name(verdict: str) -> str:
    """A verdict as an MLflow metric name ("paper's direction, significant" -> paper_direction_significant)."""
    return re.sub(r"[^0-9a-z]+", "_", verdict.replace("'s", "")).strip("_")


def describe(prof: dict) -> str:
    """What every arm of a table ran under ``prof`` (the table's header line)."""
    t, d = prof.get("train", {}), prof.get("data", {})
    images = f"{d['train']} synthetic images" if "train" in d else d.get("yaml", "the profile's data")
    return (f"Run ({prof['name']} profile): every arm at width × {t.get('width', 1.0)} and depth × "
            f"{t.get('depth', 1.0)} of its model, {t.get('img_size', 640)} px, {t.get('epochs')} epoch(s) of "
            f"{images}, batch {t.get('batch_size')}, hyp {t.get('hyp', 'p5')}; {len(prof.get('seeds', [0]))} "
            "paired seeds.")


class TableRun:
    """One ablation table under a profile: :meth:`run` trains every arm for every seed (a finished run
    is reused, so an interrupted stage resumes where it stopped), :meth:`write` writes the table.

    With tracking, one MLflow parent run holds a nested run per arm and seed (the training's own, or
    one with the final metrics of a reused run) and the table's CSV, markdown and figure::

        with pipeline.TableRun("Table 6", prof, "runs/pipeline/cpu/table6") as table:
            rows = table.run(arms)
            table.write(ablation.summarize(rows, pipeline.paper_table(6), labels), "results/06/table6", title)
    """

    def __init__(self, table: str, prof: dict, out: str | os.PathLike, data: str | None = None,
                 tracking: bool = True) -> None:
        self.table, self.prof, self.out = table, prof, Path(out)
        self.data = data or data_yaml(prof)
        self.experiment = f"yolov7lib-{table.replace(' ', '').lower()}"
        self.tracking, self.parent = tracking, None

    def __enter__(self) -> TableRun:
        if self.tracking:
            from .tracking import Tracker

            self.parent = Tracker(self.experiment, f"{self.table} ({self.prof['name']})",
                                  tags={"profile": self.prof["name"], "table": self.table})
            self.parent.log_params({"profile": self.prof})
        return self

    def __exit__(self, kind, error, trace) -> None:
        if self.parent:
            self.parent.end("FAILED" if kind else "FINISHED")

    def run(self, arms: Sequence[Arm]) -> list[dict[str, Any]]:
        """One row of final metrics per arm and seed (``label``, ``model``, ``seed``, metrics in [0, 1])."""
        from .train import train

        rows = []
        for arm in arms:
            for seed in self.prof.get("seeds", [0]):
                cfg = train_config(self.prof, arm, seed, self.out / "runs", self.data)
                metrics = finished_metrics(cfg)
                tracked = self.parent is not None and self.parent.active
                if metrics is None:
                    hooks = []
                    if tracked:
                        from .tracking import MLflowHook

                        hooks.append(MLflowHook(self.experiment, cfg.name, nested=True))
                    metrics = train(cfg, hooks=hooks)
                elif tracked:
                    self._log_reused(cfg, arm, seed, metrics)
                rows.append({"label": arm.label, "model": arm.model, "seed": seed,
                             **{k.removeprefix("val/"): v for k, v in metrics.items() if k.startswith("val/")}})
        return rows

    def _log_reused(self, cfg: TrainConfig, arm: Arm, seed: int, metrics: dict[str, float]) -> None:
        from .tracking import Tracker

        run = Tracker(self.experiment, cfg.name, nested=True, tags={"model": arm.model, "reused": "true"})
        run.log_params({"label": arm.label, "seed": seed, "train": cfg})
        run.log_metrics(metrics)
        run.end()

    def write(self, summary, stem: str | os.PathLike, title: str, metrics: Sequence[str] = ("AP", "AP50", "AP75"),
              extra: Sequence[str] = ()) -> None:
        """The table's files (:func:`yolov7lib.ablation.write_table`), headed by what was run; logged
        to the parent run with the number of rows per verdict."""
        from .ablation import verdict_counts, write_table

        paths = write_table(summary, stem, title, describe(self.prof), metrics, extra)
        if self.parent:
            for path in paths:
                self.parent.log_artifact(path, "table")
            self.parent.log_metrics({f"verdicts/{_metric_name(k)}": n for k, n in verdict_counts(summary).items()})


def load_trained(cfg: TrainConfig):
    """The EMA model of a finished run (its ``last.pt``)."""
    from .checkpoint import load_model

    return load_model(cfg.save_dir / "weights" / "last.pt")


PRECISION_NMS = [(half, iou) for half in (True, False) for iou in (0.65, 0.70)]  # Table 10's cells


def table10_rows(model, dataset, names: Sequence[str], gpu_csv: str | os.PathLike | None = None) -> list[dict]:
    """Table 10's cells for ``model`` on ``dataset``: AP (%) at NMS IoU 0.65 and 0.70, FP16 and FP32,
    evaluated on the model's device. FP16 needs CUDA: on the CPU those cells come from ``gpu_csv``
    (``results/gpu/table10.csv``, written by ``make gpu-check``) when it was measured on the same
    weights (:func:`~yolov7lib.checkpoint.fingerprint`), else they say they need a GPU."""
    import torch

    from .checkpoint import fingerprint
    from .evaluate import evaluate

    device = next(model.parameters()).device
    weights = fingerprint(model)
    measured = {}
    if gpu_csv is not None and Path(gpu_csv).exists():
        with open(gpu_csv) as f:
            measured = {(r["precision"], float(r["iou"])): r for r in csv.DictReader(f) if r["weights"] == weights}
    rows = []
    for half, iou in PRECISION_NMS:
        precision = "FP16" if half else "FP32"
        if half and device.type != "cuda":
            gpu = measured.get((precision, iou))
            ap, status = (float(gpu["AP"]), gpu["status"]) if gpu else (math.nan, "needs GPU")
        else:
            ap = 100 * evaluate(model, dataset, names, iou_thres=iou, half=half, progress=False).metrics["AP"]
            name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
            status = f"reduced-scale, {name}"
        rows.append({"precision": precision, "iou": iou, "AP": ap, "status": status, "weights": weights})
    return rows


def write_table10(rows: list[dict], paper: list[dict[str, str]], stem: str | os.PathLike) -> None:
    """Table 10: AP per (precision, NMS IoU), ours beside the paper's YOLOv7-X figures."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    theirs = {(p["precision"], float(p["nms_iou_threshold"])): float(p["ap_val"]) for p in paper
              if p["row_type"] == "model"}
    lines = ["### Table 10: FP16 / FP32 and NMS IoU", "", "| precision | NMS IoU | AP ours | AP paper (YOLOv7-X) "
             "| status |", "|---|---:|---:|---:|---|"]
    for r in rows:
        r["AP_paper"] = theirs.get((r["precision"], float(r["iou"])), math.nan)
        ap = "–" if math.isnan(r["AP"]) else f"{r['AP']:.1f}"
        lines.append(f"| {r['precision']} | {r['iou']:.2f} | {ap} | {r['AP_paper']:.1f} | {r['status']} |")
    with open(stem.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    """``python -m yolov7lib.pipeline data``: generate the profile's dataset (the ``data`` stage)."""
    import argparse

    from .data.synthetic import generate

    parser = argparse.ArgumentParser(prog="python -m yolov7lib.pipeline")
    parser.add_argument("command", choices=("data",))
    parser.add_argument("--profile", default=None)
    parser.add_argument("--out", default="data/synthetic")
    args = parser.parse_args(argv)
    prof = profile(args.profile)
    data = prof.get("data", {})
    if "yaml" in data:  # a dataset the user brings (COCO): nothing to generate
        print(f"profile {prof['name']}: using {data['yaml']}")
        return 0
    data_yaml = generate(args.out, train=data["train"], val=data["val"], size=data["size"], seed=data.get("seed", 0))
    # write the label caches now, so that later readers find them and the stage's output stays unchanged
    from .data.check import load_split
    from .data.formats import DataConfig

    config = DataConfig.load(data_yaml)
    for split in (config.train, config.val):
        load_split(split, config.nc, warn=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
