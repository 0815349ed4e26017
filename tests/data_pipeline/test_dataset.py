"""The augmentation recipe and the validation protocol, on the synthetic dataset."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from yolov7lib.data.augment import letterbox, random_perspective
from yolov7lib.data.check import load_split
from yolov7lib.data.dataset import DetectionDataset
from yolov7lib.data.synthetic import generate
from yolov7lib.hyp import HYPS, P5, TINY


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds")
    generate(out, train=12, val=6, size=160, seed=5, workers=1)
    return load_split([out / "images" / "train"], 8, warn=False).images


def test_hyp_presets():
    assert HYPS["p6"].lrf == 0.2 and HYPS["p5"].lrf == 0.1
    assert (TINY.cls, TINY.obj, TINY.scale, TINY.mixup) == (0.5, 1.0, 0.5, 0.05)
    assert P5.loss().cls == 0.3


def test_training_samples_are_deterministic_and_valid(split):
    ds = DetectionDataset(split, img_size=128, hyp=P5, augment=True, seed=1)
    for i in range(len(ds)):
        img, targets, _, _ = ds[i]
        assert img.shape == (3, 128, 128) and img.dtype == torch.uint8
        assert ((targets[:, 2:] >= 0) & (targets[:, 2:] <= 1)).all()
        assert (targets[:, 4:] > 0).all() and (targets[:, 1] < 8).all()
    a, b = ds[3], ds[3]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    ds.set_epoch(1)
    assert not torch.equal(ds[3][0], a[0])


def test_mosaic_gathers_objects_from_several_images(split):
    ds = DetectionDataset(split, img_size=128, hyp=P5, augment=True, seed=2)
    counts = [len(ds[i][1]) for i in range(len(ds))]
    singles = [len(im.classes) for im in split]
    assert max(counts) > max(singles) or sum(counts) > sum(singles)


def test_validation_rect_batches_with_pad(split):
    ds = DetectionDataset(split, img_size=160, augment=False, rect=True, batch_size=4, pad=0.5)
    img, targets, _, shapes = ds[0]
    assert img.shape[1] % 32 == 0 and img.shape[2] % 32 == 0
    assert max(img.shape[1:]) == 192  # ceil(160 / 32 + 0.5) * 32: the official 672 at 640
    (h0, w0), ((rh, rw), (padw, padh)) = shapes
    assert (h0, w0) == ds.images[0].size and rh == pytest.approx(1.0) and padw >= 0
    images, batch_targets, paths, _ = DetectionDataset.collate([ds[0], ds[1]])
    assert images.shape[0] == 2 and len(paths) == 2
    assert set(batch_targets[:, 0].tolist()) <= {0.0, 1.0}


def test_letterbox_keeps_boxes_aligned():
    img = np.zeros((100, 200, 3), np.uint8)
    out, r, (dw, dh) = letterbox(img, 128)
    assert out.shape == (128, 128, 3) and r == pytest.approx(0.64) and dh == pytest.approx(32.0)


def test_perspective_moves_boxes_with_the_image():
    rng = np.random.default_rng(0)
    img = np.zeros((100, 100, 3), np.uint8)
    img[40:60, 20:50] = 255
    labels = np.array([[0, 20.0, 40.0, 50.0, 60.0]])
    out, new = random_perspective(img, labels, [], rng, translate=0.1, scale=0.3)
    ys, xs = np.nonzero(out[..., 0] > 127)
    assert new[0, 1] == pytest.approx(xs.min(), abs=2) and new[0, 3] == pytest.approx(xs.max() + 1, abs=2)
    assert new[0, 2] == pytest.approx(ys.min(), abs=2) and new[0, 4] == pytest.approx(ys.max() + 1, abs=2)


def test_loader_with_workers_matches_single_process(split):
    ds = DetectionDataset(split, img_size=96, hyp=P5, augment=True, seed=3)
    single = [ds[i][1] for i in range(4)]
    loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=2, collate_fn=DetectionDataset.collate)
    multi = [t for _, t, _, _ in list(loader)[:4]]
    for a, b in zip(single, multi):
        torch.testing.assert_close(a[:, 1:], b[:, 1:])


def test_paste_in_adds_objects_in_free_places(split):
    from dataclasses import replace

    plain = DetectionDataset(split, img_size=128, hyp=replace(P5, paste_in=0.0, mixup=0.0), augment=True, seed=4)
    pasted = DetectionDataset(split, img_size=128, hyp=replace(P5, paste_in=1.0, mixup=0.0), augment=True, seed=4)
    more = 0
    for i in range(len(split)):
        a, b = plain[i][1], pasted[i][1]
        assert len(b) >= len(a)
        more += len(b) - len(a)
        assert ((b[:, 2:] >= 0) & (b[:, 2:] <= 1)).all()
    assert more > 0


def test_paste_in_unit():
    from yolov7lib.boxes import box_ioa
    from yolov7lib.data.augment import cut_out, paste_in

    rng = np.random.default_rng(0)
    src = np.zeros((200, 200, 3), np.uint8)
    src[50:150, 50:150] = 200
    square = np.array([[50, 50], [149, 50], [149, 149], [50, 149]], np.float32)
    cutouts = cut_out(src, np.array([[3, 50.0, 50.0, 150.0, 150.0]]), [square], rng, fraction=1.0)
    assert len(cutouts) == 1 and cutouts[0][0] == 3 and (cutouts[0][1] == 200).all()
    img = np.zeros((300, 300, 3), np.uint8)
    existing = np.array([[1, 0.0, 0.0, 100.0, 100.0]])
    labels = paste_in(img, existing, cutouts, rng)
    assert len(labels) > 1 and (labels[1:, 0] == 3).all()
    for row in labels[1:]:
        x1, y1, x2, y2 = row[1:].astype(int)
        assert img[y1:y2, x1:x2].max() == 200  # the pasted pixels are there
        assert box_ioa(row[1:], existing[:, 1:])[0] < 0.3


def test_segments_resample_as_the_official_interp():
    """All polygons at once, bit for bit what np.interp over each polygon's vertex index gives (the
    official ``resample_segments``: first to last vertex, no closing edge)."""
    from yolov7lib.data.augment import resample_segments

    rng = np.random.default_rng(0)
    for _ in range(50):
        segments = [rng.uniform(0, 640, (rng.integers(1, 40), 2)) for _ in range(rng.integers(1, 8))]
        expected = []
        for s in segments:
            x = np.linspace(0, len(s) - 1, 100)
            expected.append(np.stack([np.interp(x, np.arange(len(s)), s[:, i]) for i in range(2)], 1))
        assert np.array_equal(resample_segments(segments, 100), np.stack(expected))
    assert resample_segments([], 100).shape == (0, 100, 2)


def test_hsv_and_mixup_keep_the_recipe():
    from yolov7lib.data.augment import augment_hsv, mixup

    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    other = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    # the official formulation: split the HSV image, one LUT per channel, merge
    gains = np.random.default_rng(3).uniform(-1, 1, 3) * [0.015, 0.7, 0.4] + 1
    x = np.arange(0, 256, dtype=np.int16)
    tables = [((x * gains[0]) % 180), np.clip(x * gains[1], 0, 255), np.clip(x * gains[2], 0, 255)]
    channels = cv2.split(cv2.cvtColor(img, cv2.COLOR_RGB2HSV))
    hsv = cv2.merge([cv2.LUT(c, t.astype(np.uint8)) for c, t in zip(channels, tables)])
    assert np.array_equal(augment_hsv(img, np.random.default_rng(3)), cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB))
    r = np.random.default_rng(5).beta(8.0, 8.0)
    mixed, labels = mixup(img, np.ones((2, 5)), other, np.zeros((1, 5)), np.random.default_rng(5))
    assert np.abs(mixed.astype(int) - (img * r + other * (1 - r)).astype(np.uint8)).max() <= 1
    assert len(labels) == 3


@pytest.mark.parametrize("augment", [True, False])
def test_cached_images_give_the_same_samples(split, augment):
    """``cache_images`` holds each image decoded and resized once, read-only, and changes no sample
    (mosaic 4 and 9, MixUp, paste-in, the plain path; rect validation)."""
    hyp = replace(P5, mixup=0.5, paste_in=0.5, mosaic=0.7)
    kw = dict(img_size=128, hyp=hyp, augment=augment, rect=not augment, batch_size=4, seed=2)
    plain, cached = DetectionDataset(split, **kw), DetectionDataset(split, cache_images=True, **kw)
    assert cached._cache is not None and not cached.load_image(0)[0].flags.writeable
    assert cached.load_image(0)[0].shape[:2] == plain.load_image(0)[2]
    for epoch in range(2):
        plain.set_epoch(epoch)
        cached.set_epoch(epoch)
        for i in range(len(plain)):
            a, b = plain[i], cached[i]
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[3] == b[3]


def test_image_cache_that_would_not_fit_is_skipped_with_a_warning(split, monkeypatch):
    monkeypatch.setattr("yolov7lib.data.dataset._available_memory", lambda: 10_000)
    with pytest.warns(RuntimeWarning, match="reading them from disk"):
        ds = DetectionDataset(split, img_size=128, cache_images=True)
    assert ds._cache is None and ds[0][0].shape[0] == 3


def test_warp_pads_colour_to_four_channels_and_inverts_as_opencv():
    """warp_image's fast path (4 channels, our own inverse, a cropped source) gives OpenCV's plain
    3-channel warp bit for bit, affine and perspective."""
    from yolov7lib.data.augment import warp_image

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (150, 170, 3), dtype=np.uint8)
    for _ in range(10):
        m = np.eye(3)
        m[:2] += rng.normal(0, 0.1, (2, 3)) * [1, 1, 0]
        m[:2, 2] = rng.uniform(-40, 20, 2)
        plain = cv2.warpAffine(img, m[:2], (96, 80), borderValue=(114,) * 3)
        assert np.array_equal(warp_image(img, m, (80, 96)), plain)
        m[2, :2] = rng.uniform(-1e-3, 1e-3, 2)
        plain = cv2.warpPerspective(img, m, (96, 80), borderValue=(114,) * 3)
        assert np.array_equal(warp_image(img, m, (80, 96), perspective=True), plain)


def test_warp_labels_drops_outlines_outside_without_changing_the_rest():
    """The affine path drops outlines whose vertices all land outside before resampling them; the
    perspective path (no shortcut; division by exactly 1 here) keeps the reference result."""
    from yolov7lib.data.augment import perspective_matrix, warp_labels

    rng = np.random.default_rng(1)
    kept = 0
    for _ in range(20):
        centres = rng.uniform(0, 256, (30, 2))
        segments = [c + rng.uniform(-20, 20, (int(rng.integers(4, 12)), 2)) for c in centres]
        labels = np.column_stack([rng.integers(0, 8, 30), [np.r_[s.min(0), s.max(0)] for s in segments]])
        m, gain, out_hw = perspective_matrix(rng, 256, 256, 10, 0.2, 0.9, 5, 0.0, (-64, -64))
        fast = warp_labels(labels.copy(), segments, m, gain, out_hw)
        reference = warp_labels(labels.copy(), segments, m, gain, out_hw, perspective=True)
        assert np.array_equal(fast, reference)
        kept += len(fast)
    assert 0 < kept < 20 * 30


def test_mosaics_paint_only_what_the_warp_reads(split, monkeypatch):
    """Mosaics of 4 and 9 painted only where the warp reads (source_region) equal those painted
    whole: the same labels and pixels (up to OpenCV's float32 rounding of source coordinates at a
    few pixels), with fewer images decoded."""
    import yolov7lib.data.dataset as dataset_module

    hyp = replace(P5, mixup=0.3, paste_in=0.0, degrees=10.0, shear=3.0)
    ds = DetectionDataset(split, img_size=128, hyp=hyp, augment=True, seed=6)
    decoded = []
    read = ds._read_image
    monkeypatch.setattr(ds, "_read_image", lambda i, *args: decoded.append(i) or read(i, *args))
    samples = [ds[i] for i in range(len(ds))]
    ds.set_epoch(1)
    samples += [ds[i] for i in range(len(ds))]
    fast_decodes = len(decoded)
    decoded.clear()
    monkeypatch.setattr(dataset_module.aug, "source_region", lambda m, out_hw, in_hw: (0, 0, in_hw[1], in_hw[0]))
    ds.set_epoch(0)
    whole = [ds[i] for i in range(len(ds))]
    ds.set_epoch(1)
    whole += [ds[i] for i in range(len(ds))]
    assert fast_decodes < len(decoded)
    differing = 0
    for a, b in zip(samples, whole):
        assert torch.equal(a[1], b[1])
        diff = (a[0].int() - b[0].int()).abs()
        differing += int((diff > 0).sum())
    assert differing <= 1e-3 * sum(a[0].numel() for a in samples)


def test_an_image_changed_since_the_check_is_a_clear_error(split, tmp_path):
    import shutil

    path = tmp_path / "a.jpg"
    shutil.copy(split[0].path, path)
    stale = replace(split[0], path=path, size=(split[0].size[0] + 10, split[0].size[1]))
    ds = DetectionDataset([stale] * 4, img_size=128, hyp=replace(P5, mosaic=1.0), augment=True)
    with pytest.raises(ValueError, match="changed since the check"):
        ds[0]


def official(module: str):
    """A module of the official code (the benchmark peer, installed by ``make test``), else skip."""
    pytest.importorskip("yolov7_package")
    np.int = int  # removed from NumPy, still used by the official code
    return __import__(f"yolov7_package.utils.{module}", fromlist=["_"])


class Draws:
    """One list of uniforms in [0, 1) read in turn by our Generator calls and the official code's
    ``random`` calls, so both make the same draws."""

    def __init__(self, values):
        self.values = list(values)

    def uniform(self, low=0.0, high=1.0, size=None):
        if size is not None:
            return np.array([self.uniform(low, high) for _ in range(size)])
        return low + self.values.pop(0) * (high - low)

    def random(self):
        return self.values.pop(0)

    def integers(self, low, high):
        return low + int(self.values.pop(0) * (high - low))

    def randint(self, low, high):
        return self.integers(low, high + 1)

    def permutation(self, n):
        left = list(range(n))
        return np.array([left.pop(int(self.values.pop(0) * len(left))) for _ in range(n)])


@pytest.mark.parametrize("hw", [(720, 1280), (200, 300), (480, 640), (37, 901), (640, 640)])
@pytest.mark.parametrize("size, stride", [(640, 32), (1280, 64)])
def test_letterbox_for_detect_equals_the_official(hw, size, stride):
    """``auto``: the longer side to ``size``, the other padded to the next multiple of ``stride``,
    centred, upscaling allowed: the official ``detect.py`` input, pixel for pixel."""
    img = np.random.default_rng(0).integers(0, 256, (*hw, 3), dtype=np.uint8)
    ours, r, pad = letterbox(img, size, auto=True, stride=stride)
    theirs, (r0, _), pad0 = official("datasets").letterbox(img, size, stride=stride)
    assert np.array_equal(ours, theirs) and r == r0 and pad == pad0
    assert ours.shape[0] % stride == 0 and ours.shape[1] % stride == 0


def test_warp_without_mosaic_moves_box_corners_as_officially(split, monkeypatch):
    """Without mosaic, a sample's random warp moves the boxes' corners, not the polygons (area
    threshold 0.1), as the official ``__getitem__`` does: with the same draws the labels are equal."""
    import yolov7lib.data.dataset as dataset

    od = official("datasets")
    hyp = replace(P5, mosaic=0.0, degrees=20.0, shear=5.0, hsv_h=0.0, hsv_s=0.0, hsv_v=0.0, fliplr=0.0, paste_in=0.0)
    ds = DetectionDataset(split, img_size=128, hyp=hyp, augment=True)
    rng = np.random.default_rng(1)
    for i in range(len(split)):
        img, _, (h, w) = ds.load_image(i)
        img, r, (padw, padh) = letterbox(img, 128)
        labels, segments = ds._labels(i, r * w, r * h, padw, padh)
        assert len(segments) == len(labels) > 0  # the synthetic labels are polygons
        values = rng.uniform(0, 1, 8)
        monkeypatch.setattr(od.random, "uniform", Draws(values).uniform)
        _, theirs = od.random_perspective(img, labels.copy(), degrees=hyp.degrees, translate=hyp.translate,
                                          scale=hyp.scale, shear=hyp.shear, perspective=hyp.perspective)
        # ours: the mosaic draw, the warp's 8, HSV's 3, paste-in's and the flips'
        monkeypatch.setattr(dataset.np.random, "default_rng", lambda seed, v=values: Draws([0.5, *v, *[0.5] * 6]))
        ours = ds[i][1].numpy()
        xyxy = theirs[:, 1:] / 128
        expected = np.stack((theirs[:, 0], (xyxy[:, 0] + xyxy[:, 2]) / 2, (xyxy[:, 1] + xyxy[:, 3]) / 2,
                             xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]), 1)
        np.testing.assert_allclose(ours[:, 1:], expected, atol=1e-6)


def test_cut_outs_and_paste_in_equal_the_official(monkeypatch):
    """Cut-outs (black outside the polygon, 0 channels set to 255, the box truncated) equal the
    official ``sample_segments``'s, and pasting them, with the same draws, the official ``pastein``:
    the crop is its own mask channel by channel (officially its mask is an aliased view of it), and a
    thin object (a 3-pixel sliver) is pasted when over 60 channel values pass."""
    from yolov7lib.data.augment import cut_out, paste_in

    od = official("datasets")
    rng = np.random.default_rng(0)
    canvas = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    canvas[rng.random((240, 320)) < 0.05] = 0  # black pixels inside objects too
    segments = [np.array([[20.3, 30.7], [110.2, 35.1], [90.6, 120.9], [25.5, 100.2]], np.float32),
                np.array([[150.0, 20.0], [153.0, 20.0], [233.0, 200.0], [230.0, 200.0]], np.float32)]
    labels = np.array([[k, *s.min(0), *s.max(0)] for k, s in enumerate(segments)], np.float32)
    monkeypatch.setattr(od.random, "sample", lambda population, k: list(population)[:k])
    classes, crops, _ = od.sample_segments(canvas.copy(), labels, segments, probability=1.0)
    ours = cut_out(canvas, labels, segments, Draws([0.0] * 10), fraction=1.0)
    assert [c for c, _ in ours] == classes and all(np.array_equal(a, b) for (_, a), b in zip(ours, crops))
    for seed in range(20):
        values = list(np.random.default_rng(seed).uniform(0, 1, 200))
        draws = Draws(values)
        monkeypatch.setattr(od.random, "randint", draws.randint)
        monkeypatch.setattr(od.random, "random", draws.random)
        background = np.full((300, 400, 3), 90, np.uint8)
        theirs_img, ours_img = background.copy(), background.copy()
        theirs = od.pastein(theirs_img, np.zeros((0, 5)), classes, crops, crops)
        mine = paste_in(ours_img, np.zeros((0, 5)), ours, Draws(values))
        assert np.array_equal(mine, theirs) and np.array_equal(ours_img, theirs_img)
