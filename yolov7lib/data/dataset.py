"""Detection dataset with the paper's training pipeline and the official validation protocol.

Training samples (``augment=True``): mosaic of 4 (80 %) or 9 (20 %) images with probability
``hyp.mosaic``, cropped back to ``img_size`` by a random perspective warp; MixUp of a second mosaic
with probability ``hyp.mixup``; HSV jitter; up-down / left-right flips. Without mosaic: letterbox to
``img_size`` then the random warp. Validation (``rect=True``): images sorted by aspect ratio,
batches letterboxed (no upscaling) to ``ceil(shape·img_size/stride + pad)·stride`` with pad 0.5.

Paste-in with probability ``hyp.paste_in`` (after HSV, so pasted objects keep their colours): at
least 30 object cut-outs are taken from random 4-image mosaics (half of each mosaic's objects, cut
along their polygon) and pasted into free places of the sample.

Every sample's randomness comes from ``numpy.random.default_rng((seed, epoch, index))``, so a run is
reproducible whatever the number of loader workers; call :meth:`set_epoch` each epoch.

``cache_images=True`` (the official ``--cache-images``) decodes and resizes every image once, into RAM,
before training; forked loader workers share the cache. Samples are the same with or without it.
"""

from __future__ import annotations

import math
import warnings

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..boxes import xywhn_to_xyxy, xyxy_to_xywhn
from ..hyp import P5, Hyp
from . import augment as aug
from .augment import PAD_VALUE, augment_hsv, cut_out, letterbox, mixup, paste_in, random_perspective
from .check import CheckedImage, load_split
from .formats import DataConfig
from .images import load_rgb

Warp = tuple[np.ndarray, float, tuple[int, int]]  # perspective_matrix's (M, scale gain, output (h, w))


def _pieces(transform, polygons: list[np.ndarray]) -> list[np.ndarray]:
    """``transform`` (of an ``(n, 2)`` array) applied to all ``polygons`` at once, as one array."""
    if not polygons:
        return []
    points = transform(np.concatenate(polygons))
    ends = np.cumsum([len(x) for x in polygons]).tolist()
    return [points[a:b] for a, b in zip([0, *ends[:-1]], ends)]


def _available_memory() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes; None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class DetectionDataset(Dataset):
    """Items: ``(image uint8 (3, H, W) RGB, targets (n, 6) = (0, class, cx, cy, w, h) normalised,
    path, (original (h, w), ((ratio_h, ratio_w), (pad_w, pad_h))))``."""

    def __init__(self, images: list[CheckedImage], img_size: int = 640, hyp: Hyp = P5, augment: bool = False,
                 rect: bool = False, batch_size: int = 16, stride: int = 32, pad: float = 0.0, seed: int = 0,
                 cache_images: bool = False, progress: bool = False):
        if not images:
            raise ValueError("no images")
        self.images, self.img_size, self.hyp, self.augment = images, img_size, hyp, augment
        self.seed, self.epoch, self.stride = seed, 0, stride
        self.rect = rect
        self._cache: list[tuple[np.ndarray, tuple[int, int], tuple[int, int]]] | None = None
        self._buffers = [np.empty(0, np.uint8) for _ in range(2)]  # see _scratch
        self.mosaic_border = (-img_size // 2, -img_size // 2)
        self.batch_shapes: np.ndarray | None = None
        if rect:
            aspect = np.array([im.size[0] / im.size[1] for im in images])
            order = aspect.argsort()
            self.images = [images[i] for i in order]
            aspect = aspect[order]
            nb = math.ceil(len(images) / batch_size)
            self.batch_index = np.arange(len(images)) // batch_size
            shapes = np.ones((nb, 2))
            for b in range(nb):
                ar = aspect[self.batch_index == b]
                lo, hi = ar.min(), ar.max()
                if hi < 1:
                    shapes[b] = [hi, 1]
                elif lo > 1:
                    shapes[b] = [1, 1 / lo]
            self.batch_shapes = np.ceil(shapes * img_size / stride + pad).astype(int) * stride
        if cache_images:
            self.cache_images(progress)

    def __len__(self) -> int:
        return len(self.images)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _resized_hw(self, h0: int, w0: int) -> tuple[int, int]:
        """(h, w) of an image of ``(h0, w0)`` once its long side is ``img_size``."""
        r = self.img_size / max(h0, w0)
        return (int(h0 * r), int(w0 * r)) if r != 1 else (h0, w0)

    def cache_images(self, progress: bool = False) -> int:
        """Decode and resize every image once into RAM; returns the bytes held.

        When the images would take more than 90 % of the available memory (``MemAvailable``), warns
        and leaves them on disk instead: training goes on, only slower. Cached images are read-only.
        """
        need = sum(h * w * 3 for h, w in (self._resized_hw(*im.size) for im in self.images))
        available = _available_memory()
        if available is not None and need > 0.9 * available:
            warnings.warn(f"cache_images: the images need {need / 2**30:.1f} GiB, {available / 2**30:.1f} GiB "
                          "is available; reading them from disk instead", RuntimeWarning, stacklevel=2)
            return 0
        from tqdm import tqdm

        cache = []
        for i in tqdm(range(len(self)), desc=f"caching images ({need / 2**30:.2f} GiB)", disable=not progress):
            img, hw0, hw = self._read_image(i)
            img.setflags(write=False)
            cache.append((img, hw0, hw))
        self._cache = cache
        return need

    def load_image(self, i: int) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
        """Image ``i`` resized so its long side is ``img_size``; (image, original hw, resized hw)."""
        return self._cache[i] if self._cache is not None else self._read_image(i)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_buffers": [np.empty(0, np.uint8) for _ in self._buffers]}

    def _scratch(self, slot: int, shape: tuple[int, ...]) -> np.ndarray:
        """A uint8 array of ``shape`` reused from call to call (slot 0: a decoded tile, 1: the mosaic
        canvas), valid until its slot is asked for again: memory that stays in the CPU caches is
        faster than fresh arrays."""
        n = math.prod(shape)
        if self._buffers[slot].size < n:
            self._buffers[slot] = np.empty(n, np.uint8)
        return self._buffers[slot][:n].reshape(shape)

    def _read_image(self, i: int, channels: int = 3, scratch: bool = False
                    ) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
        buffer = self._scratch(0, (math.prod(self.images[i].size) * channels,)) if scratch else None
        img = load_rgb(self.images[i].path, bgr=True, channels=channels, buffer=buffer)  # BGR, as OpenCV decodes
        h0, w0 = img.shape[:2]
        h, w = self._resized_hw(h0, w0)
        if (h, w) != (h0, w0):
            interp = cv2.INTER_AREA if h < h0 and not self.augment else cv2.INTER_LINEAR
            img = cv2.resize(img, (w, h), interpolation=interp)
        return img, (h0, w0), img.shape[:2]

    def _labels(self, i: int, w: float, h: float, padw: float = 0, padh: float = 0, segments: bool = True):
        """Image ``i``'s labels (class, xyxy pixels) and, with ``segments``, its polygons, both scaled to
        ``(w, h)`` and shifted by the padding."""
        im = self.images[i]
        labels = np.zeros((len(im.classes), 5))
        labels[:, 0] = im.classes
        labels[:, 1:] = xywhn_to_xyxy(im.boxes, w, h, padw, padh)
        return labels, _pieces(lambda xy: xy * [w, h] + [padw, padh], im.segments if segments else [])

    def _tile_hw(self, i: int) -> tuple[int, int]:
        """(h, w) of image ``i`` as :meth:`load_image` returns it, known without decoding it."""
        return self._cache[i][2] if self._cache is not None else self._resized_hw(*self.images[i].size)

    def _mosaic_matrix(self, rng: np.random.Generator, warp: bool) -> Warp | None:
        """The random warp of a mosaic (drawn where the official code draws it), or None."""
        if not warp:
            return None
        h, size = self.hyp, 2 * self.img_size
        return aug.perspective_matrix(rng, size, size, h.degrees, h.translate, h.scale, h.shear, h.perspective,
                                      self.mosaic_border)

    def _paint(self, tiles: list[tuple[int, int, int, tuple[int, int, int, int]]], size: int, warp: Warp | None):
        """Paint ``(index, x, y, visible (x1, y1, x2, y2))`` tiles (image top-left at ``(x, y)``) into a
        ``size``² mosaic, then warp it. Only the part the warp reads (:func:`source_region`) is
        painted, and images with no pixel in it are never decoded: the labels are the same as those
        of a whole mosaic, the pixels too up to float32 rounding (see :func:`~.augment.warp_image`).
        A warped mosaic is BGRA (the fourth channel is only there for speed; HSV jitter drops it)."""
        region = (0, 0, size, size)
        if warp is not None and not self.hyp.perspective:
            region = aug.source_region(warp[0], warp[2], (size, size))
        rx1, ry1, rx2, ry2 = region
        channels = 3 if warp is None else 4  # the warp is fastest on 4 (see warp_image)
        shape = (max(ry2 - ry1, 0), max(rx2 - rx1, 0), channels)
        canvas = np.empty(shape, np.uint8) if warp is None else self._scratch(1, shape)  # unwarped: returned
        canvas.fill(PAD_VALUE)
        for i, x, y, (vx1, vy1, vx2, vy2) in tiles:
            x1, y1, x2, y2 = max(vx1, rx1), max(vy1, ry1), min(vx2, rx2), min(vy2, ry2)
            if x2 <= x1 or y2 <= y1:
                continue
            img = self._cache[i][0] if self._cache is not None else self._read_image(i, channels, True)[0]
            if img.shape[:2] != self._tile_hw(i):
                raise ValueError(f"{self.images[i].path}: decoded as {img.shape[:2]}, checked as "
                                 f"{self.images[i].size}; the file changed since the check, run it again")
            src, dst = img[y1 - y:y2 - y, x1 - x:x2 - x], canvas[y1 - ry1:y2 - ry1, x1 - rx1:x2 - rx1]
            if src.shape[2] == channels:
                dst[:] = src
            else:  # a cached image
                cv2.cvtColor(src, cv2.COLOR_BGR2BGRA, dst=dst)
        if warp is None:
            return canvas
        return aug.warp_image(canvas, warp[0], warp[2], bool(self.hyp.perspective), (rx1, ry1))

    def _mosaic4(self, index: int, rng: np.random.Generator, warp: bool = True):
        s = self.img_size
        yc, xc = (int(rng.uniform(-x, 2 * s + x)) for x in self.mosaic_border)
        indices = [index, *rng.integers(0, len(self), 3).tolist()]
        matrix = self._mosaic_matrix(rng, warp)
        tiles, all_labels, all_segments = [], [], []
        for k, i in enumerate(indices):
            h, w = self._tile_hw(i)
            if k == 0:  # top left
                a = (max(xc - w, 0), max(yc - h, 0), xc, yc)
                b = (w - (a[2] - a[0]), h - (a[3] - a[1]), w, h)
            elif k == 1:  # top right
                a = (xc, max(yc - h, 0), min(xc + w, 2 * s), yc)
                b = (0, h - (a[3] - a[1]), min(w, a[2] - a[0]), h)
            elif k == 2:  # bottom left
                a = (max(xc - w, 0), yc, xc, min(2 * s, yc + h))
                b = (w - (a[2] - a[0]), 0, w, min(a[3] - a[1], h))
            else:  # bottom right
                a = (xc, yc, min(xc + w, 2 * s), min(2 * s, yc + h))
                b = (0, 0, min(w, a[2] - a[0]), min(a[3] - a[1], h))
            tiles.append((i, a[0] - b[0], a[1] - b[1], a))
            labels, segments = self._labels(i, w, h, a[0] - b[0], a[1] - b[1])
            all_labels.append(labels)
            all_segments += segments
        labels = np.concatenate(all_labels, 0)
        np.clip(labels[:, 1:], 0, 2 * s, out=labels[:, 1:])
        all_segments = _pieces(lambda xy: np.clip(xy, 0, 2 * s), all_segments)
        img = self._paint(tiles, 2 * s, matrix)
        if not warp:
            return img, labels, all_segments
        return img, aug.warp_labels(labels, all_segments, *matrix, bool(self.hyp.perspective))

    def _mosaic9(self, index: int, rng: np.random.Generator):
        s = self.img_size
        indices = [index, *rng.integers(0, len(self), 8).tolist()]
        yc, xc = (int(rng.uniform(0, s)) for _ in self.mosaic_border)  # the crop of the 3s² canvas
        matrix = self._mosaic_matrix(rng, True)
        tiles, all_labels, all_segments = [], [], []
        h0 = w0 = hp = wp = 0
        for k, i in enumerate(indices):
            h, w = self._tile_hw(i)
            if k == 0:
                h0, w0 = h, w
            # (x1, y1) of the tile around the centre image, clockwise from the top
            x1, y1 = [(s, s), (s, s - h), (s + wp, s - h), (s + w0, s), (s + w0, s + hp), (s + w0 - w, s + h0),
                      (s + w0 - wp - w, s + h0), (s - w, s + h0 - h), (s - w, s + h0 - hp - h)][k]
            visible = (max(x1, 0) - xc, max(y1, 0) - yc, max(x1 + w, 0) - xc, max(y1 + h, 0) - yc)
            tiles.append((i, x1 - xc, y1 - yc, visible))
            labels, segments = self._labels(i, w, h, x1, y1)
            all_labels.append(labels)
            all_segments += segments
            hp, wp = h, w
        labels = np.concatenate(all_labels, 0)
        labels[:, [1, 3]] -= xc
        labels[:, [2, 4]] -= yc
        np.clip(labels[:, 1:], 0, 2 * s, out=labels[:, 1:])
        all_segments = _pieces(lambda xy: np.clip(xy - [xc, yc], 0, 2 * s), all_segments)
        img = self._paint(tiles, 2 * s, matrix)
        return img, aug.warp_labels(labels, all_segments, *matrix, bool(self.hyp.perspective))

    def _raw_mosaic(self, rng: np.random.Generator):
        """A 4-image mosaic before the warp (the source of paste-in cut-outs)."""
        return self._mosaic4(int(rng.integers(0, len(self))), rng, warp=False)

    def _cutouts(self, rng: np.random.Generator, minimum: int = 30, most: int = 100):
        """Cut-outs of random 4-image mosaics until there are ``minimum``; none if the first has none
        (as officially; ``most`` mosaics at most, where the official loop could run on forever on a
        dataset with objects in one image)."""
        cutouts = cut_out(*self._raw_mosaic(rng), rng)
        for _ in range(most - 1):
            if not cutouts or len(cutouts) >= minimum:
                break
            cutouts += cut_out(*self._raw_mosaic(rng), rng)
        return cutouts

    def _warp(self, img, labels, segments, rng, border=(0, 0)):
        h = self.hyp
        return random_perspective(img, labels, segments, rng, h.degrees, h.translate, h.scale, h.shear,
                                  h.perspective, border)

    def _mosaic(self, index: int, rng: np.random.Generator):
        return self._mosaic4(index, rng) if rng.random() < 0.8 else self._mosaic9(index, rng)

    def __getitem__(self, index: int):
        rng = np.random.default_rng((self.seed, self.epoch, index))
        hyp = self.hyp
        shapes = None
        if self.augment and not self.rect and rng.random() < hyp.mosaic:  # officially no mosaic with rect
            img, labels = self._mosaic(index, rng)
            if rng.random() < hyp.mixup:
                img2, labels2 = self._mosaic(int(rng.integers(0, len(self))), rng)
                img, labels = mixup(img, labels, img2, labels2, rng)
        else:
            img, (h0, w0), (h, w) = self.load_image(index)
            shape = self.batch_shapes[self.batch_index[index]] if self.rect else self.img_size
            img, ratio, (padw, padh) = letterbox(img, tuple(shape) if self.rect else shape, scaleup=self.augment)
            shapes = ((h0, w0), ((h / h0, w / w0), (padw, padh)))
            labels, _ = self._labels(index, ratio * w, ratio * h, padw, padh, segments=False)
            if self.augment:  # officially the boxes' corners are warped here, not the polygons
                img, labels = self._warp(img, labels, [], rng)
        if self.augment:
            img = augment_hsv(img, rng, hyp.hsv_h, hyp.hsv_s, hyp.hsv_v, bgr=True)
            if rng.random() < hyp.paste_in:
                labels = paste_in(img, labels, self._cutouts(rng), rng)
        n = len(labels)
        out = np.zeros((n, 6), dtype=np.float32)
        if n:
            out[:, 1] = labels[:, 0]
            out[:, 2:] = xyxy_to_xywhn(labels[:, 1:5], img.shape[1], img.shape[0])
        if self.augment:
            if rng.random() < hyp.flipud:
                img = img[::-1]
                out[:, 3] = 1 - out[:, 3]
            if rng.random() < hyp.fliplr:
                img = img[:, ::-1]
                out[:, 2] = 1 - out[:, 2]
        image = torch.from_numpy(np.ascontiguousarray(img[..., ::-1].transpose(2, 0, 1)))  # RGB, CHW
        return image, torch.from_numpy(out), str(self.images[index].path), shapes

    @staticmethod
    def collate(batch):
        images, targets, paths, shapes = zip(*batch)
        for i, t in enumerate(targets):
            t[:, 0] = i
        return torch.stack(images, 0), torch.cat(targets, 0), list(paths), list(shapes)


def validation_dataset(config: DataConfig, img_size: int = 640, stride: int = 32, batch_size: int = 32,
                       split: str = "val", warn: bool = False, **kwargs) -> DetectionDataset:
    """The paper's validation protocol (§5; algorithms.md §9) on a split of ``config``: its checked
    images (:func:`~yolov7lib.data.check.load_split`) letterboxed without augmentation in rectangular
    batches of similar aspect ratio, padded by half a stride and to multiples of ``stride`` (the
    model's largest). ``kwargs`` go to :class:`DetectionDataset` (``cache_images``, ``progress``)."""
    images = load_split(config.val if split == "val" else config.train, config.nc, warn=warn,
                        data_yaml=config.path, names=config.names).images
    return DetectionDataset(images, img_size, rect=True, batch_size=batch_size, stride=stride, pad=0.5, **kwargs)
