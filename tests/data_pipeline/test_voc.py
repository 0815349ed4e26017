"""Pascal VOC datasets through the same checker and training path as YOLO labels: images found by
filename or stem, classes by name, difficult objects left out, sizes checked."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import tiny_config
from PIL import Image

from yolov7lib.data.check import load_split, main
from yolov7lib.data.formats import DataConfig
from yolov7lib.data.labels import parse_labels
from yolov7lib.train import train

NAMES = ["circle", "square", "triangle"]


def voc_xml(filename, size, objects) -> str:
    """A VOC annotation: objects as (name, difficult, (xmin, ymin, xmax, ymax)) in VOC's 1-based pixels."""
    w, h = size
    body = "".join(f"<object><name>{n}</name><difficult>{int(d)}</difficult><bndbox><xmin>{b[0]}</xmin>"
                   f"<ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
                   for n, d, b in objects)
    return (f"<annotation><filename>{filename}</filename><size><width>{w}</width><height>{h}</height>"
            f"<depth>3</depth></size>{body}</annotation>")


@pytest.fixture(scope="module")
def voc(tiny_data, tmp_path_factory):
    """The tiny synthetic dataset exported as VOC; returns (data.yaml, {image id: yolo rows})."""
    root = tmp_path_factory.mktemp("voc") / "VOC"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / sub).mkdir(parents=True)
    yolo = DataConfig.load(tiny_data)
    expected = {}
    for split in ("train", "val"):
        ids = []
        for image in sorted((yolo.root / "images" / split).iterdir()):
            classes, xywh, _, _ = parse_labels(yolo.root / "labels" / split / f"{image.stem}.txt", yolo.nc)
            rows = np.column_stack([classes, xywh])
            ident = f"{split}_{image.stem}"
            w, h = Image.open(image).size
            objects = [(yolo.names[int(c)], False, (round((x - bw / 2) * w + 1, 3), round((y - bh / 2) * h + 1, 3),
                                               round((x + bw / 2) * w + 1, 3), round((y + bh / 2) * h + 1, 3)))
                       for c, x, y, bw, bh in rows]
            shutil.copy(image, root / "JPEGImages" / f"{ident}.jpg")
            (root / "Annotations" / f"{ident}.xml").write_text(voc_xml(f"{ident}.jpg", (w, h), objects))
            ids.append(ident)
            expected[ident] = rows
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    (root.parent / "voc.yaml").write_text("path: VOC\ntrain: ImageSets/Main/train.txt\nval: ImageSets/Main/val.txt\n"
                                          f"names: {yolo.names}\n")
    return root.parent / "voc.yaml", expected


def test_voc_boxes_equal_the_yolo_labels_they_came_from(voc):
    data, expected = voc
    config = DataConfig.load(data)
    rep = load_split(config.train, config.nc, names=config.names, warn=False)
    assert [im.path.stem for im in rep.images] == [k for k in expected if k.startswith("train")] and not rep.problems
    for im in rep.images:
        rows = expected[im.path.stem]
        np.testing.assert_array_equal(im.classes, rows[:, 0])
        np.testing.assert_allclose(im.boxes, rows[:, 1:], atol=2e-4)
    # the cache gives the same on a second read
    again = load_split(config.train, config.nc, names=config.names, warn=False)
    assert [(im.path, im.size) for im in again.images] == [(im.path, im.size) for im in rep.images]


def test_voc_problems_are_found_and_counted(tmp_path, capsys):
    root = tmp_path / "VOC"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / sub).mkdir(parents=True)
    Image.new("RGB", (64, 48)).save(root / "JPEGImages" / "png_export.png")  # the XML says .jpg: found by stem
    Image.new("RGB", (64, 48)).save(root / "JPEGImages" / "tiff_export.tif")
    Image.new("RGB", (48, 64)).save(root / "JPEGImages" / "wrong_size.jpg")
    box = (11, 11, 31, 31)
    (root / "Annotations" / "png_export.xml").write_text(voc_xml("png_export.jpg", (64, 48), [
        ("circle", False, box), ("dog", False, box), ("square", True, box)]))
    (root / "Annotations" / "tiff_export.xml").write_text(voc_xml("", (64, 48), [("triangle", False, box)]))
    (root / "Annotations" / "wrong_size.xml").write_text(voc_xml("wrong_size.jpg", (64, 48), [("circle", False, box)]))
    (root / "Annotations" / "no_image.xml").write_text(voc_xml("no_image.jpg", (64, 48), [("circle", False, box)]))
    (root / "Annotations" / "broken.xml").write_text("<annotation><object>")
    ids = ["png_export", "tiff_export", "wrong_size", "no_image", "broken"]
    for split in ("train", "val"):
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    (tmp_path / "data.yaml").write_text(f"path: VOC\ntrain: ImageSets/Main/train.txt\nval: ImageSets/Main/val.txt\n"
                                        f"names: {NAMES}\n")
    config = DataConfig.load(tmp_path)
    rep = load_split(config.train, config.nc, names=config.names, warn=False)
    assert [(im.path.name, im.classes.tolist()) for im in rep.images] == [("png_export.png", [0]),
                                                                          ("tiff_export.tif", [2])]
    np.testing.assert_allclose(rep.images[0].boxes, [[20 / 64, 20 / 48, 20 / 64, 20 / 48]])
    assert {(action, kind): n for (action, kind), n in rep.summary.items()} == {
        ("skipped", "class name not in names"): 1, ("fixed", "difficult object"): 1,
        ("skipped", "annotation size differs from the image"): 1, ("skipped", "image missing"): 1,
        ("skipped", "label file unreadable"): 1}
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "[train] 2 usable images, 2 objects" in out and "class name not in names: Annotations/png_export.xml" \
        " (object 2: 'dog')" in out


def test_training_reads_a_voc_dataset(voc, tmp_path):
    data, _ = voc
    metrics = train(tiny_config(data, tmp_path, epochs=1, limit_batches=1))
    assert "val/AP50" in metrics
