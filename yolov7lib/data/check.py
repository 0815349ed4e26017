"""Dataset checking: every image and label validated, fixed where safe, skipped otherwise, counted.

``python -m yolov7lib.data.check DATA.yaml`` prints counts, class and box-size histograms and every
problem. The same :func:`load_split` feeds training, so training never meets a file that breaks it.

What happens to each problem (``FIXED`` problems keep the data, ``SKIPPED`` ones drop it):

==========================  =======================================================  ========
problem                     handling                                                 kind
==========================  =======================================================  ========
image missing               the image is skipped                                     skipped
image empty / corrupt       the image is skipped (PIL cannot decode it)              skipped
image truncated             the image is skipped                                     skipped
grayscale / palette / CMYK  converted to RGB when loaded                             fixed
RGBA / LA                   alpha dropped (composited on grey 114)                   fixed
16-bit                      rescaled to 8 bits when loaded                           fixed
EXIF orientation            image and labels taken in the upright (transposed) frame fixed
label file unreadable       the image is skipped                                     skipped
row malformed / NaN / inf   the row is dropped                                       skipped
class id < 0, >= nc, float  the row is dropped                                       skipped
box size <= 0               the row is dropped                                       skipped
box partly outside          clipped to the image (silently within 1e-4: rounding)   fixed
box wholly outside          the row is dropped                                       skipped
duplicate row               the duplicate is dropped                                 fixed
==========================  =======================================================  ========

Parsed labels are cached in ``<labels dir>.cache.json`` keyed by a hash of each image's and label
file's bytes, so an edited file is always re-read. Paths in the cache are relative to its folder: a
dataset's files are the same bytes wherever it lies (its DVC hash does not depend on the clone).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .formats import DataConfig, image_files, label_path

CACHE_VERSION = 3  # 3: paths relative to the cache's folder (a dataset's bytes do not depend on where it lies)
FIXED, SKIPPED = "fixed", "skipped"
ROUNDING = 1e-4  # label files round coordinates: a box this little outside is clipped silently


class DatasetError(RuntimeError):
    """A dataset with nothing usable left."""


@dataclass
class Problem:
    path: Path
    kind: str
    action: str  # FIXED or SKIPPED
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.action:7s} {self.kind}: {self.path}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class CheckedImage:
    """An image that passed: its size in the upright frame, normalised xywh labels, classes."""

    path: Path
    size: tuple[int, int]  # (height, width)
    classes: np.ndarray
    boxes: np.ndarray  # (n, 4) normalised xywh
    segments: list[np.ndarray] = field(default_factory=list)


@dataclass
class SplitReport:
    images: list[CheckedImage]
    problems: list[Problem]
    nc: int

    @property
    def summary(self) -> Counter:
        return Counter((p.action, p.kind) for p in self.problems)

    def class_histogram(self) -> np.ndarray:
        counts = np.zeros(self.nc, dtype=np.int64)
        for im in self.images:
            np.add.at(counts, im.classes.astype(np.int64), 1)
        return counts

    def size_histogram(self) -> dict[str, int]:
        """COCO size bins of the boxes, in pixels of the original images."""
        bins = Counter({"small": 0, "medium": 0, "large": 0})
        for im in self.images:
            h, w = im.size
            areas = im.boxes[:, 2] * w * im.boxes[:, 3] * h
            bins["small"] += int((areas < 32**2).sum())
            bins["medium"] += int(((areas >= 32**2) & (areas < 96**2)).sum())
            bins["large"] += int((areas >= 96**2).sum())
        return dict(bins)


def _digest(*paths: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    for p in paths:
        h.update(p.read_bytes() if p.exists() else b"<missing>")
        h.update(b"\0")
    return h.hexdigest()


def inspect_image(path: Path) -> tuple[tuple[int, int], list[Problem]]:
    """(height, width) in the upright frame, and the fixes the image needs; raises on bad files."""
    problems = []
    if not path.exists():
        raise FileNotFoundError("missing")
    if path.stat().st_size == 0:
        raise ValueError("empty file")
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        im.load()  # decodes fully: catches truncation
        orientation = im.getexif().get(0x0112, 1)
        if orientation not in (1, None):
            problems.append(Problem(path, "EXIF orientation", FIXED, f"orientation {orientation}"))
            im = ImageOps.exif_transpose(im)
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            problems.append(Problem(path, "16-bit image", FIXED, im.mode))
        elif im.mode in ("RGBA", "LA", "PA"):
            problems.append(Problem(path, "alpha channel", FIXED, im.mode))
        elif im.mode != "RGB":
            problems.append(Problem(path, "non-RGB image", FIXED, im.mode))
        w, h = im.size
    return (h, w), problems


# EXIF orientation -> the numpy view that makes an image upright (as PIL's ``exif_transpose``)
_UPRIGHT = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
            5: lambda a: a.transpose(1, 0, 2), 6: lambda a: a.transpose(1, 0, 2)[:, ::-1],
            7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1], 8: lambda a: a.transpose(1, 0, 2)[::-1]}


def _decode_jpeg(data: bytes, order: str, buffer: np.ndarray | None = None) -> np.ndarray | None:
    """JPEG bytes decoded by libjpeg-turbo through simplejpeg into ``order`` ("BGR", "RGBX", ...),
    upright; None where it declines.

    The pixels are OpenCV's (the same library with the same slow integer DCT and fancy upsampling;
    tests check it), 10-15 % faster, and 4-channel output costs no more than 3. Files simplejpeg does
    not take strictly (damaged ones, or simplejpeg missing) return None for OpenCV and PIL to decode.
    """
    try:
        import simplejpeg

        img = simplejpeg.decode_jpeg(data, order, buffer=buffer)
    except Exception:  # any refusal (or no simplejpeg) falls back to OpenCV, which applies its own rules
        return None
    if b"Exif" in data[:65536]:
        from io import BytesIO

        with Image.open(BytesIO(data)) as im:
            orientation = im.getexif().get(0x0112, 1)
        if orientation in _UPRIGHT:
            img = np.ascontiguousarray(_UPRIGHT[orientation](img))
    return img


def load_rgb(path: Path, bgr: bool = False, channels: int = 3, buffer: np.ndarray | None = None) -> np.ndarray:
    """An image as uint8 ``(H, W, channels)`` RGB (or BGR) in the upright frame, whatever its mode or bit depth.

    ``channels=4`` appends a fourth channel (255) for OpenCV's 4-channel fast paths. JPEGs take a fast
    path (:func:`_decode_jpeg`, else OpenCV; both apply the EXIF orientation); other files, which may
    carry alpha or 16-bit samples, go through PIL.
    """
    img = None
    if path.suffix.lower() in (".jpg", ".jpeg"):
        img = _decode_jpeg(path.read_bytes(), ("BGR" if bgr else "RGB") + "X" * (channels == 4), buffer)
        if img is not None:
            return img
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is not None and not bgr:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img is None:
        img = _load_with_pil(path, bgr)
    return cv2.cvtColor(img, cv2.COLOR_BGR2BGRA) if channels == 4 else img  # (appends 255 in either order)


def _load_with_pil(path: Path, bgr: bool) -> np.ndarray:
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode.startswith("I"):
            arr = np.asarray(im, dtype=np.float64)
            top = 65535.0 if arr.max() > 255 else 255.0
            return np.repeat((arr / top * 255).round().astype(np.uint8)[..., None], 3, 2)
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            grey = Image.new("RGBA", im.size, (114, 114, 114, 255))
            im = Image.alpha_composite(grey, im)
        rgb = np.asarray(im.convert("RGB"))
        return np.ascontiguousarray(rgb[..., ::-1]) if bgr else rgb


def parse_labels(path: Path, nc: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], list[Problem]]:
    """Valid rows of a YOLO label file (classes, normalised xywh, polygons) and the problems met."""
    problems = []
    if not path.exists():
        return np.zeros(0), np.zeros((0, 4)), [], problems
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"not text ({err.reason})") from err
    classes, boxes, polygons, seen = [], [], [], set()
    for k, line in enumerate(text.splitlines(), 1):
        values = line.split()
        if not values:
            continue
        try:
            nums = [float(v) for v in values]
        except ValueError:
            problems.append(Problem(path, "malformed row", SKIPPED, f"line {k}: {line[:40]!r}"))
            continue
        if not (len(nums) == 5 or (len(nums) > 6 and len(nums) % 2 == 1)):
            problems.append(Problem(path, "malformed row", SKIPPED, f"line {k}: {len(nums)} values"))
            continue
        if not all(math.isfinite(v) for v in nums):
            problems.append(Problem(path, "NaN or inf", SKIPPED, f"line {k}"))
            continue
        cls = nums[0]
        if cls != int(cls) or not 0 <= cls < nc:
            problems.append(Problem(path, "bad class id", SKIPPED, f"line {k}: class {values[0]} (nc={nc})"))
            continue
        poly = None
        if len(nums) == 5:
            cx, cy, w, h = nums[1:]
            if w <= 0 or h <= 0:
                problems.append(Problem(path, "non-positive box size", SKIPPED, f"line {k}"))
                continue
            x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        else:
            poly = np.asarray(nums[1:], dtype=np.float32).reshape(-1, 2)
            (x1, y1), (x2, y2) = poly.min(0), poly.max(0)
            if x2 <= x1 or y2 <= y1:
                problems.append(Problem(path, "non-positive box size", SKIPPED, f"line {k}"))
                continue
        if x2 <= 0 or y2 <= 0 or x1 >= 1 or y1 >= 1:
            problems.append(Problem(path, "box outside the image", SKIPPED, f"line {k}"))
            continue
        if min(x1, y1) < -ROUNDING or max(x2, y2) > 1 + ROUNDING:
            problems.append(Problem(path, "box partly outside the image", FIXED, f"line {k}: clipped"))
        if min(x1, y1) < 0 or max(x2, y2) > 1:  # beyond the rounding of label files: also reported
            x1, y1, x2, y2 = max(x1, 0.0), max(y1, 0.0), min(x2, 1.0), min(y2, 1.0)
            if poly is not None:
                poly = poly.clip(0, 1)
        key = tuple(round(v, 6) for v in nums)
        if key in seen:
            problems.append(Problem(path, "duplicate row", FIXED, f"line {k}: dropped"))
            continue
        seen.add(key)
        classes.append(int(cls))
        boxes.append([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])
        if poly is not None:
            polygons.append(poly)
    if polygons and len(polygons) != len(classes):
        polygons = []
    return (np.asarray(classes, dtype=np.int64), np.asarray(boxes, dtype=np.float32).reshape(-1, 4), polygons,
            problems)


def _check_one(image: Path, nc: int) -> tuple[CheckedImage | None, list[Problem]]:
    try:
        size, problems = inspect_image(image)
    except FileNotFoundError:
        return None, [Problem(image, "image missing", SKIPPED)]
    except (OSError, ValueError, UnidentifiedImageError, SyntaxError) as err:
        kind = "image truncated" if "truncated" in str(err).lower() else "image empty or corrupt"
        return None, [Problem(image, kind, SKIPPED, str(err)[:80])]
    labels = label_path(image)
    try:
        classes, boxes, polygons, label_problems = parse_labels(labels, nc)
    except (OSError, ValueError) as err:
        return None, [*problems, Problem(labels, "label file unreadable", SKIPPED, str(err)[:80])]
    return CheckedImage(image, size, classes, boxes, polygons), problems + label_problems


def _encode(item: CheckedImage | None, problems: list[Problem], root: Path) -> dict:
    return {
        "image": None if item is None else {"size": list(item.size), "classes": item.classes.tolist(),
                                            "boxes": item.boxes.tolist(),
                                            "segments": [s.tolist() for s in item.segments]},
        "problems": [[os.path.relpath(p.path, root), p.kind, p.action, p.detail] for p in problems],
    }


def _decode(path: Path, entry: dict, root: Path) -> tuple[CheckedImage | None, list[Problem]]:
    problems = [Problem(Path(os.path.normpath(root / p)), k, a, d) for p, k, a, d in entry["problems"]]
    im = entry["image"]
    if im is None:
        return None, problems
    return CheckedImage(path, tuple(im["size"]), np.asarray(im["classes"], dtype=np.int64),
                        np.asarray(im["boxes"], dtype=np.float32).reshape(-1, 4),
                        [np.asarray(s, dtype=np.float32) for s in im["segments"]]), problems


def load_split(sources: list[Path], nc: int, cache: bool = True, warn: bool = True) -> SplitReport:
    """Check a YOLO-format split; raise :class:`DatasetError` if no usable image is left."""
    files = image_files(sources)
    cache_path = None
    entries: dict = {}
    if cache and files:
        cache_path = label_path(files[0]).parent.with_suffix(".cache.json")
        try:
            data = json.loads(cache_path.read_text())
            if data.get("version") == CACHE_VERSION and data.get("nc") == nc:
                entries = data["entries"]
        except (OSError, ValueError, KeyError):
            entries = {}
    images, problems, fresh = [], [], {}
    root = cache_path.parent if cache_path is not None else Path.cwd()  # cache entries are relative to it
    for image in files:
        key = _digest(image, label_path(image))
        name = os.path.relpath(image, root)
        entry = entries.get(name)
        if entry is None or entry.get("key") != key:
            entry = {"key": key, **_encode(*_check_one(image, nc), root)}
        fresh[name] = entry
        item, found = _decode(image, entry, root)
        problems += found
        if item is not None:
            images.append(item)
    if cache_path is not None and fresh != entries:  # unchanged: nothing to write (runs side by side read it)
        try:
            tmp = cache_path.with_suffix(f".{os.getpid()}.tmp")  # processes writing at once do not collide
            tmp.write_text(json.dumps({"version": CACHE_VERSION, "nc": nc, "entries": fresh}))
            os.replace(tmp, cache_path)
        except OSError as err:  # read-only dataset: no cache
            warnings.warn(f"cannot write label cache {cache_path}: {err}", RuntimeWarning, stacklevel=2)
    if warn:
        for p in problems:
            warnings.warn(str(p), RuntimeWarning, stacklevel=2)
    if not images:
        raise DatasetError(f"no usable image in {', '.join(map(str, sources))}: {len(files)} files, "
                           f"{len(problems)} problems (run python -m yolov7lib.data.check)")
    return SplitReport(images, problems, nc)


def _shown(path: Path, root: Path) -> str:
    """A path relative to the dataset root where possible (reports carry no machine paths)."""
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def report(config: DataConfig, split: str, rep: SplitReport) -> str:
    """The human-readable report of one split."""
    lines = [f"[{split}] {len(rep.images)} usable images, {sum(len(i.classes) for i in rep.images)} objects, "
             f"{sum(1 for i in rep.images if len(i.classes) == 0)} without objects"]
    hist = rep.class_histogram()
    width = max(1, int(hist.max()) if hist.size else 1)
    for name, n in zip(config.names, hist):
        lines.append(f"  {name:>16s} {n:7d} {'#' * int(40 * n / width)}")
    lines.append("  box sizes: " + ", ".join(f"{k} {v}" for k, v in rep.size_histogram().items()))
    if rep.problems:
        lines.append("  problems:")
        for (action, kind), n in sorted(rep.summary.items()):
            lines.append(f"    {n:5d} {action} {kind}")
        lines += [f"    {p.action:7s} {p.kind}: {_shown(p.path, config.root)}" + (f" ({p.detail})" if p.detail else "")
                  for p in rep.problems]
    else:
        lines.append("  no problems")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m yolov7lib.data.check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="data YAML (train / val / nc / names)")
    parser.add_argument("--no-cache", action="store_true")
    args = parser.parse_args(argv)
    config = DataConfig.load(args.data)
    status = 0
    for split in ("train", "val"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rep = load_split(getattr(config, split), config.nc, cache=not args.no_cache, warn=False)
        except (DatasetError, FileNotFoundError) as err:
            print(f"[{split}] ERROR: {err}")
            status = 1
            continue
        print(report(config, split, rep))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
