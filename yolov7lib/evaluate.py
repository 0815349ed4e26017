"""COCO evaluation at the paper's protocol (§5; Table 10; algorithms.md §9).

* images letterboxed in rect batches with pad 0.5 (:class:`~yolov7lib.data.dataset.DetectionDataset`
  with ``rect=True``), the model in fp16 on CUDA by default (``half=False`` for fp32, Table 10);
* multi-label NMS: every (box, class) with ``obj·cls > conf_thres`` (0.001), classes kept apart,
  ``torchvision.ops`` NMS at IoU 0.65, at most 30,000 boxes in and 300 detections out per image;
* boxes mapped back to the original images and scored by pycocotools (AP, AP50, AP75, APs, APm,
  APl, AR1, AR10, AR100), against the COCO annotation file where one is given (``image_id`` = file
  stem, classes through the 80-to-91 map) or against the dataset's own labels;
* precision-recall curves (from pycocotools' accumulated precision at IoU 0.5) and a confusion
  matrix (conf 0.25, IoU 0.45) as figures.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torchvision

from .console import UserError
from .data.dataset import DetectionDataset
from .postprocess import non_max_suppression, scale_boxes
from .runtime import full_fp32, synchronize

METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100")


def ground_truth(dataset: DetectionDataset, names: Sequence[str]) -> dict:
    """A COCO annotation dict of the dataset's own labels: image ids are positions in the dataset + 1,
    category ids classes + 1 (pycocotools treats id 0 as "none")."""
    images, annotations = [], []
    for image_id, im in enumerate(dataset.images, 1):
        h, w = im.size
        images.append({"id": image_id, "file_name": str(im.path), "height": h, "width": w})
        for cls, (cx, cy, bw, bh) in zip(im.classes.tolist(), im.boxes.tolist()):
            box = [(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(cls) + 1,
                                "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
    categories = [{"id": i, "name": n} for i, n in enumerate(names, 1)]
    return {"images": images, "annotations": annotations, "categories": categories}


@dataclass
class EvalResult:
    """Metrics (``METRICS``), the COCO-format detections, PR data and a confusion matrix."""

    metrics: dict[str, float]
    detections: list[dict]
    names: list[str]
    precision: np.ndarray  # (101 recall points, classes) at IoU 0.5, -1 where a class has no labels
    confusion: np.ndarray  # (nc + 1, nc + 1): rows predicted, columns true; last = background
    times_ms: dict[str, float] = field(default_factory=dict)  # per image: inference, nms
    classes: list[dict] = field(default_factory=list)  # a row per class: CLASS_COLUMNS
    images: int = 0  # images evaluated

    def class_table(self) -> str:
        """The metrics of all classes, then of each, as the official val prints them: a line each,
        ``-`` where a class has no labels."""
        rows = [{"class": "all", "images": self.images, "labels": sum(c["labels"] for c in self.classes),
                 **{k: self.metrics[k] for k in CLASS_COLUMNS[3:]}}, *self.classes]
        width = max(12, *(len(r["class"]) + 2 for r in rows))
        lines = [f"{'class':>{width}}" + "".join(f"{k:>10}" for k in CLASS_COLUMNS[1:])]
        for r in rows:
            numbers = "".join(f"{r[k]:>10.4f}" if r[k] >= 0 else f"{'-':>10}" for k in CLASS_COLUMNS[3:])
            lines.append(f"{r['class']:>{width}}{r['images']:>10}{r['labels']:>10}{numbers}")
        return "\n".join(lines)

    def save(self, out: str | os.PathLike) -> None:
        """``metrics.json``, ``per_class.csv``, ``detections.json``, ``pr_curve.png``,
        ``confusion_matrix.png``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps({**self.metrics, **self.times_ms}, indent=2))
        with open(out / "per_class.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, CLASS_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()}
                             for row in self.classes)
        (out / "detections.json").write_text(json.dumps(self.detections))
        pr_figure(self).savefig(out / "pr_curve.png", dpi=120)
        confusion_figure(self).savefig(out / "confusion_matrix.png", dpi=120)


def coco_eval(gt: dict | str | os.PathLike, detections: list[dict], image_ids: Sequence[int]):
    """pycocotools ``COCOeval`` (bbox) over ``image_ids``, evaluated and accumulated."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        if isinstance(gt, dict):
            coco = COCO()
            coco.dataset = gt
            coco.createIndex()
        else:
            coco = COCO(str(gt))
        result = coco.loadRes(detections) if detections else None
        evaluator = COCOeval(coco, result or COCO(), "bbox")
        evaluator.params.imgIds = list(image_ids)
        if result is not None:
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
    return evaluator


def confusion_matrix(detections: Sequence[np.ndarray], truths: Sequence[tuple[np.ndarray, np.ndarray]], nc: int,
                     conf: float = 0.25, iou: float = 0.45) -> np.ndarray:
    """Counts of (predicted, true) class pairs over images; the last row / column is background."""
    matrix = np.zeros((nc + 1, nc + 1), dtype=np.int64)
    for det, (cls, boxes) in zip(detections, truths):
        det = det[det[:, 4] > conf]
        pairs = np.zeros((0, 2), dtype=np.int64)
        if len(det) and len(cls):
            overlap = torchvision.ops.box_iou(torch.from_numpy(boxes), torch.from_numpy(det[:, :4])).numpy()
            g, d = np.nonzero(overlap > iou)
            order = np.argsort(-overlap[g, d], kind="stable")
            g, d = g[order], d[order]
            _, first_d = np.unique(d, return_index=True)
            g, d = g[np.sort(first_d)], d[np.sort(first_d)]
            _, first_g = np.unique(g, return_index=True)
            pairs = np.stack((g[first_g], d[first_g]), 1)
        np.add.at(matrix, (det[pairs[:, 1], 5].astype(int), cls[pairs[:, 0]]), 1)
        np.add.at(matrix, (nc, np.delete(cls, pairs[:, 0])), 1)
        np.add.at(matrix, (np.delete(det[:, 5].astype(int), pairs[:, 1]), nc), 1)
    return matrix


def coco_image_ids(coco_json: str | os.PathLike, paths: Sequence[Path]) -> list[int]:
    """The id of each image in a COCO annotation file: by its file name there, else its stem when
    that is a number (COCO's own files are named by their ids)."""
    with open(coco_json) as f:
        by_stem = {Path(im["file_name"]).stem: im["id"] for im in json.load(f).get("images", [])}
    ids = []
    for path in paths:
        if path.stem not in by_stem and not path.stem.isdigit():
            raise UserError(f"{path}: not among the images of {coco_json}, and its name is not a COCO image id")
        ids.append(by_stem[path.stem] if path.stem in by_stem else int(path.stem))
    return ids


@torch.no_grad()
def evaluate(model: torch.nn.Module, dataset: DetectionDataset, names: Sequence[str], *, batch_size: int = 32,
             conf_thres: float = 0.001, iou_thres: float = 0.65, max_det: int = 300, half: bool | None = None,
             workers: int = 0, coco_json: str | os.PathLike | None = None,
             category_ids: Sequence[int] | None = None, progress: bool = True,
             channels_last: bool = True) -> EvalResult:
    """Evaluate ``model`` on ``dataset`` (use ``rect=True, pad=0.5`` for the paper's protocol).

    With ``coco_json`` the detections are scored against that annotation file, each image's id taken
    from the file's ``images`` by its file name (else its numeric stem, as officially) and classes
    mapped through ``category_ids`` (COCO's 80-to-91 map by default).
    ``channels_last`` runs the model in NHWC, the fastest inference path measured by
    :mod:`yolov7lib.bench` (its figures are in the README), with equal outputs within 1e-5.
    """
    from tqdm import tqdm

    from .data.formats import COCO80_TO_91

    device = next(model.parameters()).device
    half = device.type == "cuda" if half is None else half
    was_training = model.training
    model.eval()
    net = copy.deepcopy(model).half() if half else model  # FP16 on a copy: the caller's FP32 weights stay exact
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    net.to(memory_format=memory_format)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                                         collate_fn=DetectionDataset.collate)
    ids = {str(im.path): i for i, im in enumerate(dataset.images)}
    image_ids = (coco_image_ids(coco_json, [im.path for im in dataset.images]) if coco_json is not None
                 else [i + 1 for i in range(len(dataset.images))])
    if category_ids is None:
        category_ids = COCO80_TO_91 if coco_json is not None else range(1, len(names) + 1)
    detections, per_image, truths = [], [], []
    timing = {"inference": 0.0, "nms": 0.0}
    for images, _, paths, shapes in tqdm(loader, desc="val", disable=not progress, leave=False):
        x = images.to(device, non_blocking=True).to(torch.float16 if half else torch.float32) / 255
        x = x.contiguous(memory_format=memory_format)
        t0 = time.perf_counter()
        with contextlib.nullcontext() if half else full_fp32():  # FP32 is FP32 on CUDA too, not TF32
            out = net(x)[0]
        synchronize(device)
        t1 = time.perf_counter()
        dets = non_max_suppression(out, conf_thres, iou_thres, max_det)
        synchronize(device)
        timing["inference"] += t1 - t0
        timing["nms"] += time.perf_counter() - t1
        for det, path, shape in zip(dets, paths, shapes):
            det = det.cpu().numpy()
            det[:, :4] = scale_boxes(det[:, :4], shape[0], shape[1])
            per_image.append(det)
            im = dataset.images[ids[path]]
            h, w = im.size
            xywh = im.boxes * [w, h, w, h]
            truths.append((im.classes.astype(int), np.concatenate((xywh[:, :2] - xywh[:, 2:] / 2,
                                                                  xywh[:, :2] + xywh[:, 2:] / 2), 1)))
            image_id = image_ids[ids[path]]
            for x1, y1, x2, y2, score, cls in det.tolist():
                detections.append({"image_id": image_id,
                                   "category_id": category_ids[int(cls)],
                                   "bbox": [round(v, 3) for v in (x1, y1, x2 - x1, y2 - y1)],
                                   "score": round(score, 5)})
    model.to(memory_format=torch.contiguous_format).train(was_training)
    evaluator = coco_eval(coco_json if coco_json is not None else ground_truth(dataset, names), detections,
                          image_ids)
    stats = evaluator.stats if detections else np.zeros(12)
    metrics = dict(zip(METRICS, [float(stats[i]) for i in (0, 1, 2, 3, 4, 5, 6, 7, 8)]))
    precision, recall = class_curves(evaluator if detections else None, [category_ids[c] for c in range(len(names))])
    n = max(len(dataset), 1)
    return EvalResult(metrics, detections, list(names), precision[0], confusion_matrix(per_image, truths, len(names)),
                      {k: 1000 * v / n for k, v in timing.items()}, class_rows(names, truths, precision, recall),
                      len(dataset))


def class_curves(evaluator, categories: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """pycocotools' accumulated precision ``(10 IoUs, 101 recall points, classes)`` and recall ``(10
    IoUs, classes)`` of each of ``categories`` (all areas, 100 detections per image); -1 where a
    class has no labels, and everywhere without an evaluation (no detections)."""
    if evaluator is None:
        return np.full((10, 101, len(categories)), -1.0), np.full((10, len(categories)), -1.0)
    index = {c: k for k, c in enumerate(evaluator.params.catIds)}
    columns = [index.get(c, -1) for c in categories]
    precision, recall = evaluator.eval["precision"][..., 0, 2], evaluator.eval["recall"][..., 0, 2]
    missing = np.array([k < 0 for k in columns])
    precision, recall = precision[..., columns], recall[..., columns]
    precision[..., missing], recall[..., missing] = -1.0, -1.0
    return precision, recall


CLASS_COLUMNS = ("class", "images", "labels", "AP50", "AP", "AR100")


def class_rows(names: Sequence[str], truths: Sequence[tuple[np.ndarray, np.ndarray]], precision: np.ndarray,
               recall: np.ndarray) -> list[dict]:
    """Per class: the images with its labels, its labels, and AP50, AP@[.5:.95] and AR100 averaged
    from :func:`class_curves` as pycocotools averages over all classes; 0 for a class with labels but
    no evaluation (no detections), -1 for a class without labels."""
    counts = np.array([np.bincount(cls, minlength=len(names)) for cls, _ in truths]).reshape(-1, len(names))

    def mean(x: np.ndarray) -> float:
        return float(x[x > -1].mean()) if (x > -1).any() else 0.0

    rows = []
    for k, name in enumerate(names):
        labels = int(counts[:, k].sum())
        values = (mean(precision[0, :, k]), mean(precision[..., k]), mean(recall[:, k])) if labels else (-1.0,) * 3
        rows.append({"class": name, "images": int((counts[:, k] > 0).sum()), "labels": labels,
                     **dict(zip(CLASS_COLUMNS[3:], values))})
    return rows


def pr_figure(result: EvalResult):
    """Precision-recall curves at IoU 0.5: one thin line per class, the mean in bold."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 5), layout="constrained")
    ax = fig.add_subplot()
    recall = np.linspace(0, 1, 101)
    p = result.precision
    for k, name in enumerate(result.names):
        if (p[:, k] >= 0).any():
            ax.plot(recall, p[:, k].clip(0), lw=0.8, label=f"{name} {p[:, k].clip(0).mean():.3f}")
    valid = p[:, (p >= 0).any(0)].clip(0)
    if valid.size:
        ax.plot(recall, valid.mean(1), lw=2.5, color="black", label=f"all classes {valid.mean():.3f} AP50")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.01), title="Precision-recall (IoU 0.5)")
    ax.legend(fontsize=7, loc="lower left")
    return fig


def confusion_figure(result: EvalResult, normalize: bool = True):
    """The confusion matrix (columns: true class; rows: predicted), normalised per true class."""
    from matplotlib.figure import Figure

    m = result.confusion.astype(float)
    if normalize:
        m = m / np.maximum(m.sum(0, keepdims=True), 1)
    labels = [*result.names, "background"]
    fig = Figure(figsize=(1 + 0.5 * len(labels), 0.8 + 0.5 * len(labels)), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(m, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set(xlabel="true", ylabel="predicted", title="Confusion matrix (conf 0.25, IoU 0.45)")
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig
