"""Bad data: a corpus of broken images and labels, each fixed or skipped, counted, never fatal."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pytest
from PIL import Image

from yolov7lib.data.check import DatasetError, load_split, main
from yolov7lib.data.images import load_rgb

GOOD = "0 0.5 0.5 0.2 0.2\n"


def jpeg(mode="RGB", size=(64, 48), exif_orientation=None) -> bytes:
    im = Image.new(mode, size, 128 if mode in ("L", "P", "I;16") else (120, 60, 30)[: len(mode)])
    buf = io.BytesIO()
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        im.save(buf, "JPEG", exif=exif)
    else:
        im.save(buf, "JPEG" if mode in ("RGB", "L") else "PNG")
    return buf.getvalue()


def png16() -> bytes:
    im = Image.fromarray((np.arange(48 * 64).reshape(48, 64) * 20).astype(np.uint16))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


CASES = {  # name: (image bytes or None for missing, label text or bytes or None)
    "good": (jpeg(), GOOD),
    "background_empty_label": (jpeg(), ""),
    "background_no_label": (jpeg(), None),
    "corrupt": (b"\xff\xd8\xff\xe0 this is not a jpeg", GOOD),
    "truncated": (jpeg(size=(256, 256))[:300], GOOD),
    "empty_image": (b"", GOOD),
    "grayscale": (jpeg("L"), GOOD),
    "rgba": (jpeg("RGBA"), GOOD),
    "palette": (jpeg("P"), GOOD),
    "sixteen_bit": (png16(), GOOD),
    "exif_rotated": (jpeg(exif_orientation=6), GOOD),
    "label_binary": (jpeg(), b"\xff\xfe\x00\x81garbage"),
    "outside": (jpeg(), "0 1.5 1.5 0.2 0.2\n" + GOOD),
    "partly_outside": (jpeg(), "0 0.95 0.5 0.2 0.2\n"),
    "zero_size": (jpeg(), "0 0.5 0.5 0.0 0.2\n" + GOOD),
    "negative_size": (jpeg(), "1 0.5 0.5 -0.1 0.2\n" + GOOD),
    "class_too_big": (jpeg(), "7 0.5 0.5 0.2 0.2\n" + GOOD),
    "class_negative": (jpeg(), "-1 0.5 0.5 0.2 0.2\n" + GOOD),
    "class_float": (jpeg(), "1.5 0.5 0.5 0.2 0.2\n" + GOOD),
    "nan": (jpeg(), "0 nan 0.5 0.2 0.2\n" + GOOD),
    "inf": (jpeg(), "0 0.5 inf 0.2 0.2\n" + GOOD),
    "duplicates": (jpeg(), GOOD + GOOD),
    "columns": (jpeg(), "0 0.5 0.5 0.2\n" + GOOD),
    "text": (jpeg(), "person 0.5 0.5 0.2 0.2\n" + GOOD),
    "polygon": (jpeg(), "2 0.1 0.1 0.4 0.1 0.4 0.5 0.1 0.5\n"),
    "byte_order_mark": (jpeg(), "\ufeff" + GOOD),
    "pixels": (jpeg(), "0 32 24 10 10\n" + GOOD),
}
NC = 3


@pytest.fixture
def corpus(tmp_path):
    images, labels = tmp_path / "images" / "train", tmp_path / "labels" / "train"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    listed = []
    for name, (img, lab) in CASES.items():
        path = images / f"{name}.{'png' if name in ('rgba', 'palette', 'sixteen_bit') else 'jpg'}"
        path.write_bytes(img)
        listed.append(path)
        if lab is not None:
            (labels / f"{path.stem}.txt").write_bytes(lab.encode() if isinstance(lab, str) else lab)
    listed.append(images / "missing.jpg")  # named by the list, absent on disk
    (tmp_path / "train.txt").write_text("\n".join(str(p) for p in listed))
    (tmp_path / "data.yaml").write_text(f"path: {tmp_path}\ntrain: train.txt\nval: train.txt\nnc: {NC}\n"
                                        "names: [a, b, c]\n")
    return tmp_path


def check(corpus, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rep = load_split([corpus / "train.txt"], NC, **kw)
    return rep, caught


def test_corpus_has_at_least_20_cases():
    assert len(CASES) + 1 >= 20


def test_every_problem_is_fixed_or_skipped_and_counted(corpus):
    rep, caught = check(corpus)
    kept = {im.path.stem: im for im in rep.images}
    skipped = {"corrupt", "truncated", "empty_image", "label_binary", "missing"}
    assert set(kept) == set(CASES) - skipped
    assert len(rep.problems) >= 20 and len(caught) == 1  # one summary warning, every problem counted in it
    assert "python -m yolov7lib.data.check" in str(caught[0].message)
    assert f"{len(rep.problems)} data problem(s)" in str(caught[0].message)
    kinds = {(a, k) for a, k in rep.summary}
    for expected in [("skipped", "image missing"), ("skipped", "label file unreadable"),
                     ("fixed", "EXIF orientation"), ("fixed", "16-bit image"), ("fixed", "alpha channel"),
                     ("fixed", "non-RGB image"), ("fixed", "duplicate row"), ("fixed", "box partly outside the image"),
                     ("skipped", "box outside the image"), ("skipped", "non-positive box size"),
                     ("skipped", "bad class id"), ("skipped", "NaN or inf"), ("skipped", "malformed row"),
                     ("fixed", "no label file")]:
        assert expected in kinds, expected
    for name in ("outside", "zero_size", "negative_size", "class_too_big", "class_negative", "class_float", "nan",
                 "inf", "duplicates", "columns", "text", "byte_order_mark", "pixels"):
        assert kept[name].classes.tolist() == [0], name  # the bad row gone, the good one kept
    assert kept["partly_outside"].boxes[0, 0] + kept["partly_outside"].boxes[0, 2] / 2 == pytest.approx(1.0)
    assert kept["exif_rotated"].size == (64, 48)  # upright frame: rotated 90 degrees
    assert len(kept["polygon"].segments) == 1 and kept["polygon"].classes.tolist() == [2]
    assert len(kept["background_no_label"].classes) == 0


def test_loaded_images_are_rgb_uint8(corpus):
    for name in ("grayscale", "rgba", "palette", "sixteen_bit", "exif_rotated"):
        path = next((corpus / "images" / "train").glob(f"{name}.*"))
        arr = load_rgb(path)
        assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3
    assert load_rgb(next((corpus / "images" / "train").glob("exif_rotated.*"))).shape[:2] == (64, 48)
    assert load_rgb(next((corpus / "images" / "train").glob("sixteen_bit.*"))).max() > 200


def test_cache_is_keyed_by_content(corpus):
    check(corpus)
    cache = corpus / "labels" / "train.cache.json"
    assert cache.exists()
    (corpus / "labels" / "train" / "good.txt").write_text("1 0.5 0.5 0.2 0.2\n2 0.3 0.3 0.1 0.1\n")
    rep, _ = check(corpus)
    good = next(im for im in rep.images if im.path.stem == "good")
    assert good.classes.tolist() == [1, 2]
    entries = json.loads(cache.read_text())["entries"]
    assert len(entries) == len(CASES) + 1


def test_nothing_usable_is_one_clear_error(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.jpg").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="no usable image"):
        load_split([images], 2, warn=False)


def test_check_cli(corpus, capsys):
    assert main([str(corpus)]) == 0  # a dataset folder holding data.yaml
    out = capsys.readouterr().out
    assert "[train]" in out and "skipped image missing" in out and "box sizes" in out
    assert "coordinates look like pixels" in out and "fixed   no label file" in out
    assert not (corpus / "labels" / "train.cache.json").exists()  # no cache unless asked
    assert main([str(corpus / "data.yaml"), "--cache"]) == 0 and (corpus / "labels" / "train.cache.json").exists()


def test_a_misnamed_labels_folder_is_named_in_one_warning(corpus):
    (corpus / "labels").rename(corpus / "label")
    rep, caught = check(corpus, cache=False)
    assert len(caught) == 1 and "No image has a label file" in str(caught[0].message)
    assert str(corpus / "labels" / "train") in str(caught[0].message)
    assert not any(len(im.classes) for im in rep.images)


@pytest.mark.parametrize("yaml, error", [("train: a\nval: a\n", "give the classes as nc"),
                                         ("train: a\nval: a\nnc: 0\n", "nc must be at least 1"),
                                         ("train: a\nnc: 2\n", "lacks val"),
                                         ("- just\n- a list\n", "is not a data YAML"),
                                         (None, "no data YAML at")])
def test_a_data_yaml_that_cannot_be_right_is_an_error(tmp_path, yaml, error):
    from yolov7lib.console import UserError
    from yolov7lib.data.formats import DataConfig

    if yaml is not None:
        (tmp_path / "data.yaml").write_text(yaml)
    with pytest.raises(UserError, match=error):
        DataConfig.load(tmp_path / "data.yaml")


def test_strict_reader_refuses_bad_rows(tmp_path):
    from yolov7lib.data import read_yolo

    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    (images / "a.jpg").write_bytes(jpeg())
    (labels / "a.txt").write_text("5 0.5 0.5 0.2 0.2\n")
    with pytest.raises(ValueError, match="bad class id"):
        read_yolo([images], NC)
    (labels / "a.txt").write_text("2 0.1 0.1 0.4 0.1 0.4 0.5 0.1 0.5\n")
    (sample,) = read_yolo([images], NC)
    assert sample.classes.tolist() == [2] and len(sample.segments) == 1 and sample.size == (48, 64)


@pytest.mark.parametrize("progressive", [False, True])
def test_fast_jpeg_decoding_gives_opencvs_pixels(tmp_path, progressive):
    """JPEGs decoded through simplejpeg equal OpenCV's ``imread`` bit for bit: chroma subsampling
    4:4:4, 4:2:2 and 4:2:0, greyscale, every EXIF orientation; a fourth channel (255) on request;
    a damaged file falls back to OpenCV."""
    import cv2

    from yolov7lib.data.images import _decode_jpeg

    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(cv2.resize((rng.random((31, 43, 3)) * 255).astype(np.uint8), (83, 61)), (5, 5), 0)
    for subsampling in (0, 1, 2):
        for orientation in (None, *range(1, 9)):
            for mode in ("RGB", "L"):
                path = tmp_path / f"{subsampling}{orientation}{mode}.jpg"
                kw = dict(quality=90, subsampling=subsampling, progressive=progressive)
                if orientation:
                    kw["exif"] = Image.Exif()
                    kw["exif"][0x0112] = orientation
                Image.fromarray(base).convert(mode).save(path, "JPEG", **kw)
                reference = cv2.imread(str(path), cv2.IMREAD_COLOR)
                assert _decode_jpeg(path.read_bytes(), "BGR") is not None
                assert np.array_equal(load_rgb(path, bgr=True), reference), path.name
                assert np.array_equal(load_rgb(path), reference[..., ::-1]), path.name
                four = load_rgb(path, bgr=True, channels=4)
                assert np.array_equal(four[..., :3], reference) and (four[..., 3] == 255).all()
    damaged = tmp_path / "damaged.jpg"
    damaged.write_bytes(path.read_bytes()[:-200])
    assert _decode_jpeg(damaged.read_bytes(), "BGR") is None
    assert np.array_equal(load_rgb(damaged, bgr=True), cv2.imread(str(damaged), cv2.IMREAD_COLOR))
