"""The paper's training augmentation (official ``utils/datasets.py``; algorithms.md §8).

Pure functions on uint8 images ``(H, W, 3)`` in OpenCV's BGR order (as the loader decodes them;
:func:`augment_hsv` takes RGB too) and labels ``(n, 5)`` rows ``(class, x1, y1, x2, y2)``
in pixels; randomness comes from an explicit ``numpy.random.Generator``, so a sample's augmentation is
fixed by ``(seed, epoch, index)`` in any worker process.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from ..boxes import box_ioa

PAD_VALUE = 114


def letterbox(img: np.ndarray, new_shape: int | tuple[int, int], scaleup: bool = True, color: int = PAD_VALUE,
              auto: bool = False, stride: int = 32) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Resize keeping the aspect ratio, then pad to ``new_shape`` (h, w), or with ``auto`` only to
    the next multiples of ``stride`` (the official ``detect.py`` input); returns (image, ratio,
    (pad_w, pad_h)), the padding split in two as the official code does."""
    shape = img.shape[:2]
    if isinstance(new_shape, int):
        new_shape = (new_shape, new_shape)
    r = min(new_shape[0] / shape[0], new_shape[1] / shape[1])
    if not scaleup:
        r = min(r, 1.0)
    new_unpad = (round(shape[1] * r), round(shape[0] * r))
    dw, dh = new_shape[1] - new_unpad[0], new_shape[0] - new_unpad[1]
    if auto:
        dw, dh = dw % stride, dh % stride
    dw, dh = dw / 2, dh / 2
    if shape[::-1] != new_unpad:
        img = cv2.resize(img, new_unpad, interpolation=cv2.INTER_LINEAR)
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(color,) * 3)
    return img, r, (dw, dh)


def augment_hsv(img: np.ndarray, rng: np.random.Generator, hgain: float = 0.015, sgain: float = 0.7,
                vgain: float = 0.4, bgr: bool = False) -> np.ndarray:
    """HSV jitter with lookup tables: gains ``U(−1, 1)·[h, s, v] + 1`` (hue wraps at 180)."""
    r = rng.uniform(-1, 1, 3) * [hgain, sgain, vgain] + 1
    to_hsv, from_hsv = (cv2.COLOR_BGR2HSV, cv2.COLOR_HSV2BGR) if bgr else (cv2.COLOR_RGB2HSV, cv2.COLOR_HSV2RGB)
    x = np.arange(0, 256, dtype=np.int16)
    lut = np.stack(((x * r[0]) % 180, np.clip(x * r[1], 0, 255), np.clip(x * r[2], 0, 255)), 1)
    # one 3-channel table: each channel through its own LUT, without splitting the image
    hsv = cv2.LUT(cv2.cvtColor(img, to_hsv), lut.astype(np.uint8).reshape(256, 1, 3))
    return cv2.cvtColor(hsv, from_hsv)


def box_candidates(before: np.ndarray, after: np.ndarray, wh_thr: float = 2, ar_thr: float = 20,
                   area_thr: float = 0.1, eps: float = 1e-16) -> np.ndarray:
    """Boxes (4, n) that stay larger than ``wh_thr`` px, keep ``area_thr`` of their scaled area and
    an aspect ratio below ``ar_thr``."""
    w1, h1 = before[2] - before[0], before[3] - before[1]
    w2, h2 = after[2] - after[0], after[3] - after[1]
    ar = np.maximum(w2 / (h2 + eps), h2 / (w2 + eps))
    return (w2 > wh_thr) & (h2 > wh_thr) & (w2 * h2 / (w1 * h1 + eps) > area_thr) & (ar < ar_thr)


def resample_segments(segments: Sequence[np.ndarray], n: int = 1000) -> np.ndarray:
    """Every polygon resampled to ``n`` points from its first vertex to its last, shape
    ``(len(segments), n, 2)``.

    The points are evenly spaced in vertex index, as the official rule (``np.interp`` over the vertex
    index of each polygon, no closing edge) places them; all polygons are resampled at once, bit for
    bit equal to it.
    """
    if not len(segments):
        return np.zeros((0, n, 2))
    return np.stack(_resample_xy(segments, n), -1)


def _resample_xy(segments: Sequence[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`resample_segments` as its x and y planes ``(len(segments), n)``, each computed alone."""
    counts = np.fromiter(map(len, segments), np.int64, len(segments))
    starts = np.cumsum(counts) - counts
    points = np.concatenate([*segments, np.zeros((1, 2))], 0).astype(float)  # a spare row after the last
    x = np.arange(n) * ((counts[:, None] - 1) / (n - 1))  # np.linspace(0, count - 1, n) per polygon
    j = np.minimum(x.astype(np.int64), np.maximum(counts[:, None] - 2, 0))
    t = x - j
    a = starts[:, None] + j  # the vertex before each point; a + 1 the one after
    out = []
    for c in points.T.copy():
        plane = (c[a + 1] - c[a]) * t + c[a]
        plane[:, -1] = c[starts + counts - 1]  # the last vertex itself, as np.interp returns it
        out.append(plane)
    return out[0], out[1]


def perspective_matrix(rng: np.random.Generator, height: int, width: int, degrees: float = 0.0,
                       translate: float = 0.1, scale: float = 0.5, shear: float = 0.0, perspective: float = 0.0,
                       border: tuple[int, int] = (0, 0)) -> tuple[np.ndarray, float, tuple[int, int]]:
    """The random warp ``M = T·S·R·P·C`` of an input of ``(height, width)``: (M (3, 3), its scale gain,
    output (h, w)). ``border`` (negative halves in a mosaic) crops the output to the centre, as officially."""
    out_h, out_w = height + border[0] * 2, width + border[1] * 2
    c = np.eye(3)
    c[0, 2], c[1, 2] = -width / 2, -height / 2
    p = np.eye(3)
    p[2, 0], p[2, 1] = rng.uniform(-perspective, perspective), rng.uniform(-perspective, perspective)
    r = np.eye(3)
    a = rng.uniform(-degrees, degrees)
    s = rng.uniform(1 - scale, 1.1 + scale)
    r[:2] = cv2.getRotationMatrix2D(angle=a, center=(0, 0), scale=s)
    sh = np.eye(3)
    sh[0, 1] = math.tan(rng.uniform(-shear, shear) * math.pi / 180)
    sh[1, 0] = math.tan(rng.uniform(-shear, shear) * math.pi / 180)
    t = np.eye(3)
    t[0, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * out_w
    t[1, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * out_h
    return t @ sh @ r @ p @ c, s, (out_h, out_w)


def _affine_inverse(m: np.ndarray) -> np.ndarray:
    """The inverse of an affine ``m`` (2 or 3 rows) as ``cv2.warpAffine`` computes it, operation for
    operation, so a warp through it with ``WARP_INVERSE_MAP`` is bit for bit the plain warp."""
    m0, m1, m2, m3, m4, m5 = (float(v) for v in m[:2].reshape(-1))
    d = m0 * m4 - m1 * m3
    d = 1.0 / d if d != 0 else 0.0
    a11, a22 = m4 * d, m0 * d
    m0, m1, m3, m4 = a11, m1 * -d, m3 * -d, a22
    return np.array([[m0, m1, -m0 * m2 - m1 * m5], [m3, m4, -m3 * m2 - m4 * m5]])


def source_region(m: np.ndarray, out_hw: tuple[int, int], in_hw: tuple[int, int],
                  margin: int = 2) -> tuple[int, int, int, int]:
    """``(x1, y1, x2, y2)``: the part of an input of ``in_hw`` that an affine warp by ``m`` into
    ``out_hw`` reads (the bounding box of the output's preimage, widened by ``margin`` pixels for
    the bilinear neighbours), clipped to the input. Pixels outside it never reach the output."""
    inv = _affine_inverse(m)
    h, w = out_hw
    xy = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], dtype=np.float64) @ inv.T
    x1, y1 = np.floor(xy.min(0)).astype(int) - margin
    x2, y2 = np.ceil(xy.max(0)).astype(int) + margin
    return max(int(x1), 0), max(int(y1), 0), min(int(x2), in_hw[1]), min(int(y2), in_hw[0])


def warp_image(img: np.ndarray, m: np.ndarray, out_hw: tuple[int, int], perspective: bool = False,
               origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """``img`` warped by ``m`` into ``out_hw``, grey outside; ``img`` may be the part of ``m``'s input
    that starts at ``origin`` (x, y), such as its :func:`source_region`: the output is the same, up to
    OpenCV's float32 rounding of source coordinates (a few pixels by a few grey levels)."""
    h, w = out_hw
    fill = (PAD_VALUE,) * 4
    # OpenCV's SIMD warp kernels take 1 or 4 channels: padded to 4, a colour image warps faster into
    # the same values (tests/data_pipeline/test_dataset.py checks it)
    src = cv2.cvtColor(img, cv2.COLOR_BGR2BGRA) if img.ndim == 3 and img.shape[2] == 3 else img
    if perspective:
        out = cv2.warpPerspective(src, m @ _translation(*origin), dsize=(w, h), borderValue=fill)
    else:
        inv = _affine_inverse(m)
        inv[:, 2] -= origin
        out = cv2.warpAffine(src, inv, dsize=(w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=fill)
    return cv2.cvtColor(out, cv2.COLOR_BGRA2BGR) if src is not img else out


def _translation(x: float, y: float) -> np.ndarray:
    t = np.eye(3)
    t[0, 2], t[1, 2] = x, y
    return t


def warp_labels(labels: np.ndarray, segments: Sequence[np.ndarray], m: np.ndarray, gain: float,
                out_hw: tuple[int, int], perspective: bool = False) -> np.ndarray:
    """Labels ``(n, 5)`` moved by the warp ``m`` (with scale ``gain``) into ``out_hw``; boxes follow the
    segments when every label has one. Boxes left too small, thin or cut are dropped."""
    n = len(labels)
    if not n:
        return labels
    height, width = out_hw
    use_segments = len(segments) == n
    if use_segments:  # each box: the extent of its warped outline points inside the image
        if not perspective:  # outlines whose vertices all land (1 px) outside have no point inside: drop now
            starts = np.cumsum([0] + [len(seg) for seg in segments[:-1]])
            x, y = (np.concatenate(segments, 0) @ m[:2, :2].T + m[:2, 2]).T
            lo_x, lo_y = np.minimum.reduceat(x, starts), np.minimum.reduceat(y, starts)
            hi_x, hi_y = np.maximum.reduceat(x, starts), np.maximum.reduceat(y, starts)
            seen = (hi_x > -1) & (hi_y > -1) & (lo_x < width + 1) & (lo_y < height + 1)
            labels, segments = labels[seen], [seg for seg, keep in zip(segments, seen) if keep]
            if not len(labels):
                return labels
        sx, sy = _resample_xy(segments, 1000)
        x, y = (sx * m[k, 0] + sy * m[k, 1] + m[k, 2] for k in (0, 1))  # (x, y, 1) @ m.T, row by row
        if perspective:
            w = sx * m[2, 0] + sy * m[2, 1] + m[2, 2]
            x, y = x / w, y / w
        inside = (x >= 0) & (y >= 0) & (x <= width) & (y <= height)
        new = np.stack((np.where(inside, x, np.inf).min(1), np.where(inside, y, np.inf).min(1),
                        np.where(inside, x, -np.inf).max(1), np.where(inside, y, -np.inf).max(1)), 1)
        new[~inside.any(1)] = 0
    else:
        xy = np.ones((n * 4, 3))
        xy[:, :2] = labels[:, [1, 2, 3, 4, 1, 4, 3, 2]].reshape(n * 4, 2)
        xy = xy @ m.T
        xy = (xy[:, :2] / xy[:, 2:3] if perspective else xy[:, :2]).reshape(n, 8)
        x, y = xy[:, [0, 2, 4, 6]], xy[:, [1, 3, 5, 7]]
        new = np.stack((x.min(1), y.min(1), x.max(1), y.max(1)), 1)
        new[:, [0, 2]] = new[:, [0, 2]].clip(0, width)
        new[:, [1, 3]] = new[:, [1, 3]].clip(0, height)
    keep = box_candidates(labels[:, 1:5].T * gain, new.T, area_thr=0.01 if use_segments else 0.1)
    labels = labels[keep]
    labels[:, 1:5] = new[keep]
    return labels


def random_perspective(img: np.ndarray, labels: np.ndarray, segments: Sequence[np.ndarray],
                       rng: np.random.Generator, degrees: float = 0.0, translate: float = 0.1,
                       scale: float = 0.5, shear: float = 0.0, perspective: float = 0.0,
                       border: tuple[int, int] = (0, 0)) -> tuple[np.ndarray, np.ndarray]:
    """Random affine / perspective warp (:func:`perspective_matrix`) of an image and its labels."""
    m, gain, out_hw = perspective_matrix(rng, img.shape[0], img.shape[1], degrees, translate, scale, shear,
                                         perspective, border)
    if border[0] != 0 or border[1] != 0 or (m != np.eye(3)).any():
        img = warp_image(img, m, out_hw, bool(perspective))
    return img, warp_labels(labels, segments, m, gain, out_hw, bool(perspective))


def mixup(img: np.ndarray, labels: np.ndarray, img2: np.ndarray, labels2: np.ndarray,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """MixUp (Zhang et al. 2018) with ``r ~ Beta(8, 8)``; labels of both images are kept."""
    r = rng.beta(8.0, 8.0)
    img = cv2.addWeighted(img, r, img2, 1 - r, 0.0, dtype=cv2.CV_32F).astype(np.uint8)  # truncated
    return img, np.concatenate((labels, labels2), 0)


PASTE_SCALES = (0.75,) * 2 + (0.5,) * 4 + (0.25,) * 4 + (0.125,) * 4 + (0.0625,) * 6


def cut_out(img: np.ndarray, labels: np.ndarray, segments: Sequence[np.ndarray], rng: np.random.Generator,
            fraction: float = 0.5) -> list[tuple[int, np.ndarray]]:
    """``round(fraction·n)`` random objects of an image as (class, crop) cut-outs.

    As officially, the crop is black outside the object's polygon and a channel at 0 inside it is set
    to 255, so the crop is its own mask (:func:`paste_in`); its box is the label's, truncated and
    clipped to the last pixel row and column.
    """
    if not len(segments) or len(segments) != len(labels):
        return []
    out = []
    h, w = img.shape[:2]
    for k in rng.permutation(len(labels))[: round(fraction * len(labels))]:
        x1, y1, x2, y2 = labels[k, 1:5].astype(int).clip(0, [w - 1, h - 1] * 2)
        if x2 <= x1 or y2 <= y1:
            continue
        mask = np.zeros((h, w), np.uint8)
        cv2.drawContours(mask, [segments[k].astype(np.int32)], -1, 255, cv2.FILLED)
        crop, inside = img[y1:y2, x1:x2], mask[y1:y2, x1:x2] > 0
        out.append((int(labels[k, 0]), np.where(inside[..., None] if crop.ndim == 3 else inside,
                                                np.where(crop > 0, crop, 255), 0).astype(np.uint8)))
    return out


def paste_in(img: np.ndarray, labels: np.ndarray, cutouts: Sequence[tuple[int, np.ndarray]],
             rng: np.random.Generator) -> np.ndarray:
    """Paste object cut-outs into free places of ``img`` (in place); return the labels with theirs.

    For each of 20 size slots (3/4 of the image down to 1/16, each skipped with p = 0.2) a random box
    is drawn; where it overlaps no existing object by 30 % of that object's area and is over 20 px
    wide and high, a random cut-out is scaled into it (aspect kept) and its values above 0 pasted,
    channel by channel, as officially (when over 10 px wide and high, with over 60 such values).
    """
    h, w = img.shape[:2]
    if not cutouts:
        return labels
    for s in PASTE_SCALES:
        if rng.random() < 0.2:
            continue
        bh, bw = int(rng.integers(1, max(int(h * s), 1) + 1)), int(rng.integers(1, max(int(w * s), 1) + 1))
        x1 = max(0, int(rng.integers(0, w + 1)) - bw // 2)
        y1 = max(0, int(rng.integers(0, h + 1)) - bh // 2)
        x2, y2 = min(w, x1 + bw), min(h, y1 + bh)
        if x2 <= x1 + 20 or y2 <= y1 + 20:
            continue
        if len(labels) and (box_ioa(np.array([x1, y1, x2, y2], np.float32), labels[:, 1:5], 1e-16) >= 0.30).any():
            continue
        cls, crop = cutouts[int(rng.integers(0, len(cutouts)))]
        ch, cw = crop.shape[:2]
        r = min((y2 - y1) / ch, (x2 - x1) / cw)
        rw, rh = int(cw * r), int(ch * r)
        if rw <= 10 or rh <= 10:
            continue
        pasted = cv2.resize(crop, (rw, rh))
        m = pasted > 0  # the crop is its own mask, channel by channel (officially through an aliased copy)
        if m.sum() <= 60:
            continue
        region = img[y1:y1 + rh, x1:x1 + rw]
        region[m] = pasted[m]
        labels = np.concatenate((labels.reshape(-1, 5), [[cls, x1, y1, x1 + rw, y1 + rh]]), 0)
    return labels
