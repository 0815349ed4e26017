"""``make gpu-check``: the GPU path proven by one short command, and its figures.

On one GPU (sized for an H100/H200 with 16 CPU cores, ≤ 8 minutes) it runs, in this order, writing
each section's CSV as soon as it is done and ``summary.md`` after every section:

1. Table 10's FP16 and FP32 cells on the Table 10 reference model (``table10.csv``, read by
   ``notebooks/10_table10_precision_nms.ipynb``);
2. one training step (forward, loss with assignment, backward, optimizer) of yolov7 at 640, batch 32,
   FP16 autocast, ours against the official model + loss on identical inputs (``train.csv``);
3. the loader's images/s with 16 workers at 640, p5 recipe, ours and the official (``loader.csv``);
4. the speed table: the 7 deploy models, paper and fixed protocols, batch 1 and 32, FP16, every fast
   path, the official model (the bench peer) in the same process (``speed.csv``); a model that fails
   costs its own rows, and models stop where the budget ends;
5. the CUDA tests (``pytest -m cuda``; Table 10's reference model is their trained checkpoint;
   ``cuda_tests.txt``), given what the budget leaves after the sections that follow (compile aside);
6. the ``gpu`` profile's hours per ablation table: estimated from each arm's FLOPs, and measured from
   our training step of each table's largest arm (``gpu_profile.csv``);
7. ``torch.compile`` (channels_last) for yolov7-tiny-silu and yolov7 at both protocols, added to
   ``speed.csv`` (last: compiling takes the longest; skipped when the time budget is spent).

Without CUDA it runs everything that does not need it at a small size (≤ 2 minutes on 2 cores, a
test runs it so) and prints one line for each part it skips. It needs PyTorch, torchvision, OpenCV,
NumPy, pycocotools, simplejpeg and, for the peer, ``yolov7-package`` (``make bench-install``);
it runs with the package on ``PYTHONPATH``, nothing installed.

    make gpu-check                       # results/gpu/
    PYTHONPATH=. python benchmarks/gpu_check.py --out results/gpu [--reference last.pt] [--budget-s 450]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import data_bench  # noqa: E402
import train_step_bench  # noqa: E402

from yolov7lib import bench, pipeline, runtime  # noqa: E402

DEPLOY_MODELS = ["yolov7-tiny-silu", "yolov7", "yolov7x", "yolov7-w6", "yolov7-e6", "yolov7-d6", "yolov7-e6e"]
REFERENCE = "runs/pipeline/cpu/table10/reference/seed0/weights/last.pt"  # the cpu profile's Table 10 model
# the arms of each ablation table (notebooks 03-08); the first is timed on the GPU for all of them
TABLE_ARMS = {
    "Table 3": ["yolov7x", "yolov7x-light", "yolov7x-light-w1.25", "yolov7x-light-d2.0"],
    "Table 4": ["yolov7-elan3-e", "yolov7-elan3", *(f"yolov7-elan3-{p}" for p in "abcd")],
    "Table 5": ["yolor-w6-reprcsp", "yolor-w6", "yolor-w6-repcsp", "yolor-w6-rcsp", "yolor-csp", "yolor-csp-reprcsp"],
    "Table 6": ["yolov7-e6"] * 4,
    "Table 7": ["yolov7-e6"] * 3,
    "Table 8": ["yolov7-e6e", "yolov7-e6e-noaux", "yolov7-e6e-aux"],
}
ASSUMED_TFLOPS = 200.0  # sustained FP16 training throughput assumed for one H100 (about 20 % of its dense peak)
# our loader with 16 workers at 640, p5 recipe, until a GPU machine measures it: 16 × the 62 img/s per
# worker measured on the 2-core development machine (results/bench/data_cpu.csv)
ASSUMED_LOADER_IMG_S = 1000.0


@dataclass(frozen=True)
class Sizes:
    """What each section runs: the GPU sizes of the issue, or small ones that prove the script on a CPU."""

    models: list[str]
    img: int | None  # None: each model's own size
    batches: tuple[int, ...]
    paths: list[str]
    warmup: int
    repeats: int
    train_img: int
    train_batch: int
    train_model: str
    train_steps: int
    loader_images: int
    loader_size: int
    loader_workers: int
    loader_batches: int
    loader_batch: int


GPU = Sizes(DEPLOY_MODELS, None, (1, 32), ["eager", "channels_last", "cuda_graph", "channels_last+cuda_graph"],
            5, 20, 640, 32, "yolov7", 8, 256, 640, 16, 40, 32)
CPU = Sizes(["yolov7-tiny-silu"], 160, (1, 2), ["eager", "channels_last", "onnxruntime"], 1, 3, 160, 2,
            "yolov7-tiny", 2, 24, 320, 2, 4, 8)


@dataclass
class Report:
    """Sections done, skipped or failed, goal lines, and the files written; rendered as summary.md."""

    out: Path
    device: str
    started: float = field(default_factory=time.perf_counter)
    sections: list[tuple[str, str, float]] = field(default_factory=list)  # (name, outcome, seconds)
    goals: list[tuple[str, str, str]] = field(default_factory=list)  # (goal, measured, verdict)
    tables: list[str] = field(default_factory=list)
    train_img_per_s: float | None = None  # the training step's, for the loader's goal
    loader_img_per_s: float | None = None  # the loader's at 640 with 16 workers (p5), for the gpu profile
    speed_rows: list = field(default_factory=list)  # every speed row so far (speed.csv)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def write(self) -> None:
        lines = [f"# make gpu-check on {self.device}", "", f"Total {self.elapsed():.0f} s.", "",
                 "| section | outcome | seconds |", "|---|---|---:|"]
        lines += [f"| {n} | {o} | {s:.0f} |" for n, o, s in self.sections]
        if self.goals:
            lines += ["", "## Goals", "", "| goal | measured | verdict |", "|---|---|---|"]
            lines += [f"| {g} | {m} | {v} |" for g, m, v in self.goals]
        lines += ["", *self.tables]
        (self.out / "summary.md").write_text("\n".join(lines) + "\n")


def write_rows(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in rows for k in r)), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows)


def markdown(rows: list[dict], columns: list[str]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in columns)
                     + " |")
    return lines


def peer_installed() -> bool:
    """Whether the official code (the bench peer, ``make bench-install``) can be imported."""
    import importlib.util

    return importlib.util.find_spec("yolov7_package") is not None


class Skipped(Exception):
    """A section that cannot run here; its message says why."""


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


# -- the sections --------------------------------------------------------------------------------
def cuda_tests(report: Report, sizes: Sizes, args: argparse.Namespace, device: torch.device) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    if Path(args.reference).exists():
        env.update(YOLOV7LIB_REFERENCE=str(args.reference), YOLOV7LIB_REFERENCE_DATA=str(args.data))
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", str(ROOT / "tests" / "gpu"), "-q", "-p", "no:cacheprovider",
           "-W", "ignore::DeprecationWarning"]
    timeout = max(60.0, min(args.tests_timeout, args.budget_s - report.elapsed() - reserved_after("CUDA tests")))
    # a session of its own, so that a timeout also stops what the tests started (torchrun's workers)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
        ok = proc.returncode == 0
        last = (stdout.strip().splitlines() or ["no output"])[-1].strip("= ")
    except subprocess.TimeoutExpired:  # what ran until then is kept
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        ok, last = False, f"timed out after {timeout:.0f} s"
    (report.out / "cuda_tests.txt").write_text(stdout + stderr)
    print(stdout[-4000:], stderr[-2000:], sep="\n")
    report.goals.append(("CUDA tests (pytest -m cuda)", last, verdict(ok)))
    return last


def speed(report: Report, sizes: Sizes, args: argparse.Namespace, device: torch.device,
          models: list[str] | None = None, paths: list[str] | None = None, protocols=("paper", "fixed"),
          peer: bool | None = None) -> str:
    """Every model, protocol, batch and path beside the official model (``peer``, default: when it is
    installed); all rows go to speed.csv."""
    tol = bench.tolerance(device)
    new_rows, failed, left_out = [], [], []
    per_model = SECONDS_PER_MODEL if device.type == "cuda" else 0.0
    for model in models or sizes.models:
        if device.type == "cuda" and report.elapsed() + per_model > args.budget_s:
            left_out.append(model)  # the budget is spent: the rows so far are kept
            continue
        try:
            rows = bench.bench_model(model, device, sizes.batches, protocols, paths or sizes.paths,
                                     peer=args.peer if peer is None else peer,
                                     warmup=sizes.warmup, repeats=sizes.repeats, size=sizes.img)
        except Exception as err:  # one model's failure (out of memory, ...) costs its rows only
            traceback.print_exc()
            failed.append(f"{model} ({type(err).__name__}: {err})"[:200])
            torch.cuda.empty_cache()
            continue
        for r in rows:
            print(bench.format_row(r), flush=True)
        new_rows += rows
        report.speed_rows += rows
        bench.write_csv(report.speed_rows, report.out / "speed.csv", runtime.environment(device))
        torch.cuda.empty_cache()
    official = [r for r in new_rows if r.impl == "official"]  # the peer's rows: ratios to report
    ceiling = {b: bench.conv_ceiling(device, torch.float16, b) for b in sizes.batches} \
        if device.type == "cuda" and official else None  # seconds on a GPU; the CPU's check stays short
    found = bench.ratios(new_rows, tol, ceiling)
    notes = [f"- FAILED: {f}" for f in failed] + ([f"- not timed (budget spent): {', '.join(left_out)}"]
                                                  if left_out else [])
    report.tables += [f"## speed: {', '.join(paths or sizes.paths)}", "", *(f"- {r}" for r in found), *notes, ""]
    yolov7 = [r for r in new_rows if r.model == "yolov7" and r.batch == 32 and r.protocol == "fixed"
              and r.impl.startswith("ours:") and r.max_rel_diff <= tol]
    if device.type == "cuda" and yolov7:
        best = max(yolov7, key=lambda r: r.fps)
        report.goals.append(("yolov7 at 640, FP16, batch 32: ≥ 3,000 img/s", f"{best.fps:,.0f} img/s ({best.impl}, "
                             f"{best.protocol} {best.shape})", verdict(best.fps >= 3000)))
    for r in found:
        if r.ours.protocol == "paper" and r.ours.batch == 1:
            report.goals.append((f"{r.ours.model} batch 1 (paper protocol): ≥ 1.5× the official FPS", r.figures,
                                 verdict(r.speedup >= 1.5)))
    return f"{len(new_rows)} rows" + (f", {len(failed)} model(s) failed" if failed else "") + (
        f", {len(left_out)} not timed (budget)" if left_out else "")


def train_step(report: Report, sizes: Sizes, args: argparse.Namespace, device: torch.device) -> str:
    amp = "fp16" if device.type == "cuda" else "off"
    with cudnn_autotuning():  # as the official train.py runs (and ours), for both sides
        row = train_step_bench.compare(sizes.train_model, sizes.train_img, sizes.train_batch, sizes.train_steps,
                                       str(device), amp, data=args.data, peer=args.peer)
    print(row)
    write_rows(report.out / "train.csv", [row])
    report.tables += ["## training step", "", *markdown([row], list(row)), ""]
    report.train_img_per_s = row["ours_img_per_s"]
    if not args.peer:
        return f"ours {row['ours_img_per_s']} img/s (no peer)"
    report.goals.append((f"training step ({sizes.train_model}, {sizes.train_img}, batch {sizes.train_batch}, {amp}): "
                         "≤ 0.8× the official step time", f"{row['ours/official']:.2f}× ({row['ours_img_per_s']} vs "
                         f"{row['official_img_per_s']} img/s)", verdict(row["ours/official"] <= 0.8)))
    return f"ours/official {row['ours/official']}"


def loader(report: Report, sizes: Sizes, args: argparse.Namespace, device: torch.device) -> str:
    rows = data_bench.main(["--data", str(args.work / "loader_images"), "--images", str(sizes.loader_images),
                            "--size", str(sizes.loader_size), "--batches", str(sizes.loader_batches),
                            "--batch-size", str(sizes.loader_batch), "--workers", str(sizes.loader_workers),
                            "--recipes", "p5", "p5-no-paste", *([] if args.peer else ["--ours-only"])])
    write_rows(report.out / "loader.csv", rows)
    report.tables += ["## loader", "", *markdown(rows, list(rows[0])), ""]
    step = report.train_img_per_s
    p5 = float(rows[0]["ours_img_per_s"])
    if sizes.loader_size == 640 and sizes.loader_workers == 16:
        report.loader_img_per_s = p5
    if step and device.type == "cuda":
        report.goals.append((f"loader, {sizes.loader_workers} workers at {sizes.loader_size}, p5 recipe: ≥ the "
                             "training step's img/s", f"{p5:.0f} vs {step:.0f} img/s", verdict(p5 >= step)))
    return f"p5 {p5:.0f} img/s"


def table10(report: Report, sizes: Sizes, args: argparse.Namespace, device: torch.device) -> str:
    from yolov7lib.checkpoint import load_checkpoint, load_model
    from yolov7lib.data.dataset import validation_dataset
    from yolov7lib.data.formats import DataConfig

    if not Path(args.reference).exists():
        raise Skipped(f"no reference model at {args.reference} (make repro trains it)")
    model = load_model(args.reference).to(device)
    img = load_checkpoint(args.reference)["train_config"]["img_size"]
    data = DataConfig.load(args.data)
    val = validation_dataset(data, img, int(max(model.head.strides)))
    rows = pipeline.table10_rows(model, val, data.names)
    write_rows(report.out / "table10.csv", rows)
    report.tables += ["## Table 10 (reference model)", "", *markdown(rows, ["precision", "iou", "AP", "status"]), ""]
    ap = {(r["precision"], r["iou"]): r["AP"] for r in rows}
    if device.type == "cuda":
        gap = max(abs(ap[("FP16", i)] - ap[("FP32", i)]) for i in (0.65, 0.70))
        report.goals.append(("Table 10: FP16 and FP32 AP of one model agree within 0.2", f"largest gap {gap:.3f} AP",
                             verdict(gap <= 0.2)))
    return ", ".join(f"{p} {i:.2f}: {v:.2f}" for (p, i), v in ap.items() if not math.isnan(v))


def gpu_profile(report: Report, sizes: Sizes, args: argparse.Namespace, device: torch.device) -> str:
    """The time each ablation table takes under the ``gpu`` profile: per arm and seed, epochs × batches
    of training steps (validation not counted), and never less than the loader needs to feed them.

    * estimated everywhere: each arm's training FLOPs per step (3 × the forward pass, counted exactly
      on the meta device) at :data:`ASSUMED_TFLOPS`, and the images at the loader's rate (measured
      by this run's loader section on a 16-core GPU machine, else :data:`ASSUMED_LOADER_IMG_S`);
    * measured on CUDA: our step time of the table's first (largest) arm, FP16 autocast, for every arm."""
    from yolov7lib.complexity import count_gflops
    from yolov7lib.models import build_model

    prof = pipeline.profile("gpu", ROOT / "params.yaml")
    t, d, seeds = prof["train"], prof["data"], len(prof["seeds"])
    steps = seeds * t["epochs"] * math.ceil(d["train"] / t["batch_size"])  # per arm
    loader_rate = report.loader_img_per_s or ASSUMED_LOADER_IMG_S
    if device.type == "cuda":
        images, targets, nc = train_step_bench.batch(args.data, t["img_size"], t["batch_size"])
        images, targets = images.to(device), targets.to(device)
    rows, measured = [], {}
    for table, arms in TABLE_ARMS.items():
        tflop = 0.0
        for name in arms:
            with torch.device("meta"):
                model = build_model(name, "training", 8, t["width"], t.get("depth", 1.0))
            tflop += 3 * count_gflops(model, t["img_size"]) * t["batch_size"] / 1000
        loading = steps * len(arms) * t["batch_size"] / loader_rate
        row = {"table": table, "arms": len(arms), "seeds": seeds, "epochs": t["epochs"], "images": d["train"],
               "width": t["width"], "img": t["img_size"], "batch": t["batch_size"],
               "hours_compute_estimated": steps * tflop / ASSUMED_TFLOPS / 3600, "hours_loader": loading / 3600}
        if device.type == "cuda":
            first = arms[0]
            if first not in measured:
                _, step = train_step_bench.ours_step(first, images, targets, nc, torch.float16, t["width"])
                with cudnn_autotuning():
                    measured[first] = train_step_bench.step_times({first: step}, steps=3, warmup=1)[first][0]
                torch.cuda.empty_cache()
            row.update({"timed_arm": first, "step_s": measured[first],
                        "hours_compute_measured": steps * len(arms) * measured[first] / 3600})
        compute = row.get("hours_compute_measured", row["hours_compute_estimated"])
        row["hours"] = max(compute, row["hours_loader"])
        rows.append(row)
    write_rows(report.out / "gpu_profile.csv", rows)
    source = "measured step times" if measured else f"{ASSUMED_TFLOPS:.0f} TFLOP/s assumed"
    report.tables += [f"## gpu profile: hours per table on one GPU ({source}; loader {loader_rate:.0f} img/s"
                      f"{'' if report.loader_img_per_s else ' assumed'})", "", *markdown(rows, list(rows[0])), ""]
    return f"{sum(r['hours'] for r in rows):.1f} h in all ({source})"


def compile_paths(report: Report, sizes: Sizes, args: argparse.Namespace, device: torch.device) -> str:
    """Compiled paths, beside the speed table's rows (its official rows and ratios are not repeated);
    both protocols, so that the 640² batch-32 goal also sees the compiled model."""
    return speed(report, sizes, args, device, ["yolov7-tiny-silu", "yolov7"], ["channels_last+compile"], peer=False)


@contextlib.contextmanager
def cudnn_autotuning():
    """cuDNN's autotuner on (``cudnn.benchmark``), as training runs, for the duration."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


# -- the command -----------------------------------------------------------------------------------
# (name, function, needs CUDA, seconds it is expected to take on an H100/H200: a section starts only if
# it can end within the budget), cheapest and most needed first; every function takes (report, sizes,
# args, device). The seconds are those of the first run on an H200 (results/gpu/summary.md), rounded up.
SECTIONS: list[tuple[str, Callable, bool, float]] = [
    ("Table 10", table10, False, 20), ("training step", train_step, False, 40), ("loader", loader, False, 30),
    ("speed table", speed, False, 190), ("CUDA tests", cuda_tests, True, 90), ("gpu profile", gpu_profile, False, 45),
    ("torch.compile", compile_paths, True, 90)]
SECONDS_PER_MODEL = 190 / len(DEPLOY_MODELS)  # the speed table's expected time per model
OPTIONAL = ("torch.compile",)  # last, and run only if time is left


def reserved_after(name: str) -> float:
    """The expected seconds of the sections after ``name`` (the optional ones aside)."""
    names = [n for n, *_ in SECTIONS]
    return sum(s for n, _, _, s in SECTIONS[names.index(name) + 1:] if n not in OPTIONAL)


def skipped(name: str, needs_cuda: bool, expected_s: float, device: torch.device, elapsed: float,
            args: argparse.Namespace) -> str | None:
    """Why a section does not run (None: it runs): ``--skip``, no CUDA, or, on CUDA, it would end
    after the budget."""
    if name in args.skip:
        return "--skip"
    if needs_cuda and device.type != "cuda":
        return "needs CUDA"
    if device.type == "cuda" and elapsed + expected_s > args.budget_s:
        return f"it would end after the {args.budget_s:.0f} s budget (about {expected_s:.0f} s, {elapsed:.0f} s spent)"
    return None


def main(argv: list[str] | None = None) -> Report:
    parser = argparse.ArgumentParser(prog="make gpu-check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "gpu", help="folder for the CSVs and summary.md")
    parser.add_argument("--reference", type=Path, default=ROOT / REFERENCE,
                        help="Table 10's reference checkpoint (default: the cpu profile's, trained by make repro)")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "synthetic" / "data.yaml",
                        help="the reference model's data YAML (generated with the cpu profile when missing)")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "gpu_check", help="scratch folder")
    parser.add_argument("--budget-s", type=float, default=480.0,
                        help="seconds the whole check may take: a section that would end later (by its expected "
                        "time on an H100/H200) is skipped (default: 480)")
    parser.add_argument("--tests-timeout", type=float, default=300.0,
                        help="seconds the CUDA tests may take, at most what is left of the budget (default: 300)")
    parser.add_argument("--skip", nargs="*", default=[], metavar="SECTION", help="sections not to run, by name")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cuda (the check) or cpu (the small run that proves the script)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    sizes = GPU if device.type == "cuda" else CPU
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    # cuDNN's heuristics pick the kernels for both sides alike (no autotuning, as the official detect.py on
    # images; autotuning every shape of seven models would cost minutes)
    torch.backends.cudnn.benchmark = False
    env = runtime.environment(device)
    report = Report(args.out, env.get("gpu", f"CPU ({env['cpu']}, {env['threads']} threads)"))
    print("# " + ", ".join(f"{k}={v}" for k, v in env.items()), flush=True)
    args.peer = peer_installed()
    if not args.peer:
        note = "the official code (yolov7-package, make bench-install) is not installed: ours alone, no ratios"
        print(f"# {note}")
        report.tables.append(f"Note: {note}.\n")
    if not args.data.exists():
        pipeline.main(["data", "--profile", "cpu", "--out", str(args.data.parent)])
    for name, run, needs_cuda, expected_s in SECTIONS:
        t0 = time.perf_counter()
        why = skipped(name, needs_cuda, expected_s, device, report.elapsed(), args)
        if why:
            outcome = f"skipped: {why}"
        else:
            print(f"== {name}", flush=True)
            try:
                outcome = "done: " + run(report, sizes, args, device)
            except Skipped as why:
                outcome = f"skipped: {why}"
            except Exception as err:  # one failing section must not cost the others' figures
                traceback.print_exc()
                outcome = f"FAILED: {type(err).__name__}: {err}".replace("\n", " ")[:300]
        report.sections.append((name, outcome, time.perf_counter() - t0))
        print(f"-- {name}: {outcome} ({time.perf_counter() - t0:.0f} s)", flush=True)
        report.write()
    print("\n" + (args.out / "summary.md").read_text())
    return report


if __name__ == "__main__":
    report = main()
    sys.exit(1 if any(o.startswith("FAILED") for _, o, _ in report.sections) else 0)
