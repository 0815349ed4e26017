"""Assignment + loss speed: yolov7lib against the official ComputeLossOTA / ComputeLossAuxOTA.

Both run in this process on identical inputs (batch 16 at 640, random raw predictions of the yolov7
and yolov7-w6 heads, 10 / 50 / 200 targets per image); the script checks that they agree, then prints
the median time of a forward + backward of the loss, the ratio official / ours, the gradient floor
(allocating and zeroing one gradient per prediction, timed alone: every cell's objectness logit gets
a gradient, so any backward writes that much fresh memory) and the peak memory of each (on the
CPU: growth of the resident set during one call, sampled every 0.5 ms in a fresh subprocess; on
CUDA: ``torch.cuda.max_memory_allocated``).
A last row runs ours on one image with 1,000 targets.

The official code comes from ``yolov7-package==0.0.13`` (``make bench-install``)::

    python benchmarks/assign_bench.py [--device cpu] [--repeats 3] [--csv results/bench/assign_cpu.csv]

Medians over runs filling ``--min-seconds`` (at least ``--repeats``; one run for calls over 5 s).
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing as mp
import platform
import resource
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from yolov7lib import VARIANTS, build_model, peer
from yolov7lib.loss import compute_loss
from yolov7lib.runtime import synchronize

HYP = {"box": 0.05, "cls": 0.3, "obj": 0.7, "cls_pw": 1.0, "obj_pw": 1.0, "fl_gamma": 0.0, "anchor_t": 4.0,
       "label_smoothing": 0.0}


def make_inputs(model_name: str, batch: int, per_image: int, size: int, seed: int = 0):
    """Raw predictions of the model's training head and random targets (COCO-like box sizes)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.device("meta"):
        model = build_model(model_name, "training")
    head = model.head
    shapes = [(batch, head.na, size // int(s), size // int(s), head.no) for s in head.strides]
    if hasattr(head, "m2"):
        shapes = shapes + shapes
    preds = [torch.randn(s, generator=gen) for s in shapes]
    n = batch * per_image
    img = torch.arange(batch).repeat_interleave(per_image).float()
    cls = torch.randint(0, head.nc, (n,), generator=gen).float()
    wh = torch.exp(torch.empty(n, 2).uniform_(-4.0, -0.7, generator=gen))  # 0.018 .. 0.5 of the image
    xy = wh / 2 + torch.rand(n, 2, generator=gen) * (1 - wh)
    targets = torch.cat((img[:, None], cls[:, None], xy, wh), 1)
    return preds, targets


def geometry(model_name: str) -> tuple[list[torch.Tensor], list[float], int, int]:
    """Anchors (grid units), strides, nc and nl of the model's training head."""
    with torch.device("meta"):
        head = build_model(model_name, "training").head
    pixels = torch.tensor(VARIANTS[model_name].anchors, dtype=torch.float32).view(head.nl, -1, 2)
    strides = list(head.strides)
    return [pixels[i] / strides[i] for i in range(head.nl)], strides, head.nc, head.nl


def official_loss(model_name: str, device: str):
    """The official ComputeLossOTA / ComputeLossAuxOTA on our model of the same name (the peer's wrapper)."""
    return peer.official_loss(build_model(model_name, "training").to(device), HYP)


def run_once(impl: str, model_name: str, per_image: int, batch: int, size: int, device: str):
    preds, targets = make_inputs(model_name, batch, per_image, size)
    preds = [p.to(device).requires_grad_() for p in preds]
    targets = targets.to(device)
    if impl == "ours":
        anchors, strides, nc, _ = geometry(model_name)
        anchors = [a.to(device) for a in anchors]
        fn = lambda: compute_loss(preds, targets, anchors, strides, nc, HYP, (size, size)).loss  # noqa: E731
    else:
        loss_fn = official_loss(model_name, device)
        imgs = torch.zeros(batch, 3, size, size, device=device)
        fn = lambda: loss_fn(preds, targets, imgs)[0]  # noqa: E731
    return fn, preds


def timed(fn, preds, repeats: int, device: str) -> tuple[float, float]:
    """Median seconds of the forward (assignment + loss) and of forward + backward."""
    forward, total = [], []
    for _ in range(repeats):
        for p in preds:
            p.grad = None
        synchronize(torch.device(device))
        t = time.perf_counter()
        loss = fn()
        synchronize(torch.device(device))
        t1 = time.perf_counter()
        loss.sum().backward()
        synchronize(torch.device(device))
        forward.append(t1 - t)
        total.append(time.perf_counter() - t)
    return statistics.median(forward), statistics.median(total)


def gradient_floor(model_name: str, batch: int, size: int, device: str, repeats: int = 7) -> float:
    """Median seconds to allocate and zero one gradient tensor per prediction, timed alone: what any
    backward must at least do, since every cell's objectness logit gets a gradient."""
    preds, _ = make_inputs(model_name, batch, 1, size)
    preds = [p.to(device) for p in preds]
    times = []
    for _ in range(repeats):
        synchronize(torch.device(device))
        t = time.perf_counter()
        grads = [torch.zeros_like(p) for p in preds]
        synchronize(torch.device(device))
        times.append(time.perf_counter() - t)
        del grads
    return statistics.median(times)


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _peak_child(queue, impl, model_name, per_image, batch, size):
    """In a fresh process: resident memory growth during one loss forward + backward, sampled."""
    fn, _ = run_once(impl, model_name, per_image, batch, size, "cpu")
    base, peak, done = _rss_mib(), [0.0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mib())
            time.sleep(0.0005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    fn().sum().backward()
    done.set()
    thread.join()
    queue.put(max(peak[0], _rss_mib()) - base)


def peak_memory_mib(impl, model_name, per_image, batch, size, device) -> float:
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        fn, _ = run_once(impl, model_name, per_image, batch, size, device)
        base = torch.cuda.memory_allocated()
        fn().sum().backward()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_peak_child, args=(queue, impl, model_name, per_image, batch, size))
    proc.start()
    proc.join()
    return queue.get() if proc.exitcode == 0 else float("nan")


def agree(model_name, per_image, batch, size, device) -> tuple[float, float]:
    """Relative loss difference, and the share of lead positives (cell and target) both agree on.

    Exact equality is not expected on large random cases: costs are computed with other float
    arithmetic (O(boxes·candidates) instead of O(boxes·candidates·classes)), so near-ties at a
    box's k-th cheapest candidate can fall either way.
    """
    preds, targets = make_inputs(model_name, batch, per_image, size)
    preds, targets = [p.to(device) for p in preds], targets.to(device)
    anchors, strides, nc, nl = geometry(model_name)
    out = compute_loss(preds, targets, [a.to(device) for a in anchors], strides, nc, HYP, (size, size))
    loss_fn = official_loss(model_name, device)
    imgs = torch.zeros(batch, 3, size, size, device=device)
    official = loss_fn(preds, targets, imgs)[0].item()
    b, a, gj, gi, tgt, _ = loss_fn.build_targets(preds[:nl], targets, imgs)
    theirs, mine = Counter(), Counter()
    for i, p in enumerate(out.lead):
        theirs.update(zip([i] * len(b[i]), b[i].tolist(), a[i].tolist(), gj[i].tolist(), gi[i].tolist(),
                          map(tuple, tgt[i].tolist())))
        mine.update(zip([i] * len(p), p.b.tolist(), p.a.tolist(), p.gj.tolist(), p.gi.tolist(),
                        map(tuple, targets[p.target].tolist())))
    shared = sum((theirs & mine).values())
    return abs(out.loss.item() - official) / abs(official), shared / max(sum((theirs | mine).values()), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3, help="at least this many timed runs (under 5 s each)")
    parser.add_argument("--min-seconds", type=float, default=3.0, help="repeat short runs to fill this time")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--targets", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--models", nargs="+", default=["yolov7", "yolov7-w6"])
    parser.add_argument("--csv", type=Path)
    args = parser.parse_args()
    print(f"# torch {torch.__version__}, {args.device}, {torch.get_num_threads()} threads, {platform.processor()}")
    header = ["model", "targets/img", "loss_rel_diff", "positives_agree", "official_fwd_s", "ours_fwd_s",
              "fwd_speedup", "official_fwd_bwd_s", "ours_fwd_bwd_s", "fwd_bwd_speedup", "grad_floor_s",
              "official_peak_MiB", "ours_peak_MiB"]
    rows = []
    print(" | ".join(header))
    for model_name in args.models:
        for per_image in args.targets:
            diff, share = agree(model_name, per_image, args.batch, args.size, args.device)
            t = {}
            for impl in ("official", "ours"):
                fn, preds = run_once(impl, model_name, per_image, args.batch, args.size, args.device)
                fn().sum().backward()  # warm-up
                start = time.perf_counter()
                fn().sum().backward()  # second warm-up, which also sizes the number of repeats
                once = time.perf_counter() - start
                repeats = max(1, min(25, int(args.min_seconds / once))) if once < args.min_seconds else 1
                t[impl] = timed(fn, preds, max(repeats, args.repeats if once < 5 else 1), args.device)
            mem = {impl: peak_memory_mib(impl, model_name, per_image, args.batch, args.size, args.device)
                   for impl in ("official", "ours")}
            (of, ot), (uf, ut) = t["official"], t["ours"]
            floor = gradient_floor(model_name, args.batch, args.size, args.device)
            row = [model_name, per_image, f"{diff:.1e}", f"{share:.4f}", f"{of:.3f}", f"{uf:.3f}", f"{of / uf:.1f}",
                   f"{ot:.3f}", f"{ut:.3f}", f"{ot / ut:.1f}", f"{floor:.3f}",
                   f"{mem['official']:.0f}", f"{mem['ours']:.0f}"]
            rows.append(row)
            print(" | ".join(map(str, row)), flush=True)
    # one image, 1,000 targets: ours only
    fn, preds = run_once("ours", "yolov7-w6", 1000, 1, args.size, args.device)
    fwd, total = timed(fn, preds, 1, args.device)
    mem = peak_memory_mib("ours", "yolov7-w6", 1000, 1, args.size, args.device)
    row = ["yolov7-w6", "1000 (1 image)", "", "", "", f"{fwd:.3f}", "", "", f"{total:.3f}", "", "", "", f"{mem:.0f}"]
    rows.append(row)
    print(" | ".join(map(str, row)))
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)


if __name__ == "__main__":
    main()
