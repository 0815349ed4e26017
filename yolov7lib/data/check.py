"""Dataset checking: every image and label validated, fixed where safe, skipped otherwise, counted.
YOLO label files and Pascal VOC annotations (:mod:`~yolov7lib.data.voc`, checked as YOLO rows) alike.

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
import os
import warnings
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import UnidentifiedImageError

from ..console import HelpFormatter, UserError, run
from .formats import DataConfig, image_files, label_path
from .images import inspect_image
from .labels import NO_LABEL_FILE, SKIPPED, Problem, parse_labels, parse_rows
from .voc import is_voc_list, read_voc, voc_annotations

CACHE_VERSION = 4  # 3: paths relative to the cache's folder; 4: images without a label file are reported


class DatasetError(UserError, RuntimeError):
    """A dataset with nothing usable left."""


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


def _inspect(image: Path) -> tuple[tuple[int, int] | None, list[Problem]]:
    """An image's upright size and what it needs fixing; None and the reason if it cannot be used."""
    try:
        return inspect_image(image)
    except FileNotFoundError:
        return None, [Problem(image, "image missing", SKIPPED)]
    except (OSError, ValueError, UnidentifiedImageError, SyntaxError) as err:
        kind = "image truncated" if "truncated" in str(err).lower() else "image empty or corrupt"
        return None, [Problem(image, kind, SKIPPED, str(err)[:80])]


def _check_one(image: Path, nc: int) -> tuple[CheckedImage | None, list[Problem]]:
    size, problems = _inspect(image)
    if size is None:
        return None, problems
    labels = label_path(image)
    try:
        classes, boxes, polygons, label_problems = parse_labels(labels, nc)
    except (OSError, ValueError) as err:
        return None, [*problems, Problem(labels, "label file unreadable", SKIPPED, str(err)[:80])]
    return CheckedImage(image, size, classes, boxes, polygons), problems + label_problems


def _check_voc(xml: Path, names: Sequence[str]) -> tuple[CheckedImage | None, list[Problem]]:
    """A VOC annotation and its image, checked as a YOLO label file and its image are."""
    try:
        ann = read_voc(xml, names)
    except (OSError, ET.ParseError) as err:
        return None, [Problem(xml, "label file unreadable", SKIPPED, str(err)[:80])]
    if ann.image is None:
        return None, [Problem(xml, "image missing", SKIPPED, f"no {xml.stem}.<image suffix> in JPEGImages")]
    size, problems = _inspect(ann.image)
    if size is None:
        return None, problems
    if ann.size is not None and ann.size != size:
        return None, [*problems, Problem(xml, "annotation size differs from the image", SKIPPED,
                                         f"<size> {ann.size[1]}x{ann.size[0]}, image {size[1]}x{size[0]}")]
    classes, boxes, _, found = parse_rows(xml, ann.rows(*size), len(names), unit="object")
    return CheckedImage(ann.image, size, classes, boxes), problems + ann.problems + found


def _encode(item: CheckedImage | None, problems: list[Problem], root: Path, voc: bool = False) -> dict:
    return {
        "image": None if item is None else {**({"path": os.path.relpath(item.path, root)} if voc else {}),
                                            "size": list(item.size), "classes": item.classes.tolist(),
                                            "boxes": item.boxes.tolist(),
                                            "segments": [s.tolist() for s in item.segments]},
        "problems": [[os.path.relpath(p.path, root), p.kind, p.action, p.detail] for p in problems],
    }


def _decode(path: Path, entry: dict, root: Path) -> tuple[CheckedImage | None, list[Problem]]:
    problems = [Problem(Path(os.path.normpath(root / p)), k, a, d) for p, k, a, d in entry["problems"]]
    im = entry["image"]
    if im is None:
        return None, problems
    path = Path(os.path.normpath(root / im["path"])) if "path" in im else path  # VOC: the entry is the XML
    return CheckedImage(path, tuple(im["size"]), np.asarray(im["classes"], dtype=np.int64),
                        np.asarray(im["boxes"], dtype=np.float32).reshape(-1, 4),
                        [np.asarray(s, dtype=np.float32) for s in im["segments"]]), problems


def load_split(sources: list[Path], nc: int, cache: bool = True, warn: bool = True,
               data_yaml: str | os.PathLike | None = None, names: Sequence[str] | None = None) -> SplitReport:
    """Check a YOLO-format or Pascal VOC split (VOC: split lists ``ImageSets/Main/<split>.txt``, classes
    matched by ``names``); raise :class:`DatasetError` if no usable image is left. With ``warn``, one
    warning sums up the problems (``data_yaml`` names the checker command that lists them)."""
    voc = bool(sources) and all(is_voc_list(Path(s)) for s in sources)
    if voc:
        if names is None or len(names) != nc:
            raise DatasetError(f"{sources[0]} is a Pascal VOC split: its classes are matched by name; give names")
        files = [xml for s in sources for xml in voc_annotations(Path(s))]
        cache_file = Path(sources[0]).with_suffix(".cache.json")
    else:
        files = image_files(sources)
        cache_file = label_path(files[0]).parent.with_suffix(".cache.json") if files else None
    cache_path = cache_file if cache else None
    entries: dict = {}
    if cache_path is not None:
        try:
            data = json.loads(cache_path.read_text())
            if data.get("version") == CACHE_VERSION and data.get("nc") == nc:
                entries = data["entries"]
        except (OSError, ValueError, KeyError):
            entries = {}
    images, problems, fresh = [], [], {}
    root = cache_path.parent if cache_path is not None else Path.cwd()  # cache entries are relative to it
    for file in files:
        name = os.path.relpath(file, root)
        entry = entries.get(name)
        if voc:  # keyed by the XML and the image it named when checked (not cached: no image found)
            image = (entry or {}).get("image") or {}
            key = _digest(file, root / image["path"]) if "path" in image else None
            if entry is None or key is None or entry.get("key") != key:
                item, found = _check_voc(file, names)
                key = _digest(file, item.path) if item is not None else None
                entry = {"key": key, **_encode(item, found, root, voc=True)}
        else:
            key = _digest(file, label_path(file))
            if entry is None or entry.get("key") != key:
                entry = {"key": key, **_encode(*_check_one(file, nc), root)}
        if entry["key"] is not None:
            fresh[name] = entry
        item, found = _decode(file, entry, root)
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
    if warn and problems:
        warnings.warn(summary(problems, sources, len(images), data_yaml), RuntimeWarning, stacklevel=2)
    if not images:
        raise DatasetError(f"no usable image in {', '.join(map(str, sources))}: {len(files)} files, "
                           f"{len(problems)} problems (run python -m yolov7lib.data.check)")
    return SplitReport(images, problems, nc)


def summary(problems: list[Problem], sources: list[Path], images: int, data_yaml: str | os.PathLike | None = None,
            ) -> str:
    """One line for a split's problems: counts per kind, a hint where no image of the ``images`` has a
    label file, and the command that lists every problem."""
    counts = Counter((p.action, p.kind) for p in problems)
    text = (f"{len(problems)} data problem(s) in {', '.join(map(str, sources))}: "
            + "; ".join(f"{n} {action} {kind}" for (action, kind), n in sorted(counts.items())))
    hint = _no_labels_hint(problems, images)
    text += f". {hint}" if hint else ""
    command = f"python -m yolov7lib.data.check {data_yaml}" if data_yaml else "python -m yolov7lib.data.check"
    return text + f". `{command}` lists every one."


def _no_labels_hint(problems: list[Problem], images: int) -> str:
    """Where no image of a split has a label file, the likely cause (a misnamed labels folder)."""
    missing = [p for p in problems if p.kind == NO_LABEL_FILE]
    if not images or len(missing) != images:
        return ""
    return (f"No image has a label file: labels are read from the images' folder with images -> labels "
            f"({missing[0].path.parent}); is that folder named otherwise?")


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
        hint = _no_labels_hint(rep.problems, len(rep.images))
        lines += [f"  {hint}"] if hint else []
    else:
        lines.append("  no problems")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m yolov7lib.data.check", description=__doc__,
                                     formatter_class=HelpFormatter)
    parser.add_argument("data", type=Path, help="data YAML (train / val / nc / names), or a folder holding data.yaml")
    parser.add_argument("--cache", action="store_true",
                        help="write the label caches beside the labels (training reads and writes them anyway)")
    args = parser.parse_args(argv)
    config = DataConfig.load(args.data)
    status = 0
    for split in ("train", "val"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rep = load_split(getattr(config, split), config.nc, cache=args.cache, warn=False, names=config.names)
        except (DatasetError, FileNotFoundError) as err:
            print(f"[{split}] ERROR: {err}")
            status = 1
            continue
        print(report(config, split, rep))
    return status


if __name__ == "__main__":
    raise SystemExit(run(main))
