"""YOLO label files: one row per object, ``class cx cy w h`` or ``class x1 y1 x2 y2 ...`` (a polygon),
normalised to the image. :func:`parse_labels` keeps the valid rows and names every problem met
(:class:`Problem`: what, where, and whether the data was ``FIXED`` or ``SKIPPED``); the dataset
checker (:mod:`~yolov7lib.data.check`) tabulates what it does with each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FIXED, SKIPPED = "fixed", "skipped"
NO_LABEL_FILE = "no label file"
ROUNDING = 1e-4  # label files round coordinates: a box this little outside is clipped silently


@dataclass
class Problem:
    path: Path
    kind: str
    action: str  # FIXED or SKIPPED
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.action:7s} {self.kind}: {self.path}" + (f" ({self.detail})" if self.detail else "")


def parse_labels(path: Path, nc: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], list[Problem]]:
    """Valid rows of a YOLO label file (classes, normalised xywh, polygons) and the problems met."""
    if not path.exists():  # the image counts as one without objects
        return np.zeros(0), np.zeros((0, 4)), [], [Problem(path, NO_LABEL_FILE, FIXED, "no objects assumed")]
    try:
        text = path.read_bytes().decode("utf-8-sig")  # a byte-order mark, as some editors write, is dropped
    except UnicodeDecodeError as err:
        raise ValueError(f"not text ({err.reason})") from err
    return parse_rows(path, text.splitlines(), nc)


def parse_rows(path: Path, rows: list[str], nc: int, unit: str = "line",
               ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], list[Problem]]:
    """:func:`parse_labels` on the rows of label text that came from ``path`` (problems name each
    row's ``unit`` and number: another format's annotation converted to rows is checked alike)."""
    problems = []
    classes, boxes, polygons, seen = [], [], [], set()
    for k, line in enumerate(rows, 1):
        values = line.split()
        if not values:
            continue
        try:
            nums = [float(v) for v in values]
        except ValueError:
            problems.append(Problem(path, "malformed row", SKIPPED, f"{unit} {k}: {line[:40]!r}"))
            continue
        if not (len(nums) == 5 or (len(nums) > 6 and len(nums) % 2 == 1)):
            problems.append(Problem(path, "malformed row", SKIPPED, f"{unit} {k}: {len(nums)} values"))
            continue
        if not all(math.isfinite(v) for v in nums):
            problems.append(Problem(path, "NaN or inf", SKIPPED, f"{unit} {k}"))
            continue
        cls = nums[0]
        if cls != int(cls) or not 0 <= cls < nc:
            problems.append(Problem(path, "bad class id", SKIPPED, f"{unit} {k}: class {values[0]} (nc={nc})"))
            continue
        poly = None
        if len(nums) == 5:
            cx, cy, w, h = nums[1:]
            if w <= 0 or h <= 0:
                problems.append(Problem(path, "non-positive box size", SKIPPED, f"{unit} {k}"))
                continue
            x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        else:
            poly = np.asarray(nums[1:], dtype=np.float32).reshape(-1, 2)
            (x1, y1), (x2, y2) = poly.min(0), poly.max(0)
            if x2 <= x1 or y2 <= y1:
                problems.append(Problem(path, "non-positive box size", SKIPPED, f"{unit} {k}"))
                continue
        if x2 <= 0 or y2 <= 0 or x1 >= 1 or y1 >= 1:
            pixels = max(nums[1:]) > 2  # YOLO labels are fractions of the image
            problems.append(Problem(path, "box outside the image", SKIPPED, f"{unit} {k}" + (
                ": coordinates look like pixels; YOLO labels are normalised to [0, 1]" if pixels else "")))
            continue
        if min(x1, y1) < -ROUNDING or max(x2, y2) > 1 + ROUNDING:
            problems.append(Problem(path, "box partly outside the image", FIXED, f"{unit} {k}: clipped"))
        if min(x1, y1) < 0 or max(x2, y2) > 1:  # beyond the rounding of label files: also reported
            x1, y1, x2, y2 = max(x1, 0.0), max(y1, 0.0), min(x2, 1.0), min(y2, 1.0)
            if poly is not None:
                poly = poly.clip(0, 1)
        key = tuple(round(v, 6) for v in nums)
        if key in seen:
            problems.append(Problem(path, "duplicate row", FIXED, f"{unit} {k}: dropped"))
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
