"""Pascal VOC datasets: ``<root>/JPEGImages``, ``<root>/Annotations/<id>.xml`` and the split lists
``<root>/ImageSets/Main/<split>.txt`` (one image id per line), named by a data YAML::

    path: VOC2012
    train: ImageSets/Main/train.txt
    val: ImageSets/Main/val.txt
    names: [aeroplane, bicycle, ...]

:func:`read_voc` reads an annotation, whose objects become YOLO label rows, so the dataset checker
(:func:`~yolov7lib.data.check.load_split`) validates VOC boxes as it validates YOLO labels. Objects
marked ``difficult`` are left out of training and evaluation, as VOC's own evaluation does.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .formats import IMAGE_SUFFIXES
from .labels import FIXED, SKIPPED, Problem


def is_voc_list(source: Path) -> bool:
    """Whether ``source`` is a VOC split list (``<root>/ImageSets/<task>/<split>.txt`` beside ``Annotations``)."""
    return (source.suffix == ".txt" and len(source.parents) > 2 and source.parents[1].name == "ImageSets"
            and (source.parents[2] / "Annotations").is_dir())


def voc_annotations(source: Path) -> list[Path]:
    """The annotation files of the image ids a VOC split list names, in its order."""
    root = source.parents[2]
    return [root / "Annotations" / f"{line.split()[0]}.xml" for line in source.read_text().splitlines() if line.strip()]


@dataclass
class VocAnnotation:
    """What one VOC annotation says: its image (None if not found), the ``(height, width)`` of its
    ``<size>`` (None if absent or zero), and per object ``(class, x1, y1, x2, y2)`` in pixels, or None
    where the object is left out (``problems`` says why)."""

    image: Path | None
    size: tuple[int, int] | None
    objects: list[tuple[int, float, float, float, float] | None]
    problems: list[Problem]

    def rows(self, height: int, width: int) -> list[str]:
        """The objects as normalised YOLO rows ``class cx cy w h`` for an image of this size (blank
        where an object is left out, so that row k is object k)."""
        return ["" if o is None else f"{o[0]} {(o[1] + o[3]) / 2 / width} {(o[2] + o[4]) / 2 / height} "
                f"{(o[3] - o[1]) / width} {(o[4] - o[2]) / height}" for o in self.objects]


def find_image(xml: Path, filename: str | None) -> Path | None:
    """The image of an annotation: ``JPEGImages/<filename>``, else ``JPEGImages/<stem>.<any image suffix>``
    (exports mix PNG, TIFF and JPEG)."""
    folder = xml.parent.parent / "JPEGImages"
    if filename and (folder / filename).is_file():
        return folder / filename
    return next((p for p in sorted(folder.glob(f"{xml.stem}.*")) if p.suffix.lower() in IMAGE_SUFFIXES), None)


def read_voc(xml: Path, names: Sequence[str]) -> VocAnnotation:
    """Parse one annotation (``ET.ParseError`` / ``OSError`` if it cannot be read). VOC's 1-based pixel
    corners are shifted by one, as the Ultralytics conversion does; an object whose name is not in
    ``names`` is a skipped problem, a ``difficult`` one a fixed problem (left out)."""
    root = ET.parse(xml).getroot()
    size = root.find("size")
    w, h = (int(float(size.findtext(k) or 0)) for k in ("width", "height")) if size is not None else (0, 0)
    classes = {name: i for i, name in enumerate(names)}
    objects, problems = [], []
    for k, obj in enumerate(root.iter("object"), 1):
        name = (obj.findtext("name") or "").strip()
        box = obj.find("bndbox")
        corners = [box.findtext(c) if box is not None else None for c in ("xmin", "ymin", "xmax", "ymax")]
        found = None
        if name not in classes:
            problems.append(Problem(xml, "class name not in names", SKIPPED, f"object {k}: {name!r}"))
        elif (obj.findtext("difficult") or "0").strip() == "1":
            problems.append(Problem(xml, "difficult object", FIXED, f"object {k}: left out, as VOC does"))
        elif None in corners:
            problems.append(Problem(xml, "malformed row", SKIPPED, f"object {k}: no bndbox corners"))
        else:
            try:
                found = (classes[name], *(float(c) - 1 for c in corners))
            except ValueError:
                problems.append(Problem(xml, "malformed row", SKIPPED, f"object {k}: bndbox {corners}"))
        objects.append(found)
    return VocAnnotation(find_image(xml, root.findtext("filename")), (h, w) if w and h else None, objects, problems)
