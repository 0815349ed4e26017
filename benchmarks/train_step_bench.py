"""One training step (forward, loss, backward): yolov7lib against the official model + ComputeLossOTA.

Both run in this process on the same batch (a real augmented batch of the synthetic dataset) with
the same weights: the official ``models.yolo.Model`` (``yolov7-package==0.0.13``, ``make
bench-install``) is built from our layer graph (:mod:`yolov7lib.peer`) and loaded with our
state_dict; its loss is the official ``ComputeLossOTA``. The script checks both give the same loss,
then prints the median step time of each and the ratio ours / official (target ≤ 0.8). The two
alternate step by step after two warm-up steps each.

Ours runs as the trainer runs it by default: the model and batch in ``channels_last`` memory format
(``--no-channels-last`` compares plain layouts: then both run the same convolutions and the ratio
shows what the loss alone gains). The official model keeps its own default layout.

    python benchmarks/train_step_bench.py [--model yolov7] [--img 320] [--batch 8] [--steps 5]
"""

from __future__ import annotations

import argparse
import csv
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from yolov7lib import build_model
from yolov7lib.data.check import load_split
from yolov7lib.data.dataset import DetectionDataset
from yolov7lib.data.formats import DataConfig
from yolov7lib.data.synthetic import generate
from yolov7lib.hyp import P5
from yolov7lib.loss import YOLOv7Loss
from yolov7lib.peer import official_loss, official_model


def batch(data: Path, img: int, size: int, seed: int = 0):
    if not data.exists():
        generate(data.parent, train=64, val=1, size=320, seed=seed)
    cfg = DataConfig.load(data)
    ds = DetectionDataset(load_split(cfg.train, cfg.nc, warn=False).images, img, P5, augment=True, seed=seed)
    images, targets, _, _ = DetectionDataset.collate([ds[i] for i in range(size)])
    return images.float() / 255, targets, cfg.nc


def one_step(model, loss_fn, images, targets) -> tuple[float, float]:
    """(seconds of forward + loss + backward, the loss)."""
    model.zero_grad(set_to_none=True)
    t = time.perf_counter()
    loss = loss_fn(model(images), targets)
    loss.backward()
    return time.perf_counter() - t, loss.item()


def step_times(runs: dict, targets, steps: int, warmup: int = 2) -> dict[str, tuple[float, float]]:
    """Median step time and last loss per entry of ``runs`` (name -> (model, loss_fn, images)).

    The runs alternate step by step, so that neither side profits from running first or last (the
    allocator and caches warm up over the first steps of a process)."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    losses: dict[str, float] = {}
    for k in range(warmup + steps):
        for name, (model, loss_fn, images) in runs.items():
            seconds, losses[name] = one_step(model, loss_fn, images, targets)
            if k >= warmup:
                times[name].append(seconds)
    return {name: (statistics.median(times[name]), losses[name]) for name in runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="yolov7")
    parser.add_argument("--img", type=int, default=320)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--data", type=Path, default=Path("data/synthetic/data.yaml"))
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                        help="ours in channels_last, as the trainer runs it (default)")
    parser.add_argument("--csv", type=Path)
    args = parser.parse_args()
    torch.manual_seed(0)
    images, targets, nc = batch(args.data, args.img, args.batch)
    hyp = P5.loss().scaled(nc, args.img, 3)

    ours = build_model(args.model, "training", nc).train()
    theirs = official_model(args.model, nc).train()
    theirs.load_state_dict(ours.state_dict())
    criterion = YOLOv7Loss(ours, hyp)
    official = official_loss(theirs, {k: getattr(hyp, k) for k in ("box", "cls", "obj", "cls_pw", "obj_pw",
                                                                    "anchor_t", "label_smoothing")}
                             | {"fl_gamma": 0.0})
    channels_last = args.channels_last
    ours_images = images.contiguous(memory_format=torch.channels_last) if channels_last else images
    if channels_last:
        ours = ours.to(memory_format=torch.channels_last)

    result = step_times({"official": (theirs, lambda p, t: official(p, t, images)[0], images),
                         "ours": (ours, lambda p, t: criterion(p, t).loss, ours_images)}, targets, args.steps)
    (t_off, l_off), (t_our, l_our) = result["official"], result["ours"]
    header = ["model", "img", "batch", "targets", "official_loss", "ours_loss", "official_s", "ours_s",
              "ours/official", "channels_last", "threads"]
    row = [args.model, args.img, args.batch, len(targets), f"{l_off:.5f}", f"{l_our:.5f}", f"{t_off:.3f}",
           f"{t_our:.3f}", f"{t_our / t_off:.2f}", channels_last, torch.get_num_threads()]
    print(f"# torch {torch.__version__}, {platform.processor() or platform.machine()}")
    print(" | ".join(header))
    print(" | ".join(map(str, row)))
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w", newline="") as f:
            csv.writer(f).writerows([header, row])


if __name__ == "__main__":
    main()
