"""The paper pipeline behind ``dvc repro``: profiles, ablation runs, and tables beside the paper.

* :func:`profile` reads ``params.yaml``: ``profile`` names one of ``profiles`` (``smoke``, ``cpu``,
  ``gpu``, ``paper``), whose ``data`` / ``train`` / ``seeds`` settings every notebook uses.
* :data:`ABLATIONS` holds the arms of Tables 3-8. :class:`TableRun` trains every arm of a table under
  identical settings for each paired seed, as independent jobs in a local pool of processes (the
  profile's ``jobs``; one MLflow parent run per table, a nested run per arm and seed); a finished run
  is reused and an interrupted one resumes from its last epoch, so a stage goes on where it stopped.
  It writes the table that :func:`yolov7lib.ablation.summarize` builds from the runs' own outputs,
  headed by what was run.
* ``python -m yolov7lib.pipeline jobs 6`` prints one command per arm and seed of Table 6, for a
  scheduler (a Slurm array, one ``torchrun`` per job); the table stage then only collects them.

The paper's tables ship with the package (``yolov7lib/paper/tableN.csv``; values in %).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import re
import shlex
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .console import HelpFormatter, UserError, at_least, duration, run
from .runtime import available_cores, cpu_kind
from .train import TrainConfig, read_results


def repo_root(start: str | os.PathLike | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) holding ``params.yaml`` (notebooks run
    from ``notebooks/`` in JupyterLab and from the repository root under DVC)."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "params.yaml").exists():
            return folder
    raise FileNotFoundError(f"no params.yaml at or above {here}")


def setup(name: str | None, notebook: str) -> tuple[dict, str]:
    """Every notebook's first step: work from the repository root (notebooks run from ``notebooks/``
    in JupyterLab and from the root under DVC), read profile ``name`` (None: the default) and make
    ``results/<notebook>/`` for the notebook's tables, figures and metrics. Returns both."""
    os.chdir(repo_root())
    prof = profile(name)
    results = f"results/{notebook}"
    os.makedirs(results, exist_ok=True)
    print(f"profile {prof['name']}: {prof.get('note', '')}")
    return prof, results


def load_params(path: str | os.PathLike = "params.yaml") -> dict:
    try:
        with open(path) as f:
            return yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise UserError(f"no {path} in {Path.cwd()}: run from the repository's root folder") from None


def profile(name: str | None = None, path: str | os.PathLike = "params.yaml") -> dict:
    """The settings of profile ``name`` (default: the file's ``profile``), with ``name`` added."""
    params = load_params(path)
    name = name or params.get("profile", "cpu")
    profiles = params.get("profiles", {})
    if name not in profiles:
        raise UserError(f"profile {name!r} is not in {path}; choose from {', '.join(profiles)}")
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
    """One row of an ablation table: our row label, a model, training-config changes, and the row's
    name in the paper's table (default: the label)."""

    label: str
    model: str
    changes: dict[str, Any] = field(default_factory=dict)
    paper: str = ""

    @property
    def paper_row(self) -> str:
        return self.paper or self.label


def _e6(label: str, paper: str = "", **changes: str) -> Arm:
    return Arm(label, "yolov7-e6", changes, paper)


# The arms of Tables 3-8, beside the paper's rows (Table 5: two families, each with its own base row).
ABLATIONS: dict[int, tuple[Arm, ...]] = {
    3: (Arm("base", "yolov7x-light", paper="base (v7-X light)"),
        Arm("width", "yolov7x-light-w1.25", paper="width only (1.25 w)"),
        Arm("depth", "yolov7x-light-d2.0", paper="depth only (2.0 d)"),
        Arm("compound", "yolov7x", paper="compound (v7-X)")),
    4: (Arm("base", "yolov7-elan3", paper="base (3-S ELAN)"),
        *(Arm(f"({p})", f"yolov7-elan3-{p}", paper=f"Figure 6 ({p})") for p in "abcde")),
    5: (Arm("W6 base", "yolor-w6", paper="base (YOLOR-W6)"), Arm("W6 RepCSP", "yolor-w6-repcsp", paper="RepCSP"),
        Arm("W6 RCSP", "yolor-w6-rcsp", paper="RCSP"), Arm("W6 RepRCSP", "yolor-w6-reprcsp", paper="RepRCSP"),
        Arm("CSP base", "yolor-csp", paper="base (YOLOR-CSP)"),
        Arm("CSP RepRCSP", "yolor-csp-reprcsp", paper="RepRCSP")),
    6: (_e6("base", "base (v7-E6)", aux_strategy="none"), _e6("independent", aux_strategy="independent"),
        _e6("lead guided", aux_strategy="lead_guided"),
        _e6("coarse-to-fine", "coarse-to-fine lead guided", aux_strategy="coarse_to_fine")),
    7: (_e6("base", "base (v7-E6)", aux_strategy="none"), _e6("aux without constraint", aux_decoder="free"),
        _e6("aux with constraint", aux_decoder="constrained")),
    8: (Arm("base", "yolov7-e6e-noaux", paper="base (v7-E6E)"), Arm("aux", "yolov7-e6e-aux"),
        Arm("partial aux", "yolov7-e6e")),
}


def paper_rows(arms: Sequence[Arm]) -> dict[str, str]:
    """Our row labels -> the paper's row names (the ``labels`` of :func:`yolov7lib.ablation.summarize`)."""
    return {arm.label: arm.paper_row for arm in arms}


def table_profile(prof: dict, table: int) -> dict:
    """``prof`` with the ``train`` changes its ``tables`` entry makes for every arm of ``table`` (a
    reduction that would erase a table's structural point, such as ELAN depths, is undone there)."""
    changes = dict((prof.get("tables") or {}).get(table, {}))
    if not changes:
        return prof
    train = prof.get("train", {})
    if "overrides" in changes:  # hyp values: the table's change one value, the rest stay the profile's
        changes["overrides"] = {**(train.get("overrides") or {}), **changes["overrides"]}
    return {**prof, "train": {**train, **changes}}


def table_dir(prof: dict, table: int) -> Path:
    """Where a table's runs live under a profile (``runs/pipeline/<profile>/table<N>``)."""
    return Path("runs") / "pipeline" / prof["name"] / f"table{table}"


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


def saved_epoch(cfg: TrainConfig) -> tuple[int, dict[str, float], int | None, str | None] | None:
    """The last epoch saved in ``cfg``'s folder by a run with ``cfg``'s settings, its metrics, and the
    threads and kind of CPU it trained on (None: not recorded); None where there is no such run (none,
    another setting, or an unreadable ``last.pt``)."""
    from .checkpoint import CheckpointError, load_checkpoint

    last = cfg.save_dir / "weights" / "last.pt"
    try:
        ckpt = load_checkpoint(last)
    except (CheckpointError, FileNotFoundError, OSError):
        return None
    # settings added since the run was saved count as their defaults, which is what the run used; its
    # folder is where it was found (another table's, for a shared run: share_finished)
    stored = {**asdict(TrainConfig()), **(ckpt.get("train_config") or {})}
    if _settings(stored) != _settings(asdict(cfg)) or not isinstance(ckpt.get("epoch"), int):
        return None
    return ckpt["epoch"], ckpt.get("metrics") or {}, ckpt.get("threads"), ckpt.get("cpu")


def finished_metrics(cfg: TrainConfig) -> dict[str, float] | None:
    """The final metrics of a run that already completed (same settings), else None."""
    saved = saved_epoch(cfg)
    return saved[1] if saved and saved[0] == cfg.epochs - 1 else None


def interrupted(cfg: TrainConfig, threads: int | None = None) -> Path | None:
    """The ``last.pt`` to resume a run of ``cfg``'s settings that stopped before its last epoch, on
    ``threads`` threads as before (None: any) and the same kind of CPU, else None. The resume is exact
    (:meth:`yolov7lib.train.Trainer.resume`), so the run ends as if never stopped."""
    saved = saved_epoch(cfg)
    if not saved or saved[0] >= cfg.epochs - 1:
        return None
    if None not in (threads, saved[2]) and saved[2] != threads:  # not bit for bit: it starts over
        return None
    if saved[3] not in (None, cpu_kind()):  # nor on another kind of CPU
        return None
    return cfg.save_dir / "weights" / "last.pt"


def _settings(config: dict) -> dict:
    """A run's settings without its folder (``project``, ``name``)."""
    return {k: v for k, v in config.items() if k not in ("project", "name")}


def share_finished(cfg: TrainConfig, root: Path) -> dict[str, float] | None:
    """The final metrics of a finished run elsewhere under ``root`` (another table's) whose settings are
    ``cfg``'s but for its folder, linked at ``cfg``'s folder so that it counts as this table's run; else
    None. Two tables with the same arm (Table 7's base is Table 6's) train it once."""
    if cfg.save_dir.exists() or cfg.save_dir.is_symlink() or int(os.environ.get("WORLD_SIZE", 1)) > 1:
        return None  # under torchrun every rank would decide alone: the run trains here
    want = _settings(asdict(cfg))
    for path in sorted(root.glob("table*/runs/**/config.yaml")):
        saved = yaml.safe_load(path.read_text()) or {}
        if _settings(saved) != want:
            continue
        other = TrainConfig(**{**want, "project": saved["project"], "name": saved["name"]})
        if other.save_dir.resolve() != path.parent.resolve() or (metrics := finished_metrics(other)) is None:
            continue
        cfg.save_dir.parent.mkdir(parents=True, exist_ok=True)
        cfg.save_dir.symlink_to(os.path.relpath(path.parent.resolve(), cfg.save_dir.parent.resolve()))
        return metrics
    return None


def _metric_name(verdict: str) -> str:
    """A verdict as an MLflow metric name ("paper's direction, significant" -> paper_direction_significant)."""
    return re.sub(r"[^0-9a-z]+", "_", verdict.replace("'s", "")).strip("_")


def describe(prof: dict) -> str:
    """What every arm of a table ran under ``prof`` (the table's header line)."""
    t, d = prof.get("train", {}), prof.get("data", {})
    images = (f"{d['train']} synthetic images ({d.get('classes', 8)} classes, {d['size']} px)" if "train" in d
              else d.get("yaml", "the profile's data"))
    hyp = t.get("hyp", "p5") + "".join(f", {k} {v}" for k, v in (t.get("overrides") or {}).items())
    return (f"Run ({prof['name']} profile): every arm at width × {t.get('width', 1.0)} and depth × "
            f"{t.get('depth', 1.0)} of its model, {t.get('img_size', 640)} px, {t.get('epochs')} epoch(s) of "
            f"{images}, batch {t.get('batch_size')}, {'Adam' if t.get('adam') else 'SGD'}, hyp {hyp}; "
            f"{len(prof.get('seeds', [0]))} paired seeds.")


def trained_on(kinds: Counter) -> str:
    """The kinds of CPU that a table's runs trained on, for its header: one name, or each with its
    number of runs, the most first (``Counter`` of :func:`yolov7lib.runtime.cpu_kind` values)."""
    if len(kinds) == 1:
        return next(iter(kinds))
    return "; ".join(f"{kind} ({n} run{'' if n == 1 else 's'})" for kind, n in kinds.most_common())


class TableRun:
    """One ablation table under a profile: :meth:`run` trains every arm for every seed (a finished run
    is reused, an interrupted one resumes from its last epoch), :meth:`write` writes the table, headed
    by what was run and the kind of CPU it trained on (:attr:`cpus`).

    With tracking, one MLflow parent run holds a nested run per arm and seed (the training's own, or
    one with the final metrics of a reused run) and the table's CSV, markdown and figure::

        with pipeline.TableRun(6, prof) as table:
            rows = table.run(arms)
            table.write(ablation.summarize(rows, pipeline.paper_table(6), labels), "results/06/table6", title)
    """

    def __init__(self, number: int, prof: dict, out: str | os.PathLike | None = None, data: str | None = None,
                 tracking: bool = True, jobs: int | None = None) -> None:
        self.table, self.prof = f"Table {number}", table_profile(prof, number)
        self.out = Path(out) if out is not None else table_dir(prof, number)
        self.data = data or data_yaml(prof)
        self.experiment = f"yolov7lib-table{number}"
        self.tracking, self.parent = tracking, None
        self.jobs = jobs if jobs is not None else prof.get("jobs", 1)
        self.cpus: Counter = Counter()  # the kinds of CPU the table's runs trained on (run)

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

    def configs(self, arms: Sequence[Arm]) -> list[tuple[Arm, int, TrainConfig]]:
        """Every job of the table: (arm, seed, its training settings)."""
        return [(arm, seed, train_config(self.prof, arm, seed, self.out / "runs", self.data))
                for arm in arms for seed in self.prof.get("seeds", [0])]

    def run(self, arms: Sequence[Arm]) -> list[dict[str, Any]]:
        """One row of final metrics per arm and seed (``label``, ``model``, ``seed``, metrics in [0, 1]).

        Finished runs are reused, interrupted ones resume from their last epoch; the others train in a
        pool of ``jobs`` processes (``jobs`` 0: one per core), or here, one after the other, when
        ``jobs`` is 1 or one run is left. Every run gets ``cores / jobs`` threads, however many runs
        are left: its numbers depend on its thread count (the order of float sums), so a run retrained
        alone, or resumed, ends as it did in the pool."""
        jobs = self.configs(arms)
        done = {cfg.name: finished_metrics(cfg) or share_finished(cfg, self.out.parent) for _, _, cfg in jobs}
        todo = [(arm, seed, cfg) for arm, seed, cfg in jobs if done[cfg.name] is None]
        tracked = self.parent is not None and self.parent.active
        cores = available_cores()
        threads = max(1, cores // (self.jobs or cores))
        resume = {cfg.name: interrupted(cfg, threads) for _, _, cfg in todo}  # else it starts over
        workers = min(len(todo), self.jobs or cores)
        started = time.perf_counter()
        if todo:
            resumed = sum(path is not None for path in resume.values())
            print(f"{self.table}: {len(jobs) - len(todo)} of {len(jobs)} runs finished before; training "
                  f"{len(todo)}" + (f" ({resumed} resumed from their last epoch)" if resumed else "")
                  + f" in {max(workers, 1)} process(es)", flush=True)
        if workers > 1:
            with ProcessPoolExecutor(workers, mp_context=_spawn()) as pool:
                futures = {pool.submit(train_job, cfg, threads, resume=resume[cfg.name]): cfg for _, _, cfg in todo}
                try:
                    for k, future in enumerate(as_completed(futures), 1):
                        cfg = futures[future]
                        done[cfg.name] = future.result()
                        _report(k, len(todo), cfg, done[cfg.name], started)
                except BaseException:  # Ctrl-C or a failed run: the queued runs do not start
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
            hooked = set()
        else:  # here, each run logging its epochs to its own nested run
            for k, (_, _, cfg) in enumerate(todo, 1):
                hooks = []
                if tracked:
                    from .tracking import MLflowHook

                    hooks.append(MLflowHook(self.experiment, cfg.name, nested=True))
                done[cfg.name] = train_job(cfg, threads, hooks, resume[cfg.name])
                _report(k, len(todo), cfg, done[cfg.name], started)
            hooked = {cfg.name for _, _, cfg in todo}
        trained = {cfg.name for _, _, cfg in todo}
        # training is bit-exact on one kind of CPU only: a table whose runs come from several kinds
        # (finished runs copied from another machine) is no one machine's table, and says so
        self.cpus = Counter((saved_epoch(cfg) or (None,) * 4)[3] or "an unrecorded CPU" for _, _, cfg in jobs)
        if len(self.cpus) > 1:
            print(f"{self.table}: its runs trained on {len(self.cpus)} kinds of CPU ({trained_on(self.cpus)}); "
                  "training is bit-exact on one kind only, so no one machine gives these numbers", flush=True)
        rows = []
        for arm, seed, cfg in jobs:
            metrics = done[cfg.name]
            if tracked and cfg.name not in hooked:
                self._log_final(cfg, arm, seed, metrics, reused=cfg.name not in trained)
            rows.append({"label": arm.label, "model": arm.model, "seed": seed,
                         **{k.removeprefix("val/"): v for k, v in metrics.items() if k.startswith("val/")}})
        return rows

    def _log_final(self, cfg: TrainConfig, arm: Arm, seed: int, metrics: dict[str, float], reused: bool) -> None:
        """A nested run for a run trained earlier or in another process: its metrics per epoch (from
        its ``results.csv``, else the final ones) and its curves."""
        from .tracking import Tracker

        run = Tracker(self.experiment, cfg.name, nested=True,
                      tags={"model": arm.model, "reused": str(reused).lower()})
        run.log_params({"label": arm.label, "seed": seed, "train": cfg})
        results = cfg.save_dir / "results.csv"
        for epoch, row in read_results(results) if results.exists() else [(None, metrics)]:
            run.log_metrics(row, step=epoch)
        run.log_artifact(cfg.save_dir / "results.png")
        run.end()

    def write(self, summary, stem: str | os.PathLike, title: str, metrics: Sequence[str] = ("AP", "AP50", "AP75"),
              extra: Sequence[str] = ()) -> None:
        """The table's files (:func:`yolov7lib.ablation.write_table`), headed by what was run; logged
        to the parent run with the number of rows per verdict."""
        from .ablation import verdict_counts, write_table

        header = describe(self.prof) + (f" Trained on {trained_on(self.cpus)}." if self.cpus else "")
        paths = write_table(summary, stem, title, header, metrics, extra)
        if self.parent:
            for path in paths:
                self.parent.log_artifact(path, "table")
            self.parent.log_metrics({f"verdicts/{_metric_name(k)}": n for k, n in verdict_counts(summary).items()})


def train_job(cfg: TrainConfig, threads: int | None = None, hooks: Sequence = (),
              resume: str | os.PathLike | None = None) -> dict[str, float]:
    """Train one arm and seed on ``threads`` threads (None: as set), from ``resume``'s ``last.pt`` if
    given; its final metrics."""
    import torch

    from .train import train

    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        return train(cfg, hooks=list(hooks), resume=resume)
    finally:
        torch.set_num_threads(before)


def _spawn():
    """Fresh interpreters for the pool: a forked PyTorch process can deadlock in its thread pools."""
    import multiprocessing

    return multiprocessing.get_context("spawn")


def _report(k: int, n: int, cfg: TrainConfig, metrics: dict[str, float], started: float) -> None:
    """One line per finished run: its metrics, the time so far and, from the pace so far, what is left."""
    elapsed = time.perf_counter() - started
    left = f", about {duration(elapsed * (n - k) / k)} to go" if k < n else ""
    print(f"[{k}/{n}] {cfg.name}: AP50 {100 * metrics.get('val/AP50', math.nan):.1f} %, "
          f"AP {100 * metrics.get('val/AP', math.nan):.1f} % ({duration(elapsed)} so far{left})", flush=True)


def job_commands(prof: dict, table: int) -> list[str]:
    """One shell command per arm and seed of ``table`` under ``prof``, started by the profile's
    ``launcher`` (default ``python``; the ``paper`` profile: one ``torchrun`` per job). Hand them to a
    scheduler (a Slurm array), then run the table's notebook, which collects the finished runs."""
    launcher = shlex.split(prof.get("launcher", "python"))
    return [shlex.join([*launcher, "-m", "yolov7lib.pipeline", "train", str(table), "--arm", arm.label,
                        "--seed", str(seed), "--profile", prof["name"]])
            for arm in ABLATIONS[table] for seed in prof.get("seeds", [0])]


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


def generate_data(prof: dict, out: str | os.PathLike = "data/synthetic") -> Path | None:
    """The ``data`` stage: the profile's synthetic dataset and its label caches (None: the profile
    brings its own data, e.g. COCO)."""
    from .data.check import load_split
    from .data.formats import DataConfig
    from .data.synthetic import Scene, generate

    data = prof.get("data", {})
    if "yaml" in data:
        return None
    scene = Scene(**{k: data[k] for k in ("classes", "max_objects", "min_side") if k in data})
    path = generate(out, train=data["train"], val=data["val"], size=data["size"], seed=data.get("seed", 0),
                    scene=scene)
    # write the label caches now, so that later readers find them and the stage's output stays unchanged
    config = DataConfig.load(path)
    for split in (config.train, config.val):
        load_split(split, config.nc, warn=False, names=config.names)
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m yolov7lib.pipeline {data,jobs,train}``: the ``data`` stage, and the ablation runs as
    independent jobs."""
    parser = argparse.ArgumentParser(prog="python -m yolov7lib.pipeline", description=main.__doc__,
                                     formatter_class=HelpFormatter)
    parser.add_argument("--profile", default=None, help="a profile of params.yaml (default: its `profile`)")
    commands = parser.add_subparsers(dest="command", required=True)
    data = commands.add_parser("data", help="generate the profile's synthetic dataset (the `data` stage)",
                               formatter_class=HelpFormatter)
    data.add_argument("--out", default="data/synthetic", help="dataset folder")
    data.add_argument("--profile", default=argparse.SUPPRESS, help="a profile of params.yaml")
    for name, text in (("jobs", "print one command per arm and seed of a table, for a scheduler"),
                       ("train", "train a table's runs that are not finished (all, or one arm and seed); a stopped one "
                       "resumes from its last epoch")):
        sub = commands.add_parser(name, help=text, formatter_class=HelpFormatter)
        sub.add_argument("table", type=int, choices=sorted(ABLATIONS), help="the paper's table number")
        sub.add_argument("--profile", default=argparse.SUPPRESS, help="a profile of params.yaml")
    train = commands.choices["train"]
    train.add_argument("--arm", help="one row label (default: every arm)")
    train.add_argument("--seed", type=at_least(0), help="one seed (default: the profile's seeds)")
    train.add_argument("--jobs", type=at_least(0), default=None,
                       help="processes side by side, each run on cores/JOBS threads (a run's numbers depend "
                       "on its thread count: retrain one under the --jobs it had); default: the profile's "
                       "`jobs`; 0: one per core")
    args = parser.parse_args(argv)
    prof = profile(args.profile)
    if args.command == "data":
        path = generate_data(prof, args.out)
        print(f"profile {prof['name']}: " + (f"wrote {path}" if path else f"using {data_yaml(prof)}"))
    elif args.command == "jobs":
        print("\n".join(job_commands(prof, args.table)))
    else:
        arms = [a for a in ABLATIONS[args.table] if args.arm in (None, a.label)]
        if not arms:
            parser.error(f"table {args.table} has no arm {args.arm!r}; its arms: "
                         + ", ".join(repr(a.label) for a in ABLATIONS[args.table]))
        if args.seed is not None:
            prof = {**prof, "seeds": [args.seed]}
        started = time.perf_counter()
        rows = TableRun(args.table, prof, tracking=False, jobs=args.jobs).run(arms)
        print(f"{len(rows)} run(s) of table {args.table} finished in {duration(time.perf_counter() - started)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
