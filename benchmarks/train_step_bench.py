"""One training step (forward, loss, backward, optimizer): yolov7lib against the official model +
ComputeLossOTA.

Both run in this process on the same batch (a real augmented batch of the synthetic dataset) with
the same weights: the official ``models.yolo.Model`` (``yolov7-package==0.0.13``, ``make
bench-install``) is built from our layer graph (:mod:`yolov7lib.peer`) and loaded with our
state_dict; its loss is the official ``ComputeLossOTA``. The script checks both give the same loss,
then prints the median step time of each and the ratio ours / official (target ≤ 0.8). The two
alternate step by step after two warm-up steps each. Each side runs as its own training script
runs it: ours computes the loss in FP32 outside autocast (as :class:`yolov7lib.train.Trainer`),
the official code inside it; both step the same SGD optimizer (learning rate 0, so that the weights,
and the losses compared, stay the same) through a ``GradScaler`` under FP16.

Ours runs as the trainer runs it by default: the model and batch in ``channels_last`` memory format
(``--no-channels-last`` compares plain layouts: then both run the same convolutions and the ratio
shows what the loss alone gains). The official model keeps its own default layout.

    python benchmarks/train_step_bench.py [--model yolov7] [--img 320] [--batch 8] [--steps 5]
    python benchmarks/train_step_bench.py --device cuda --amp fp16 --img 640 --batch 32   # make gpu-check
"""

from __future__ import annotations

import argparse
import csv
import platform
import statistics
import sys
import time
from dataclasses import replace
from functools import partial
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
from yolov7lib.optim import build_optimizer
from yolov7lib.peer import official_loss, official_model


def batch(data: Path, img: int, size: int, seed: int = 0):
    if not data.exists():
        generate(data.parent, train=64, val=1, size=320, seed=seed)
    cfg = DataConfig.load(data)
    ds = DetectionDataset(load_split(cfg.train, cfg.nc, warn=False).images, img, P5, augment=True, seed=seed)
    images, targets, _, _ = DetectionDataset.collate([ds[i] for i in range(size)])
    return images.float() / 255, targets, cfg.nc


def training_step(model, loss_fn, images, targets, hyp, amp: torch.dtype | None, loss_in_autocast: bool):
    """A closure running one step of ``model``: forward (under autocast when ``amp``), loss, scaled
    backward, SGD step (learning rate 0), zero grad; it returns the loss."""
    device = images.device
    optimizer = build_optimizer(model, replace(hyp, lr0=0.0), images.shape[0])
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    autocast = partial(torch.autocast, device.type, dtype=amp or torch.float32, enabled=amp is not None)

    def step() -> float:
        with autocast():
            preds = model(images)
            if loss_in_autocast:
                loss = loss_fn(preds, targets)
        if not loss_in_autocast:
            loss = loss_fn([p.float() for p in preds], targets)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    return step


def _timed(step) -> tuple[float, float]:
    """(seconds, loss) of one call, the device synchronised on both ends."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    loss = step()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t, loss


def step_times(steps_by_name: dict, steps: int, warmup: int = 2) -> dict[str, tuple[float, float]]:
    """Median step time and last loss per entry of ``steps_by_name`` (name -> step closure).

    The runs alternate step by step, so that neither side profits from running first or last (the
    allocator and caches warm up over the first steps of a process)."""
    times: dict[str, list[float]] = {name: [] for name in steps_by_name}
    losses: dict[str, float] = {}
    for k in range(warmup + steps):
        for name, step in steps_by_name.items():
            seconds, losses[name] = _timed(step)
            if k >= warmup:
                times[name].append(seconds)
    return {name: (statistics.median(times[name]), losses[name]) for name in steps_by_name}


def ours_step(name: str, images, targets, nc: int, amp: torch.dtype | None, width: float = 1.0,
              channels_last: bool = True):
    """Our model ``name`` and loss as the trainer runs them: a step closure."""
    device = images.device
    model = build_model(name, "training", nc, width).to(device).train()
    hyp = P5.loss().scaled(nc, max(images.shape[2:]), model.head.nl)
    if channels_last:
        model, images = model.to(memory_format=torch.channels_last), images.contiguous(
            memory_format=torch.channels_last)
    criterion = YOLOv7Loss(model, hyp)
    return model, training_step(model, lambda p, t: criterion(p, t).loss, images, targets, P5, amp, False)


def compare(model_name: str = "yolov7", img: int = 320, batch_size: int = 8, steps: int = 8, device: str = "cpu",
            amp: str = "off", channels_last: bool = True, data: Path = Path("data/synthetic/data.yaml"),
            peer: bool = True) -> dict:
    """The benchmark's row: both sides' median step time, images/s, losses and the ratio (ours alone,
    the official cells empty, with ``peer=False``)."""
    torch.manual_seed(0)
    dev = torch.device(device)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(amp)
    images, targets, nc = batch(data, img, batch_size)
    images, targets = images.to(dev), targets.to(dev)
    ours, ours_fn = ours_step(model_name, images, targets, nc, dtype, channels_last=channels_last)
    steps_by_name = {"ours": ours_fn}
    if peer:
        theirs = official_model(model_name, nc).to(dev).train()
        theirs.load_state_dict(ours.state_dict())
        hyp = P5.loss().scaled(nc, img, 3)
        official = official_loss(theirs, {k: getattr(hyp, k) for k in ("box", "cls", "obj", "cls_pw", "obj_pw",
                                                                        "anchor_t", "label_smoothing")}
                                 | {"fl_gamma": 0.0})
        steps_by_name = {"official": training_step(theirs, lambda p, t: official(p, t, images)[0], images, targets,
                                                   P5, dtype, True), **steps_by_name}
    result = step_times(steps_by_name, steps)
    (t_our, l_our), (t_off, l_off) = result["ours"], result.get("official", (None, None))
    return {"model": model_name, "img": img, "batch": batch_size, "device": device, "amp": amp,
            "targets": len(targets), "official_loss": round(l_off, 5) if peer else "", "ours_loss": round(l_our, 5),
            "official_s": round(t_off, 4) if peer else "", "ours_s": round(t_our, 4),
            "official_img_per_s": round(batch_size / t_off, 1) if peer else "",
            "ours_img_per_s": round(batch_size / t_our, 1), "ours/official": round(t_our / t_off, 3) if peer else "",
            "channels_last": channels_last, "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="yolov7", help="a training model (default: yolov7)")
    parser.add_argument("--img", type=int, default=320, help="square input size (default: 320)")
    parser.add_argument("--batch", type=int, default=8, help="images per step (default: 8)")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per side after 2 warm-up steps")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--amp", default="off", choices=("off", "fp16", "bf16"), help="autocast precision")
    parser.add_argument("--data", type=Path, default=Path("data/synthetic/data.yaml"),
                        help="a data YAML whose training images give the batch (generated if missing)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                        help="ours in channels_last, as the trainer runs it (default)")
    parser.add_argument("--csv", type=Path, help="write the row here")
    args = parser.parse_args(argv)
    row = compare(args.model, args.img, args.batch, args.steps, args.device, args.amp, args.channels_last, args.data)
    print(f"# torch {torch.__version__}, {platform.processor() or platform.machine()}")
    print(" | ".join(row))
    print(" | ".join(map(str, row.values())))
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            writer.writeheader()
            writer.writerow(row)
    return row


if __name__ == "__main__":
    main()
