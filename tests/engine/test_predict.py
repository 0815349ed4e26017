"""Detection on images, videos and globs: the predict() API and ``yolov7 detect``, which keeps every
output and writes its detections even when an input cannot be read."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
import torch

from yolov7lib.checkpoint import load_any
from yolov7lib.cli import main as cli
from yolov7lib.data.images import Video, load_rgb
from yolov7lib.postprocess import non_max_suppression
from yolov7lib.predict import Detections, predict, predict_source
from yolov7lib.reparam import fuse

DETECT = ["--img", "64", "--conf-thres", "0.0001"]


@pytest.fixture(scope="module")
def weights(trained) -> str:
    return str(trained[0].save_dir / "weights" / "best.pt")


@pytest.fixture(scope="module")
def model(weights):
    return fuse(load_any(weights)).eval().to(memory_format=torch.channels_last)


@pytest.fixture(scope="module")
def images(tiny_data):
    return sorted((tiny_data.parent / "images" / "val").iterdir())


def write_video(path, images, size=(64, 48)):
    """A short video of the given images (resized), written by OpenCV as the user's camera would."""
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, 10.0, size)
    for image in images:
        writer.write(cv2.resize(load_rgb(image, bgr=True), size))
    writer.release()
    return path


def test_predict_returns_boxes_scores_and_names(model, images):
    bgr = load_rgb(images[0], bgr=True)
    det = predict(model, bgr, 64, 0.0001)
    assert isinstance(det, Detections) and len(det) > 0 and det.frame is None
    assert det.names == tuple(model.config.names[c] for c in det.classes)
    h, w = bgr.shape[:2]  # in the image's own pixels
    assert (det.boxes >= 0).all() and (det.boxes[:, [0, 2]] <= w).all() and (det.boxes[:, [1, 3]] <= h).all()
    assert (np.diff(det.scores) <= 0).all() and det.records()[0].keys() == {"class", "name", "score", "box_xyxy"}


def test_predict_feeds_the_official_detect_input_and_one_class_per_box(model, images):
    """``--img 60`` becomes 64 (the stride's multiple); a 40 x 100 image is scaled up to 64 wide and
    padded to 32 high, as the official ``detect.py`` does; each box keeps only its best class."""
    seen = []

    class Spy(torch.nn.Module):
        head = model.head

        def forward(self, x):
            seen.append(x)
            return model(x)

    bgr = cv2.resize(load_rgb(images[0], bgr=True), (100, 40))
    spy = Spy()
    spy.register_parameter("w", next(model.parameters()))  # the input follows the model's weights
    det = predict(spy, bgr, 60, 0.0001)
    assert [tuple(x.shape) for x in seen] == [(1, 3, 32, 64)]
    with torch.no_grad():
        raw = model(seen[0])[0]
    one, every = (len(non_max_suppression(raw, 0.0001, 0.45, multi_label=m)[0]) for m in (False, True))
    assert len(det) == one < every


def test_detect_keeps_same_named_files_and_survives_a_broken_image(weights, model, images, tmp_path, capsys):
    for folder in ("a", "b"):  # two folders with the same file names
        (tmp_path / "src" / folder).mkdir(parents=True)
        for image in images[:3]:
            shutil.copy(image, tmp_path / "src" / folder / image.name)
    (tmp_path / "src" / "b" / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "det"
    status = cli(["detect", "--weights", weights, "--source", str(tmp_path / "src" / "a"), str(tmp_path / "src" / "b"),
                  *DETECT, "--out", str(out)])
    assert status == 2 and "1 of 7 inputs could not be read" in capsys.readouterr().err
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("0*.jpg"))
    assert written == sorted(f"{f}/{i.name}" for f in "ab" for i in images[:3])
    records = json.loads((out / "detections.json").read_text())  # written although one input failed
    assert {r["image"] for r in records} == {str(tmp_path / "src" / f / i.name) for f in "ab" for i in images[:3]}
    first = [r for r in records if r["image"] == str(tmp_path / "src" / "a" / images[0].name)]
    det = predict(model, load_rgb(images[0], bgr=True), 64, 0.0001)
    np.testing.assert_allclose([r["box_xyxy"] for r in first], det.boxes, atol=0.01)
    assert [r["name"] for r in first] == list(det.names)
    # the same --out again: a new folder, the first run's files untouched
    cli(["detect", "--weights", weights, "--source", str(tmp_path / "src" / "a"), *DETECT, "--out", str(out)])
    assert (tmp_path / "det2" / "detections.json").exists() and len(list(out.rglob("0*.jpg"))) == 6


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_detect_on_videos_through_a_glob(weights, model, images, tmp_path, suffix, monkeypatch):
    clips = tmp_path / "clips"
    clips.mkdir()
    write_video(clips / f"one{suffix}", images[:4])
    write_video(clips / f"two{suffix}", images[2:5])
    out = tmp_path / "det"
    opened: list[str] = []
    capture = cv2.VideoCapture
    monkeypatch.setattr(cv2, "VideoCapture", lambda path, *a: opened.append(path) or capture(path, *a))
    assert cli(["detect", "--weights", weights, "--source", str(clips / f"*{suffix}"), *DETECT, "--out", str(out)]) == 0
    monkeypatch.undo()
    assert sorted(opened) == [str(clips / f"{name}{suffix}") for name in ("one", "one", "two", "two")]  # header, frames
    lines = [json.loads(line) for line in (out / "detections.jsonl").read_text().splitlines()]
    assert [(line["video"], line["frame"]) for line in lines] == [
        (str(clips / f"{name}{suffix}"), i) for name, n in (("one", 4), ("two", 3)) for i in range(n)]
    for name, n in (("one", 4), ("two", 3)):  # annotated copies: same frame count and size
        video = Video.open(out / f"{name}{suffix}")
        assert (video.frames, video.width, video.height) == (n, 64, 48) and len(list(video)) == n
    # the Python API finds the same per frame, with class names
    found = list(predict_source(model, clips / f"one{suffix}", 64, 0.0001))
    assert [d.frame for d in found] == [0, 1, 2, 3] and sum(map(len, found)) > 0
    for det, line in zip(found, lines):
        assert [r["name"] for r in line["detections"]] == list(det.names)
        np.testing.assert_allclose([r["box_xyxy"] for r in line["detections"]], det.boxes.reshape(-1, 4), atol=0.01)


def test_detect_saves_yolo_labels_of_the_classes_asked_for(weights, model, images, tmp_path):
    """``--save-txt`` (``--save-conf``): a YOLO label file per image with detections, one line each,
    normalised to the image, equal to the boxes of detections.json; ``--classes`` keeps only those
    classes; ``--nosave`` writes no annotated copies; a video frame's labels are STEM_FRAME.txt."""
    (tmp_path / "src").mkdir()
    for image in images[:3]:
        shutil.copy(image, tmp_path / "src" / image.name)
    write_video(tmp_path / "src" / "clip.avi", images[:2])
    found = [predict(model, load_rgb(i, bgr=True), 64, 0.0001) for i in images[:3]]
    wanted = sorted({int(c) for det in found for c in det.classes})[:2]  # two classes that are found
    out = tmp_path / "det"
    assert cli(["detect", "--weights", weights, "--source", str(tmp_path / "src"), *DETECT, "--classes",
                *map(str, wanted), "--save-txt", "--save-conf", "--nosave", "--out", str(out)]) == 0
    assert not list(out.rglob("*.jpg")) and not list(out.rglob("*.avi"))  # --nosave
    records = json.loads((out / "detections.json").read_text())
    assert records and {r["class"] for r in records} <= set(wanted)
    for image in images[:3]:
        rows = [r for r in records if r["image"] == str(tmp_path / "src" / image.name)]
        label = out / "labels" / f"{image.stem}.txt"
        assert label.exists() == bool(rows)
        if rows:
            h, w = load_rgb(image).shape[:2]
            lines = np.loadtxt(label, ndmin=2)
            xyxy = np.array([r["box_xyxy"] for r in rows])
            xywhn = np.c_[(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]] / [w, h, w, h]
            assert lines[:, 0].tolist() == [r["class"] for r in rows]
            np.testing.assert_allclose(lines[:, 1:5], xywhn, atol=1e-3)
            np.testing.assert_allclose(lines[:, 5], [r["score"] for r in rows], atol=1e-5)
    frames = [json.loads(line) for line in (out / "detections.jsonl").read_text().splitlines()]
    assert sorted(p.name for p in (out / "labels").glob("clip_*.txt")) == [
        f"clip_{f['frame']}.txt" for f in frames if f["detections"]]


def test_detect_refuses_a_class_the_model_does_not_have(weights, tmp_path, capsys):
    assert cli(["detect", "--weights", weights, "--source", str(tmp_path), "--classes", "8"]) == 2
    assert "--classes 8:" in capsys.readouterr().err


def test_a_glob_that_matches_nothing_is_one_line(weights, tmp_path, capsys):
    assert cli(["detect", "--weights", weights, "--source", str(tmp_path / "*.mp4")]) == 2
    assert capsys.readouterr().err.startswith("error: no file matches")
