"""The ``yolov7`` command: ``yolov7 train | val | detect | bench | export`` with flags familiar to
official users.

    yolov7 train --cfg yolov7-tiny --data data/synthetic/data.yaml --hyp tiny --img 320 --batch 16 --epochs 30
    yolov7 val --weights runs/train/exp/weights/best.pt --data data/synthetic/data.yaml --img 320
    yolov7 detect --weights yolov7.pt --source images/ --out runs/detect/exp

``--weights`` accepts our checkpoints and official ``.pt`` files (read safely).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from . import train as train_module
from .console import HelpFormatter, UserError, run
from .runtime import select_device


def _half(args: argparse.Namespace, device: torch.device) -> bool:
    return device.type == "cuda" and not args.fp32


def val(argv: list[str] | None = None) -> dict[str, float]:
    """COCO evaluation of a checkpoint at the paper's protocol; prints and saves the metrics."""
    from .checkpoint import load_any
    from .data.dataset import validation_dataset
    from .data.formats import DataConfig
    from .evaluate import evaluate
    from .reparam import fuse

    p = argparse.ArgumentParser(prog="yolov7 val", description="Evaluate a checkpoint (COCO metrics) at the "
                                "paper's protocol.", formatter_class=HelpFormatter)
    p.add_argument("--weights", required=True, help="one of our checkpoints or an official .pt")
    p.add_argument("--data", required=True, help="data YAML (official format)")
    p.add_argument("--task", default="val", choices=("val", "train"), help="the split to evaluate")
    p.add_argument("--img", "--img-size", dest="img", type=int, default=640, help="image size in pixels")
    p.add_argument("--batch", "--batch-size", dest="batch", type=int, default=32, help="images per batch")
    p.add_argument("--conf-thres", type=float, default=0.001, help="lowest score kept before NMS")
    p.add_argument("--iou-thres", type=float, default=0.65, help="NMS IoU threshold")
    p.add_argument("--device", default="", help="'' (CUDA if available), 'cpu', 'cuda' or a GPU index")
    p.add_argument("--fp32", action="store_true", help="no fp16 on CUDA (Table 10)")
    p.add_argument("--coco-json", help="score against this COCO annotation file (ids = file stems, 91-id map)")
    p.add_argument("--out", default="runs/val/exp", help="folder for metrics.json, the PR curve and confusion matrix")
    p.add_argument("--workers", type=int, default=2, help="data-loading processes")
    p.add_argument("--tracking", action=argparse.BooleanOptionalAction, default=True, help="log to MLflow")
    p.add_argument("--experiment", default="yolov7lib-val", help="MLflow experiment name")
    args = p.parse_args(argv)
    device = select_device(args.device)
    model = fuse(load_any(args.weights)).to(device).eval()
    data = DataConfig.load(args.data)
    if model.head.nc != data.nc:
        raise UserError(f"--weights {args.weights} predicts {model.head.nc} classes but {args.data} has {data.nc}: "
                        "evaluate a model on data with its own classes")
    if model.config.names and list(model.config.names) != list(data.names):
        warnings.warn(f"--weights {args.weights} was trained with the class names {list(model.config.names)}, "
                      f"{args.data} names {data.names}: the metrics pair them by index", UserWarning, stacklevel=2)
    dataset = validation_dataset(data, args.img, int(max(model.head.strides)), args.batch, args.task, warn=True)
    result = evaluate(model, dataset, data.names, batch_size=args.batch, conf_thres=args.conf_thres,
                      iou_thres=args.iou_thres, half=_half(args, device), workers=args.workers,
                      coco_json=args.coco_json)
    out = Path(args.out)
    result.save(out)
    print(" ".join(f"{k} {v:.4f}" for k, v in result.metrics.items()))
    if args.tracking:
        from .tracking import tracked

        with tracked(args.experiment, out.name) as run:
            run.log_params(vars(args))
            run.log_metrics(result.metrics)
            for name in ("metrics.json", "pr_curve.png", "confusion_matrix.png"):
                run.log_artifact(out / name)
    return result.metrics


def detect(argv: list[str] | None = None) -> list[dict]:
    """Detect objects in images; write annotated copies and ``detections.json``."""
    import cv2

    from .checkpoint import load_any
    from .data.formats import image_files
    from .data.images import load_rgb
    from .predict import predict
    from .reparam import fuse

    p = argparse.ArgumentParser(prog="yolov7 detect", description="Detect objects in images; write annotated "
                                "copies and detections.json.", formatter_class=HelpFormatter)
    p.add_argument("--weights", required=True, help="one of our checkpoints or an official .pt")
    p.add_argument("--source", required=True, help="an image, a directory or a list file")
    p.add_argument("--img", "--img-size", dest="img", type=int, default=640, help="inference size in pixels")
    p.add_argument("--conf-thres", type=float, default=0.25, help="lowest score kept")
    p.add_argument("--iou-thres", type=float, default=0.45, help="NMS IoU threshold")
    p.add_argument("--device", default="", help="'' (CUDA if available), 'cpu', 'cuda' or a GPU index")
    p.add_argument("--fp32", action="store_true", help="no fp16 on CUDA")
    p.add_argument("--out", default="runs/detect/exp", help="folder for the annotated images and detections.json")
    args = p.parse_args(argv)
    device = select_device(args.device)
    model = fuse(load_any(args.weights)).to(device).eval()
    if _half(args, device):
        model.half()
    model.to(memory_format=torch.channels_last)  # the fastest path measured by yolov7 bench
    names = list(model.config.names or [str(i) for i in range(model.head.nc)])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    files = image_files([Path(args.source)])
    if not files:
        raise SystemExit(f"no images in {args.source}")
    from tqdm import tqdm

    for path in tqdm(files, desc="detect"):
        bgr = load_rgb(path, bgr=True)
        det = predict(model, bgr, args.img, args.conf_thres, args.iou_thres)
        canvas = bgr.copy()
        for x1, y1, x2, y2, score, cls in det.tolist():
            label = f"{names[int(cls)]} {score:.2f}"
            color = tuple(int(c) for c in np.random.default_rng(int(cls)).integers(0, 255, 3))
            cv2.rectangle(canvas, (round(x1), round(y1)), (round(x2), round(y2)), color, 2)
            cv2.putText(canvas, label, (round(x1), max(round(y1) - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1)
            records.append({"image": str(path), "class": int(cls), "name": names[int(cls)], "score": round(score, 5),
                            "box_xyxy": [round(v, 2) for v in (x1, y1, x2, y2)]})
        cv2.imwrite(str(out / path.name), canvas)
    (out / "detections.json").write_text(json.dumps(records, indent=1))
    print(f"{len(records)} detections in {len(files)} images -> {out}")
    return records


def bench(argv: list[str] | None = None):
    from .bench import main as bench_main

    return bench_main(argv)


def export(argv: list[str] | None = None):
    from .export import main as export_main

    return export_main(argv)


COMMANDS = {"train": train_module.main, "val": val, "detect": detect, "bench": bench, "export": export}


def main(argv: list[str] | None = None) -> int:
    """``yolov7 COMMAND ...``; a mistake gives one ``error:`` line and status 2 (``--verbose``: the traceback)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: yolov7 {{{','.join(COMMANDS)}}} [flags]  (yolov7 COMMAND --help)", file=sys.stderr)
        raise SystemExit(2)
    return run(COMMANDS[argv[0]], argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
