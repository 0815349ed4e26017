"""Dataset formats: YOLO txt labels with the official / Ultralytics data YAML, and COCO JSON.

Both readers return :class:`Sample` records: an image path, boxes ``(n, 4)`` in pixels (xyxy),
class indices ``(n,)`` and, where the labels give them, polygon segments in pixels (the official
recipe warps boxes through segments). A YOLO label row with more than 5 values is a polygon
``class x1 y1 x2 y2 ...`` whose box is the polygon's extent, as officially (rows are parsed by
:func:`yolov7lib.data.labels.parse_labels`).
"""

from __future__ import annotations

import contextlib
import glob
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..console import UserError
from .labels import SKIPPED, parse_labels

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")  # read through OpenCV

# COCO's 80 contiguous classes -> its 91 category ids (official general.py coco80_to_coco91_class)
COCO80_TO_91 = (
    list(range(1, 12)) + list(range(13, 26)) + [27, 28] + list(range(31, 45)) + list(range(46, 66))
    + [67, 70] + list(range(72, 83)) + list(range(84, 91))
)


@dataclass
class Sample:
    """One image and its objects (pixels, xyxy)."""

    image: Path
    boxes: np.ndarray  # (n, 4) float32
    classes: np.ndarray  # (n,) int64
    segments: list[np.ndarray] = field(default_factory=list)  # per object (k, 2), or empty
    size: tuple[int, int] | None = None  # (height, width) if known
    image_id: int | None = None


class DataConfigError(UserError, ValueError):
    """A data YAML that cannot be right."""


@dataclass
class DataConfig:
    """An official / Ultralytics data YAML: split sources, class count and names."""

    root: Path
    train: list[Path]
    val: list[Path]
    nc: int
    names: list[str]
    path: Path | None = None  # the YAML file

    @classmethod
    def load(cls, path: str | os.PathLike) -> DataConfig:
        """Read a data YAML, or the ``data.yaml`` of a dataset folder."""
        import yaml

        path = Path(path)
        if path.is_dir():
            if not (path / "data.yaml").is_file():
                raise DataConfigError(f"{path} is a folder without a data.yaml; give the data YAML")
            path = path / "data.yaml"
        if not path.is_file():
            raise DataConfigError(f"no data YAML at {path}")
        with open(path) as f:
            raw = yaml.safe_load(f) or {}
        if not isinstance(raw, dict):
            raise DataConfigError(f"{path} is not a data YAML (train, val, nc, names)")
        missing = [k for k in ("train", "val") if k not in raw]
        if missing:
            raise DataConfigError(f"{path}: data YAML lacks {', '.join(missing)}")
        if "nc" not in raw and not raw.get("names"):
            raise DataConfigError(f"{path}: give the classes as nc (their number) or names (a list)")
        root = Path(raw.get("path") or ".")
        if not root.is_absolute():
            root = (path.parent / root).resolve()
        names = raw.get("names")
        if isinstance(names, dict):
            names = [names[k] for k in sorted(names)]
        nc = int(raw.get("nc", len(names or [])))
        if nc < 1:
            raise DataConfigError(f"{path}: nc must be at least 1, got {nc}")
        names = [str(n) for n in (names or [f"class{i}" for i in range(nc)])]
        if len(names) != nc:
            raise DataConfigError(f"{path}: nc={nc} but {len(names)} names")

        def sources(v) -> list[Path]:
            items = v if isinstance(v, list) else [v]
            return [p if p.is_absolute() else root / p for p in map(Path, items)]

        return cls(root, sources(raw["train"]), sources(raw["val"]), nc, names, path)


def image_files(sources: Sequence[Path], suffixes: Sequence[str] = IMAGE_SUFFIXES) -> list[Path]:
    """Images named by directories, list files (one path per line), single files or glob patterns
    (``clips/*.mp4``, ``data/**/*.jpg``), sorted; ``suffixes`` the kinds of file a directory yields."""
    files: list[Path] = []
    for src in map(Path, sources):
        if src.is_dir():
            files += [p for p in src.rglob("*") if p.suffix.lower() in suffixes]
        elif src.suffix == ".txt":
            base = src.parent
            for line in src.read_text().splitlines():
                line = line.strip()
                if line:
                    p = Path(line)
                    files.append(p if p.is_absolute() else (base / p).resolve())
        elif src.exists():
            files.append(src)
        elif any(c in str(src) for c in "*?["):
            matches = [Path(p) for p in glob.glob(str(src), recursive=True)]
            if not matches:
                raise FileNotFoundError(f"no file matches {src}")
            files += [p for p in matches if p.is_file()]
        else:
            raise FileNotFoundError(f"dataset source {src} does not exist")
    return sorted(files)


def label_path(image: Path) -> Path:
    """``.../images/x/0001.jpg`` -> ``.../labels/x/0001.txt`` (the official convention)."""
    parts = list(image.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def read_coco(annotations: str | os.PathLike, images_dir: str | os.PathLike | None = None,
              contiguous: bool = True) -> tuple[list[Sample], list[str], list[int]]:
    """Samples of a COCO instances JSON (pycocotools); crowd annotations are skipped.

    Returns (samples, class names, category ids); with ``contiguous`` classes are 0..nc-1 in
    category-id order (COCO's 80 of 91 ids), and ``category ids[i]`` maps class ``i`` back.
    """
    from pycocotools.coco import COCO

    annotations = Path(annotations)
    images_dir = Path(images_dir) if images_dir else annotations.parent.parent / "images" / annotations.stem.split(
        "_", 1)[-1]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco = COCO(str(annotations))
    cat_ids = sorted(coco.getCatIds())
    names = [coco.cats[c]["name"] for c in cat_ids]
    to_class = {c: (i if contiguous else c) for i, c in enumerate(cat_ids)}
    samples = []
    for image_id in sorted(coco.getImgIds()):
        info = coco.imgs[image_id]
        anns = [a for a in coco.imgToAnns.get(image_id, []) if not a.get("iscrowd", 0)]
        boxes = np.asarray([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                            for a in anns], dtype=np.float32).reshape(-1, 4)
        classes = np.asarray([to_class[a["category_id"]] for a in anns], dtype=np.int64)
        segments = []
        if anns and all(isinstance(a.get("segmentation"), list) and a["segmentation"] for a in anns):
            segments = [np.asarray(max(a["segmentation"], key=len), dtype=np.float32).reshape(-1, 2) for a in anns]
        samples.append(Sample(images_dir / info["file_name"], boxes, classes, segments,
                              (info.get("height"), info.get("width")), image_id))
    return samples, names, cat_ids


def read_yolo(sources: Sequence[Path], nc: int) -> list[Sample]:
    """Samples of a YOLO-format split (label files beside ``images/`` in ``labels/``), strictly.

    Image sizes are read from the file headers; missing label files mean "no objects". Any row the
    checker would drop raises ``ValueError`` naming the file; use
    :func:`yolov7lib.data.check.load_split` to fix or skip bad data instead.
    """
    samples = []
    for image in image_files(sources):
        with Image.open(image) as im:
            width, height = im.size
        labels = label_path(image)
        classes, xywh, polygons, problems = parse_labels(labels, nc)
        bad = [p for p in problems if p.action == SKIPPED]
        if bad:
            raise ValueError(f"{labels}: {bad[0].kind} ({bad[0].detail})")
        scale = np.array([width, height, width, height], dtype=np.float32)
        xyxy = np.concatenate((xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2), 1) * scale
        segments = [p * scale[:2] for p in polygons]
        samples.append(Sample(image, xyxy.astype(np.float32), classes.astype(np.int64), segments,
                              (height, width)))
    return samples
