"""The ``yolov7`` command: ``yolov7 train | val | detect | bench | export`` with flags familiar to
official users.

    yolov7 train --cfg yolov7-tiny --data data/synthetic/data.yaml --hyp tiny --img 320 --batch 16 --epochs 30
    yolov7 val --weights runs/train/exp/weights/best.pt --data data/synthetic/data.yaml --img 320
    yolov7 detect --weights yolov7.pt --source images/ --out runs/detect/exp

``--weights`` accepts our checkpoints and official ``.pt`` files (read safely).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import warnings
from pathlib import Path

import torch

from . import train as train_module
from .console import IMG_MIN, HelpFormatter, UserError, at_least, fraction, run, stride_multiple
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
    p.add_argument("--img", "--img-size", dest="img", type=at_least(IMG_MIN), default=640,
                   help="image size in pixels")
    p.add_argument("--batch", "--batch-size", dest="batch", type=at_least(1), default=32, help="images per batch")
    p.add_argument("--conf-thres", type=fraction, default=0.001, help="lowest score kept before NMS")
    p.add_argument("--iou-thres", type=fraction, default=0.65, help="NMS IoU threshold")
    p.add_argument("--device", default="", help="'' (CUDA if available), 'cpu', 'cuda' or a GPU index")
    p.add_argument("--fp32", action="store_true", help="no fp16 on CUDA (Table 10)")
    p.add_argument("--coco-json", help="score against this COCO annotation file (ids = file stems, 91-id map)")
    p.add_argument("--out", default="runs/val/exp", help="folder for metrics.json, per_class.csv, the PR curve and "
                   "confusion matrix (taken: the next free OUT2, OUT3, ...)")
    p.add_argument("--exist-ok", action="store_true", help="write into --out even if it exists")
    p.add_argument("--workers", type=at_least(0), default=2, help="data-loading processes")
    p.add_argument("--per-class", action=argparse.BooleanOptionalAction, default=None,
                   help="print the metrics of each class (default: below 50 classes, as officially; always "
                        "in per_class.csv)")
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
    stride = int(max(model.head.strides))
    dataset = validation_dataset(data, stride_multiple(args.img, stride, "evaluating"), stride, args.batch,
                                 args.task, warn=True)
    result = evaluate(model, dataset, data.names, batch_size=args.batch, conf_thres=args.conf_thres,
                      iou_thres=args.iou_thres, half=_half(args, device), workers=args.workers,
                      coco_json=args.coco_json)
    out = Path(args.out) if args.exist_ok else train_module.next_free(Path(args.out))
    result.save(out)
    print(" ".join(f"{k} {v:.4f}" for k, v in result.metrics.items()))
    if args.per_class or (args.per_class is None and data.nc < 50):
        print(result.class_table())
    if args.tracking:
        from .tracking import tracked

        with tracked(args.experiment, out.name) as run:
            run.log_params(vars(args))
            run.log_metrics(result.metrics)
            for name in ("metrics.json", "per_class.csv", "pr_curve.png", "confusion_matrix.png"):
                run.log_artifact(out / name)
    return result.metrics


def detect(argv: list[str] | None = None) -> list[dict]:
    """Detect objects in images and videos: annotated copies under --out at the sources' relative paths,
    ``detections.json`` (images) and ``detections.jsonl`` (one line per video frame); with --save-txt,
    YOLO labels under OUT/labels/ (pseudo-labels for a dataset).

    yolov7 detect --weights best.pt --source photos/ clips/*.mp4 --out runs/detect/exp
    yolov7 detect --weights best.pt --source photos/ --classes 0 2 --save-txt --save-conf --nosave
    """
    import os

    import cv2
    from tqdm import tqdm

    from .checkpoint import load_any
    from .data.formats import image_files
    from .data.images import Video
    from .predict import SOURCE_SUFFIXES, VIDEO_SUFFIXES, annotate, predict, read_source
    from .reparam import fuse

    p = argparse.ArgumentParser(prog="yolov7 detect", description=detect.__doc__, formatter_class=HelpFormatter)
    p.add_argument("--weights", required=True, help="one of our checkpoints or an official .pt")
    p.add_argument("--source", required=True, nargs="+", help="images, videos (mp4/avi/mov/mkv), folders of "
                   "them, list files or glob patterns such as 'clips/*.mp4'")
    p.add_argument("--img", "--img-size", dest="img", type=at_least(IMG_MIN), default=640,
                   help="inference size in pixels")
    p.add_argument("--conf-thres", type=fraction, default=0.25, help="lowest score kept")
    p.add_argument("--iou-thres", type=fraction, default=0.45, help="NMS IoU threshold")
    p.add_argument("--device", default="", help="'' (CUDA if available), 'cpu', 'cuda' or a GPU index")
    p.add_argument("--fp32", action="store_true", help="no fp16 on CUDA")
    p.add_argument("--classes", nargs="+", type=at_least(0), metavar="CLASS",
                   help="keep only the detections of these class indices (the official --classes)")
    p.add_argument("--agnostic-nms", action="store_true", help="one NMS over all classes, not one per class")
    p.add_argument("--save-txt", action="store_true", help="the detections as YOLO labels (class cx cy w h, "
                   "normalised) under OUT/labels/: an image's at its relative path, a video frame's as "
                   "STEM_FRAME.txt; none where nothing was found (as officially)")
    p.add_argument("--save-conf", action="store_true", help="with --save-txt: each label's score last")
    p.add_argument("--nosave", action="store_true", help="no annotated images or videos (the detections only)")
    p.add_argument("--out", default="runs/detect/exp", help="folder for the annotated images and videos and "
                   "the detections (taken: the next free OUT2, OUT3, ...)")
    p.add_argument("--exist-ok", action="store_true", help="write into --out even if it exists")
    args = p.parse_args(argv)
    if args.save_conf and not args.save_txt:
        p.error("--save-conf needs --save-txt")
    device = select_device(args.device)
    model = fuse(load_any(args.weights)).to(device).eval()
    if args.classes and max(args.classes) >= model.head.nc:
        raise UserError(f"--classes {max(args.classes)}: {args.weights} predicts classes 0 to {model.head.nc - 1}")
    img = stride_multiple(args.img, int(max(model.head.strides)), "detecting")
    files = image_files(args.source, SOURCE_SUFFIXES)
    if not files:
        raise UserError(f"no images or videos in {' '.join(args.source)}")
    if _half(args, device):
        model.half()
    model.to(memory_format=torch.channels_last)  # the fastest path measured by yolov7 bench
    out = Path(args.out) if args.exist_ok else train_module.next_free(Path(args.out))
    root = Path(os.path.commonpath([f.resolve().parent for f in files]))
    videos = [f for f in files if f.suffix.lower() in VIDEO_SUFFIXES]
    failed: list[str] = []
    records: list[dict] = []
    writers: dict[Path, cv2.VideoWriter] = {}
    images = frames = found = 0

    def unreadable(path: Path, err: Exception) -> None:
        failed.append(str(err) if str(path) in str(err) else f"{path} ({err})")

    headers: dict[Path, Video] = {}  # frame count for the bar; rate and size for the writer
    for video in videos:
        with contextlib.suppress(OSError):  # read_source reports it
            headers[video] = Video.open(video)

    out.mkdir(parents=True, exist_ok=True)
    total = len(files) - len(videos) + sum(v.frames for v in headers.values())
    try:
        with open(out / "detections.jsonl", "w") as lines, tqdm(total=total, desc="detect", unit="frame") as bar:
            for path, frame, bgr in read_source(files, unreadable):
                det = predict(model, bgr, img, args.conf_thres, args.iou_thres, str(path), frame,
                              classes=args.classes, agnostic=args.agnostic_nms)
                found += len(det)
                relative = path.resolve().relative_to(root)  # the sources' own layout: nothing overwritten
                if args.save_txt and len(det):
                    stem = relative.stem if frame is None else f"{relative.stem}_{frame}"
                    label = out / "labels" / relative.with_name(f"{stem}.txt")
                    label.parent.mkdir(parents=True, exist_ok=True)
                    label.write_text(det.yolo_labels(args.save_conf))
                if not args.nosave:
                    (out / relative).parent.mkdir(parents=True, exist_ok=True)
                    if frame is None:
                        cv2.imwrite(str(out / relative), annotate(bgr, det))
                    else:
                        if path not in writers:
                            writers[path] = headers[path].writer(out / relative)
                        writers[path].write(annotate(bgr, det))
                if frame is None:
                    records += [{"image": str(path), **r} for r in det.records()]
                    images += 1
                else:
                    lines.write(json.dumps({"video": str(path), "frame": frame, "detections": det.records()}) + "\n")
                    frames += 1
                bar.update()
    finally:
        for writer in writers.values():
            writer.release()
        (out / "detections.json").write_text(json.dumps(records, indent=1))
    if not videos:
        (out / "detections.jsonl").unlink()
    print(f"{found} detections in {images} images and {frames} video frames -> {out}")
    if failed:
        raise UserError(f"{len(failed)} of {len(files)} inputs could not be read: {'; '.join(failed)} "
                        f"(the detections of the others are in {out})")
    return records


def bench(argv: list[str] | None = None):
    from .bench import main as bench_main

    return bench_main(argv)


def export(argv: list[str] | None = None):
    from .export import main as export_main

    return export_main(argv)


COMMANDS = {"train": train_module.main, "val": val, "detect": detect, "bench": bench, "export": export}
SUMMARIES = {
    "train": "train a model with the paper's recipe (resumable; torchrun for several GPUs)",
    "val": "COCO metrics of a checkpoint at the paper's protocol",
    "detect": "detect objects in images, videos, folders and globs; annotated copies and JSON",
    "bench": "inference speed of the models (the paper's protocol; --peer: beside the official code)",
    "export": "ONNX export of the re-parameterized model (dynamic batch, optionally with NMS)",
}


def usage() -> str:
    """``yolov7 --help``: the commands, a line each."""
    lines = [f"  {name:<8s} {SUMMARIES[name]}" for name in COMMANDS]
    return "\n".join(["usage: yolov7 COMMAND [flags]   (yolov7 COMMAND --help: its flags, each explained)", "",
                      "commands:", *lines, "", "--verbose (any command): the traceback of an error"])


def main(argv: list[str] | None = None) -> int:
    """``yolov7 COMMAND ...``; a mistake gives one ``error:`` line and status 2 (``--verbose``: the traceback)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(usage())
        return 0
    if not argv or argv[0] not in COMMANDS:
        print(usage() if not argv else f"error: no command {argv[0]!r}\n{usage()}", file=sys.stderr)
        raise SystemExit(2)
    return run(COMMANDS[argv[0]], argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
