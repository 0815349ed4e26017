"""The paper pipeline behind ``dvc repro``: profiles, ablation runs, and tables beside the paper.

* :func:`profile` reads ``params.yaml``: ``profile`` names one of ``profiles`` (``smoke``, ``cpu``,
  ``gpu``, ``paper``), whose ``data`` / ``train`` / ``seeds`` settings every notebook uses.
* :func:`run_ablation` trains every arm of an ablation table under identical settings for each seed
  (one MLflow parent run per table, a nested run per arm and seed); a finished run is reused, so an
  interrupted stage resumes where it stopped.
* :func:`summarize` and :func:`write_table` build ``results/tables/tableN.{csv,md}`` from the runs'
  own outputs: ours (mean ± std), the paper's value, the difference, a status per cell, and whether
  the sign of each improvement over the base (the paper's ordering) is reproduced.

The paper's tables ship with the package (``yolov7lib/paper/tableN.csv``; values in %).
"""

from __future__ import annotations

import csv
import json
import math
import os
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .train import TrainConfig

METRIC_COLUMNS = {"AP": "ap_val", "AP50": "ap50_val", "AP75": "ap75_val", "APs": "aps_val", "APm": "apm_val",
                  "APl": "apl_val"}


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


def run_ablation(table: str, arms: Sequence[Arm], prof: dict, out: str | os.PathLike,
                 data: str = "data/synthetic/data.yaml", tracking: bool = True) -> list[dict[str, Any]]:
    """Train every arm for every seed of the profile; return one row of final metrics per run."""
    from .train import train

    out = Path(out)
    seeds = prof.get("seeds", [0])
    rows = []
    parent, experiment = None, f"yolov7lib-{table.replace(' ', '').lower()}"
    if tracking:
        from .tracking import MLflowHook, Tracker

        parent = Tracker(experiment, f"{table} ({prof['name']})", tags={"profile": prof["name"], "table": table})
        parent.log_params({"profile": prof})
    try:
        for arm in arms:
            for seed in seeds:
                cfg = train_config(prof, arm, seed, out / "runs", data)
                metrics = finished_metrics(cfg)
                if metrics is None:
                    hooks = [MLflowHook(experiment, cfg.name, nested=True)] if parent and parent.active else []
                    metrics = train(cfg, hooks=hooks)
                rows.append({"label": arm.label, "model": arm.model, "seed": seed,
                             **{k.removeprefix("val/"): v for k, v in metrics.items() if k.startswith("val/")}})
    except BaseException:
        if parent:
            parent.end("FAILED")
        raise
    if parent:
        parent.end()
    return rows


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize(rows: list[dict[str, Any]], paper: list[dict[str, str]], labels: dict[str, str],
              metrics: Sequence[str] = ("AP", "AP50", "AP75"), status: str = "reduced-scale") -> list[dict]:
    """One row per arm: ours (mean ± std over seeds, in %), the paper's value, the difference, the
    cell status, and whether the sign of the change from the first arm (the base) matches the paper's.

    ``labels`` maps our arm labels to the paper's row names.
    """
    by_label: dict[str, list[dict]] = {}
    for r in rows:
        by_label.setdefault(r["label"], []).append(r)
    paper_rows = {p["model"]: p for p in paper}
    out, base = [], None
    for label, runs in by_label.items():
        p = paper_rows.get(labels.get(label, label), {})
        row: dict[str, Any] = {"row": label, "paper_row": labels.get(label, label), "seeds": len(runs)}
        for m in metrics:
            # pycocotools reports -1 where an area range has no objects (APl on small images)
            mean, std = _mean_std([100 * r[m] for r in runs if m in r and r[m] >= 0])
            theirs = p.get(METRIC_COLUMNS[m]) or ""
            row[m] = mean
            row[f"{m}_std"] = std
            row[f"{m}_paper"] = float(theirs) if theirs else math.nan
            row[f"{m}_delta"] = mean - row[f"{m}_paper"]
            row[f"{m}_status"] = status
        if base is None:
            base = row
            row["ordering"] = "base"
        else:
            agree = [math.copysign(1, row[m] - base[m]) == math.copysign(1, row[f"{m}_paper"] - base[f"{m}_paper"])
                     for m in metrics if not math.isnan(row[f"{m}_paper"]) and row[f"{m}_paper"] != base[f"{m}_paper"]
                     and not math.isnan(row[m] - base[m])]
            row["ordering"] = ("reproduced" if agree and all(agree) else "not reproduced" if agree else "n/a")
        out.append(row)
    return out


def write_table(summary: list[dict], stem: str | os.PathLike, title: str, metrics: Sequence[str] = ("AP", "AP50",
                "AP75"), extra: Sequence[str] = ()) -> None:
    """``stem.csv`` (every column) and ``stem.md`` (ours ± std | paper | Δ per metric)."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for r in summary for k in r))
    with open(stem.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in r.items()} for r in summary)
    head = ["row", *extra, *(f"{m} ours / paper (Δ)" for m in metrics), "status", "paper's ordering"]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary:
        cells = [r["row"], *(str(r.get(e, "")) for e in extra)]
        for m in metrics:
            paper = r[f"{m}_paper"]
            ours = "–" if math.isnan(r[m]) else f"{r[m]:.1f} ± {r[f'{m}_std']:.1f}"
            cells.append(f"{ours} / " + ("–" if math.isnan(paper) else f"{paper:.1f}" + (
                "" if math.isnan(r[m]) else f" ({r[f'{m}_delta']:+.1f})")))
        cells += [r[f"{metrics[0]}_status"], r.get("ordering", "")]
        lines.append("| " + " | ".join(cells) + " |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    metrics = {r["row"]: {m: round(r[m], 3) for m in metrics} for r in summary}
    (stem.parent / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")


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
            ap, status = (float(gpu["AP"]), f"reduced-scale, {gpu['device']}") if gpu else (math.nan, "needs GPU")
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
