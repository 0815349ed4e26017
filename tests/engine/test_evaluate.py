"""Evaluation protocol: multi-label NMS, box rescaling, COCO scoring, confusion matrix, figures."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from yolov7lib import build_model
from yolov7lib.data.augment import letterbox
from yolov7lib.data.check import load_split
from yolov7lib.data.dataset import DetectionDataset
from yolov7lib.data.formats import DataConfig
from yolov7lib.evaluate import EvalResult, coco_eval, confusion_matrix, evaluate, ground_truth
from yolov7lib.postprocess import non_max_suppression, scale_boxes


def row(cx, cy, w, h, obj, *cls):
    return [cx, cy, w, h, obj, *cls]


def test_nms_multi_label_and_overlap():
    pred = torch.tensor([[row(50, 50, 20, 20, 0.9, 0.9, 0.8),  # two classes above conf: two detections
                          row(51, 50, 20, 20, 0.8, 0.9, 0.1),  # overlaps the first, same class: suppressed
                          row(150, 150, 10, 10, 0.0005, 1.0, 1.0)]])  # below conf
    det = non_max_suppression(pred, conf_thres=0.05, iou_thres=0.65)[0]
    assert det.shape == (2, 6)
    assert sorted(det[:, 5].tolist()) == [0.0, 1.0]
    torch.testing.assert_close(det[det[:, 5] == 0, :4], torch.tensor([[40.0, 40.0, 60.0, 60.0]]))
    single = non_max_suppression(pred, conf_thres=0.05, multi_label=False)[0]
    assert single.shape[0] == 1 and single[0, 5] == 0


def test_nms_keeps_classes_apart_past_the_top_left_corner():
    """A box reaching past (0, 0) is not suppressed by another class's box in the far corner (the
    official shift of class · 4096 px; torchvision's largest-coordinate shift assumes x1 >= 0)."""
    corner = row(620, 620, 35, 35, 0.9, 0.9, 0.0)
    outside = row(-16, -16, 40, 40, 0.8, 0.0, 0.9)
    det = non_max_suppression(torch.tensor([[corner, outside]]), 0.001, 0.65)[0]
    assert sorted(det[:, 5].tolist()) == [0.0, 1.0]


def test_nms_max_det_and_one_class():
    pred = torch.tensor([[row(20 * i, 20 * i, 10, 10, 0.5 + i / 100, 0.01) for i in range(10)]])
    det = non_max_suppression(pred, 0.1, 0.65, max_det=4)[0]
    assert len(det) == 4 and det[0, 4] == pytest.approx(0.59)  # one class: the score is obj
    with pytest.raises(ValueError):
        non_max_suppression(pred, 1.5)


def test_scale_boxes_undoes_letterbox():
    img = np.zeros((100, 200, 3), np.uint8)
    _, r, pad = letterbox(img, 160, scaleup=False)
    box = np.array([[10.0, 20.0, 110.0, 70.0]])
    boxed = box * r + [pad[0], pad[1], pad[0], pad[1]]
    np.testing.assert_allclose(scale_boxes(boxed, (100, 200), ((r, r), pad)), box, atol=1e-9)


def test_coco_eval_perfect_and_shifted(tiny_data):
    data = DataConfig.load(tiny_data)
    ds = DetectionDataset(load_split(data.val, data.nc, warn=False).images, 64)
    gt = ground_truth(ds, data.names)
    perfect = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
               for a in gt["annotations"]]
    assert coco_eval(gt, perfect, range(1, len(ds) + 1)).stats[0] == pytest.approx(1.0)
    shifted = [{**d, "bbox": [d["bbox"][0] + d["bbox"][2] * 0.3, *d["bbox"][1:]]} for d in perfect]
    ap = coco_eval(gt, shifted, range(1, len(ds) + 1)).stats
    assert 0 < ap[0] < 1 and ap[1] == pytest.approx(1.0)  # IoU 0.7 > 0.5: still a hit at AP50


def test_confusion_matrix():
    det = np.array([[0, 0, 10, 10, 0.9, 1], [20, 20, 30, 30, 0.9, 0], [50, 50, 60, 60, 0.1, 0]])
    truth = (np.array([1, 2]), np.array([[0, 0, 10, 10], [20, 20, 30, 30.0]]))
    m = confusion_matrix([det], [truth], nc=3)
    assert m[1, 1] == 1 and m[0, 2] == 1 and m.sum() == 2  # low-confidence box ignored


def test_evaluate_end_to_end(tiny_data, tmp_path):
    data = DataConfig.load(tiny_data)
    ds = DetectionDataset(load_split(data.val, data.nc, warn=False).images, 64, rect=True, batch_size=4, pad=0.5)
    model = build_model("yolov7-tiny", "training", nc=data.nc)
    result = evaluate(model, ds, data.names, batch_size=4, progress=False)
    assert isinstance(result, EvalResult) and set(result.metrics) >= {"AP", "AP50", "APs", "AR100"}
    assert all(-1 <= v <= 1 for v in result.metrics.values())
    assert result.confusion.shape == (data.nc + 1, data.nc + 1) and result.precision.shape == (101, data.nc)
    assert model.training  # mode restored
    result.save(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"metrics.json", "per_class.csv", "detections.json",
                                                   "pr_curve.png", "confusion_matrix.png"}


def test_per_class_metrics_average_to_those_of_all_classes(tiny_data, tmp_path):
    """Each class's AP50, AP and AR100 from pycocotools' accumulated arrays: over the classes with
    labels, their mean is the overall metric (pycocotools averages every class alike); a class without
    labels says -1; the label counts are the dataset's."""
    data = DataConfig.load(tiny_data)
    images = load_split(data.val, data.nc, warn=False).images
    ds = DetectionDataset(images, 64, rect=True, batch_size=4, pad=0.5)
    gt = ground_truth(ds, data.names)
    classes = {a["category_id"] - 1 for a in gt["annotations"]}
    dropped = min(classes)  # a class left without labels: its labels removed from the dataset
    kept = [replace(im, classes=im.classes[im.classes != dropped], boxes=im.boxes[im.classes != dropped],
                    segments=[s for s, c in zip(im.segments, im.classes) if c != dropped])
            for im in images]
    ds = DetectionDataset(kept, 64, rect=True, batch_size=4, pad=0.5)
    torch.manual_seed(0)
    result = evaluate(build_model("yolov7-tiny", "training", nc=data.nc, width=0.25), ds, data.names, batch_size=4,
                      progress=False, conf_thres=0.0)
    rows = {r["class"]: r for r in result.classes}
    assert [r["class"] for r in result.classes] == list(data.names) and result.images == len(kept)
    assert rows[data.names[dropped]] == {"class": data.names[dropped], "images": 0, "labels": 0, "AP50": -1.0,
                                         "AP": -1.0, "AR100": -1.0}
    labelled = [r for r in result.classes if r["labels"]]
    assert sum(r["labels"] for r in labelled) == sum(len(im.classes) for im in kept)
    assert all(r["images"] == sum(bool((im.classes == k).any()) for im in kept)
               for k, r in enumerate(result.classes))
    for metric in ("AP50", "AP", "AR100"):
        assert np.mean([r[metric] for r in labelled]) == pytest.approx(result.metrics[metric], abs=1e-12)
    assert any(r["AR100"] > 0 for r in labelled)  # a model that finds something: the test is not all zeros
    table = result.class_table().splitlines()
    assert table[0].split() == ["class", "images", "labels", "AP50", "AP", "AR100"] and len(table) == data.nc + 2
    assert table[1].split()[:3] == ["all", str(len(kept)), str(sum(r["labels"] for r in labelled))]
    assert table[2 + dropped].split()[1:] == ["0", "0", "-", "-", "-"]
    result.save(tmp_path)
    assert (tmp_path / "per_class.csv").read_text().splitlines()[0] == "class,images,labels,AP50,AP,AR100"


def test_a_coco_json_gives_each_image_its_id_by_file_name(tiny_data, tmp_path):
    """Scored against a COCO annotation file, an image takes the id the file gives its name, not its
    stem read as a number; a name that is neither there nor a number is one clear error."""
    import json

    from yolov7lib.console import UserError
    from yolov7lib.evaluate import coco_image_ids

    data = DataConfig.load(tiny_data)
    images = load_split(data.val, data.nc, warn=False).images
    paths = [im.path for im in images]
    source = json.loads((tiny_data.parent / "annotations" / "instances_val.json").read_text())
    by_name = {im["file_name"]: im["id"] for im in source["images"]}
    assert coco_image_ids(tiny_data.parent / "annotations" / "instances_val.json", paths) == [
        by_name[p.name] for p in paths]
    shifted = {**source, "images": [{**im, "id": im["id"] + 100} for im in source["images"]],
               "annotations": [{**a, "image_id": a["image_id"] + 100} for a in source["annotations"]]}
    (tmp_path / "shifted.json").write_text(json.dumps(shifted))
    assert coco_image_ids(tmp_path / "shifted.json", paths) == [by_name[p.name] + 100 for p in paths]
    ds = DetectionDataset(images, 64, rect=True, batch_size=4, pad=0.5)
    result = evaluate(build_model("yolov7-tiny", "training", nc=data.nc, width=0.25), ds, data.names, batch_size=4,
                      progress=False, coco_json=tmp_path / "shifted.json", category_ids=range(1, data.nc + 1))
    assert {d["image_id"] for d in result.detections} <= {i + 100 for i in by_name.values()}
    unnamed = {**source, "images": [{**im, "file_name": f"x{im['file_name']}"} for im in source["images"]]}
    (tmp_path / "unnamed.json").write_text(json.dumps(unnamed))
    renamed = [p.with_name("a" + p.name) for p in paths]
    with pytest.raises(UserError, match="not among the images of"):
        coco_image_ids(tmp_path / "unnamed.json", renamed)


def test_fp16_evaluation_leaves_the_fp32_weights_exact(tiny_data):
    """Half precision runs on a copy: the caller's FP32 weights (an EMA during training, the Table 10
    model before its FP32 rows) are not rounded to FP16 by an evaluation."""
    data = DataConfig.load(tiny_data)
    ds = DetectionDataset(load_split(data.val, data.nc, warn=False).images, 64, rect=True, batch_size=4, stride=32)
    model = build_model("yolov7-tiny", "training", nc=data.nc, width=0.25)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    evaluate(model, ds, data.names, batch_size=4, half=True, progress=False)
    after = model.state_dict()
    assert all(after[k].dtype == v.dtype and torch.equal(after[k], v) for k, v in before.items())
