"""The embedded synthetic dataset: deterministic, both formats agree, COCO-like content."""

from __future__ import annotations

import json

import numpy as np
import pytest

from yolov7lib.data import DataConfig, read_coco, read_yolo
from yolov7lib.data.synthetic import CLASSES, generate, main, render


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    generate(out, train=48, val=16, size=256, seed=3, workers=2)
    return out


def test_layout_and_data_yaml(dataset):
    cfg = DataConfig.load(dataset / "data.yaml")
    assert cfg.nc == len(CLASSES) >= 8 and cfg.names == list(CLASSES)
    assert len(list((dataset / "images" / "train").glob("*.jpg"))) == 48
    assert len(list((dataset / "labels" / "val").glob("*.txt"))) == 16
    assert (dataset / "annotations" / "instances_val.json").exists()


def test_yolo_and_coco_labels_agree(dataset):
    cfg = DataConfig.load(dataset / "data.yaml")
    yolo = read_yolo(cfg.train, cfg.nc)
    coco, names, cat_ids = read_coco(dataset / "annotations" / "instances_train.json")
    assert names == list(CLASSES) and cat_ids == list(range(1, len(CLASSES) + 1))
    assert len(yolo) == len(coco) == 48
    for y, c in zip(yolo, coco):
        assert y.image.name == c.image.name and c.image.exists()
        np.testing.assert_array_equal(y.classes, c.classes)
        np.testing.assert_allclose(y.boxes, c.boxes, atol=0.02)
        assert len(c.segments) == len(c.classes)


def test_polygons_are_closed_so_resampling_traces_every_side(dataset):
    """Each polygon ends on its first vertex, so the official resampling (first vertex to last) reaches
    every side: a window on a square's left side holds points of the closed outline, none of the open."""
    from yolov7lib.data.augment import resample_segments

    cfg = DataConfig.load(dataset / "data.yaml")
    segments = [s for sample in read_yolo(cfg.train, cfg.nc) for s in sample.segments]
    assert len(segments) > 100 and all(np.array_equal(s[0], s[-1]) for s in segments)
    square = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]])
    for outline in (square, np.concatenate((square, square[:1]))):
        points = resample_segments([outline])[0]
        window = points[(points[:, 0] <= 3) & (points[:, 1] >= 3) & (points[:, 1] <= 7)]  # the left side's middle
        if len(outline) == 4:
            assert len(window) == 0  # open: the left side is never traced, a crop there loses the object
        else:
            assert window[:, 0].max() == 0 and window[:, 1].min() < 3.1 and window[:, 1].max() > 6.9


def test_deterministic_whatever_the_workers(tmp_path):
    generate(tmp_path / "a", train=6, val=2, size=128, seed=7, workers=1)
    generate(tmp_path / "b", train=6, val=2, size=128, seed=7, workers=2)
    for split in ("train", "val"):
        a = json.loads((tmp_path / "a" / "annotations" / f"instances_{split}.json").read_text())
        b = json.loads((tmp_path / "b" / "annotations" / f"instances_{split}.json").read_text())
        assert a == b
    image = "images/train/000003.jpg"
    assert (tmp_path / "a" / image).read_bytes() == (tmp_path / "b" / image).read_bytes()


def test_content_statistics():
    counts, sizes, empty = [], [], 0
    for i in range(120):
        _, anns = render(11, "train", i, 640)
        counts.append(len(anns))
        empty += not anns
        sizes += [np.sqrt((a.box[2] - a.box[0]) * (a.box[3] - a.box[1])) for a in anns]
    sizes = np.asarray(sizes)
    assert max(counts) <= 20 and empty >= 1
    small, large = (sizes < 32).mean(), (sizes > 96).mean()
    assert 0.2 < small < 0.6 and 0.1 < large < 0.5, (small, large)
    classes = {a.cls for i in range(40) for a in render(11, "val", i, 640)[1]}
    assert classes == set(range(len(CLASSES)))


def test_cli(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--train", "3", "--val", "2", "--size", "96", "--seed", "1"]) == 0
    assert "wrote 5 images" in capsys.readouterr().out


def test_sizes_are_coco_like_at_the_default_320_px():
    areas = np.asarray([(a.box[2] - a.box[0]) * (a.box[3] - a.box[1])
                        for i in range(150) for a in render(0, "val", i, 320)[1]])
    small, large = (areas < 32**2).mean(), (areas >= 96**2).mean()
    assert 0.35 < small < 0.5 and 0.15 < large < 0.3, (small, large)  # COCO: 0.41, 0.24
    assert (np.sqrt(areas) < 6).mean() < 0.02  # nothing under 10 px but where the image border cuts it


def test_every_object_in_sight_is_labelled_and_blobs_never_look_like_one(monkeypatch):
    """Objects hidden by more than 60 % are not drawn at all (no unlabelled fragments); distractor
    blobs are greyish, objects saturated."""
    import colorsys

    import yolov7lib.data.synthetic as synthetic

    drawn, masks = [], []
    real_draw = synthetic.ImageDraw.Draw

    class CountingDraw:
        def __init__(self, im):
            self.draw = real_draw(im)

        def polygon(self, xy, fill=None, outline=None):
            (masks if outline is None else drawn).append(xy)  # objects have an outline, masks not
            return self.draw.polygon(xy, fill=fill, outline=outline)

        def __getattr__(self, name):
            return getattr(self.draw, name)

    monkeypatch.setattr(synthetic.ImageDraw, "Draw", CountingDraw)
    labelled = 0
    for i in range(30):
        drawn.clear()
        _, anns = render(2, "train", i, 256)
        assert len(drawn) == len(anns)
        labelled += len(anns)
    assert len(masks) > labelled  # some objects of the layouts were too hidden to be drawn
    rng = np.random.default_rng(0)
    for _ in range(200):
        s_blob = colorsys.rgb_to_hsv(*(c / 255 for c in synthetic._distractor_colour(rng)))[1]
        s_object = colorsys.rgb_to_hsv(*(c / 255 for c in synthetic._class_colour(rng, 3)))[1]
        assert s_blob < 0.32 < 0.53 < s_object


def test_an_easier_scene_for_small_images(tmp_path):
    """The cpu profile's setting: fewer classes, fewer and larger objects; the data YAML and the COCO
    categories name only those classes."""
    from yolov7lib.data.synthetic import Scene

    scene = Scene(classes=3, max_objects=4, min_side=20)
    counts, sides = [], []
    for i in range(60):
        _, anns = render(5, "train", i, 128, scene)
        counts.append(len(anns))
        assert {a.cls for a in anns} <= {0, 1, 2}
        sides += [max(a.box[2] - a.box[0], a.box[3] - a.box[1]) for a in anns]
    assert max(counts) <= 4 and min(sides) > 12  # long sides from 20 px, rotated and clipped a little
    generate(tmp_path, train=4, val=2, size=128, seed=5, workers=1, scene=scene)
    assert DataConfig.load(tmp_path / "data.yaml").names == list(CLASSES[:3])
    coco = json.loads((tmp_path / "annotations" / "instances_val.json").read_text())
    assert [c["name"] for c in coco["categories"]] == list(CLASSES[:3])
    with pytest.raises(ValueError, match="classes must be 1 to 8"):
        Scene(classes=9)

