"""The embedded default dataset: deterministic synthetic detection images, in COCO and YOLO formats.

``python -m yolov7lib.data.synthetic --out DIR --train N --val M --size S --seed K`` writes::

    DIR/images/{train,val}/000000.jpg
    DIR/labels/{train,val}/000000.txt          # YOLO with segments: class x1 y1 x2 y2 ... (normalised)
    DIR/annotations/instances_{train,val}.json  # COCO, with polygon segmentations
    DIR/data.yaml                               # train / val / nc / names (official data YAML)

Eight classes, each a shape in its own hue (shapes × colours; all drawn as polygons, so every object
has an exact segment) with random saturation and brightness, sizes spread like COCO's (long sides
from 10 px, log-uniform: at 320 px about 42 % small < 32², 36 % medium, 22 % large; COCO: 41 / 34 / 24),
textured and cluttered backgrounds (lines, greyish blobs), occlusion (an object hidden by more than
60 % is not drawn: every object in sight is labelled), 0-20 objects per image and about 5 % empty
images. Image ``i`` of a split depends only on ``(seed, split, i)``, so the output is identical
whatever the number of worker processes.

Each polygon is written closed, its first vertex repeated at the end. The official pipeline resamples
an outline from its first vertex to its last (``resample_segments``, no closing edge), so the labels
of a warped mosaic would otherwise miss a side of each shape (a quarter of a square's outline), where
COCO's dense polygons miss only a short gap.
"""

from __future__ import annotations

import argparse
import colorsys
import json
import math
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..console import IMG_MIN, HelpFormatter, at_least, run

CLASSES = ("circle", "square", "triangle", "diamond", "star", "cross", "hexagon", "arrow")
MAX_OBJECTS = 20
EMPTY_FRACTION = 0.05
MIN_VISIBLE = 0.4


def _unit_polygon(name: str) -> np.ndarray:
    """The class's outline in a unit box centred at 0 (x, y in [-0.5, 0.5])."""
    if name == "circle":
        t = np.linspace(0, 2 * math.pi, 32, endpoint=False)
        return 0.5 * np.stack((np.cos(t), np.sin(t)), 1)
    if name == "square":
        return np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
    if name == "triangle":  # base midpoint included: polygons of >= 4 points, as official readers need
        return np.array([[0.0, -0.5], [0.5, 0.5], [0.0, 0.5], [-0.5, 0.5]])
    if name == "diamond":
        return np.array([[0.0, -0.5], [0.5, 0.0], [0.0, 0.5], [-0.5, 0.0]])
    if name == "star":
        t = np.linspace(-math.pi / 2, 1.5 * math.pi, 10, endpoint=False)
        r = np.where(np.arange(10) % 2 == 0, 0.5, 0.2)
        return np.stack((r * np.cos(t), r * np.sin(t)), 1)
    if name == "cross":
        a, b = 0.5, 0.17
        return np.array([[-b, -a], [b, -a], [b, -b], [a, -b], [a, b], [b, b], [b, a], [-b, a], [-b, b],
                         [-a, b], [-a, -b], [-b, -b]])
    if name == "hexagon":
        t = np.linspace(0, 2 * math.pi, 6, endpoint=False)
        return 0.5 * np.stack((np.cos(t), np.sin(t)), 1)
    if name == "arrow":
        return np.array([[-0.5, -0.15], [0.1, -0.15], [0.1, -0.4], [0.5, 0.0], [0.1, 0.4], [0.1, 0.15],
                         [-0.5, 0.15]])
    raise KeyError(name)


SHAPES = {name: _unit_polygon(name) for name in CLASSES}


@dataclass
class Annotation:
    cls: int
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels
    polygon: np.ndarray  # (n, 2) pixels


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, {"train": 0, "val": 1}.get(split, 2), index])


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    """Low-frequency colour noise + stripes or a gradient + clutter (lines, blobs, speckle)."""
    cells = int(rng.integers(3, 9))
    base = rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize((size, size), Image.BICUBIC)
    arr = np.asarray(img, dtype=np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if rng.random() < 0.5:
        freq, angle = rng.uniform(4, 30), rng.uniform(0, math.pi)
        stripes = np.sin(2 * math.pi * freq * (xx * math.cos(angle) + yy * math.sin(angle)))
        arr += stripes[..., None] * rng.uniform(10, 40)
    else:
        arr += (xx * rng.uniform(-60, 60) + yy * rng.uniform(-60, 60))[..., None]
    arr += rng.normal(0, rng.uniform(2, 12), arr.shape)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(5, 40))):
        p = rng.uniform(0, size, 4)
        draw.line(list(map(float, p)), fill=tuple(int(c) for c in rng.integers(0, 256, 3)),
                  width=int(rng.integers(1, 4)))
    for _ in range(int(rng.integers(0, 15))):  # distractor blobs that are not objects
        cx, cy, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(2, size / 25)
        draw.ellipse([cx - r, cy - r * rng.uniform(0.3, 1), cx + r, cy + r], fill=_distractor_colour(rng))
    return img


def _distractor_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    """Greyish (saturation below 0.3, objects have 0.55 or more): a blob never looks like an object,
    a filled shape in a class's hue, which would be an unlabelled object."""
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0, 0.3), rng.uniform(0.15, 1.0))
    return int(r * 255), int(g * 255), int(b * 255)


def _class_colour(rng: np.random.Generator, cls: int) -> tuple[int, int, int]:
    """Each class has its own hue (eight hues 45° apart, jittered by ±8°) in random saturation and
    brightness: the classes are shapes × colours, so that small objects stay recognisable."""
    hue = (cls / len(CLASSES) + rng.uniform(-0.022, 0.022)) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, rng.uniform(0.55, 1.0), rng.uniform(0.55, 1.0))
    return int(r * 255), int(g * 255), int(b * 255)


MIN_SIDE = 10.0


@dataclass(frozen=True)
class Scene:
    """What an image holds: objects of the first ``classes`` classes of :data:`CLASSES`, 1 to
    ``max_objects`` of them drawn before occlusion, long sides from ``min_side`` px. The defaults are
    the COCO-like dataset; fewer classes and larger objects make an easier task for short schedules
    on small images."""

    classes: int = len(CLASSES)
    max_objects: int = MAX_OBJECTS
    min_side: float = MIN_SIDE

    def __post_init__(self) -> None:
        if not 1 <= self.classes <= len(CLASSES):
            raise ValueError(f"classes must be 1 to {len(CLASSES)}, got {self.classes}")
        if self.max_objects < 1 or self.min_side < 4:
            raise ValueError(f"max_objects must be >= 1 and min_side >= 4 px, got {self.max_objects}, {self.min_side}")


def _object_size(rng: np.random.Generator, size: int, min_side: float = MIN_SIDE) -> float:
    """Longest side in pixels, log-uniform from 10 px to 0.7·size: small / medium / large (COCO's box
    area ranges, in pixels of the image) come out at about 42 / 36 / 22 % at 320 px, COCO's 41 / 34 /
    24 %, and 34 / 31 / 36 % at 640. No object is under 10 px, which would be hardly recognisable."""
    high = 0.7 * size
    return float(np.exp(rng.uniform(math.log(min(min_side, high / 2)), math.log(high))))


def render(seed: int, split: str, index: int, size: int,
           scene: Scene = Scene()) -> tuple[Image.Image, list[Annotation]]:
    """Image ``index`` of ``split``: the picture and its visible objects."""
    rng = _rng(seed, split, index)
    img = _background(rng, size)
    n = 0 if rng.random() < EMPTY_FRACTION else int(rng.integers(1, scene.max_objects + 1))
    objects, masks = [], []
    for _ in range(n):
        cls = int(rng.integers(scene.classes))
        long_side = _object_size(rng, size, scene.min_side)
        aspect = rng.uniform(0.6, 1.0)
        w, h = (long_side, long_side * aspect) if rng.random() < 0.5 else (long_side * aspect, long_side)
        angle = rng.uniform(-math.pi / 8, math.pi / 8)
        rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        pts = (SHAPES[CLASSES[cls]] * [w, h]) @ rot.T
        cx, cy = rng.uniform(0, size), rng.uniform(0, size)
        pts = np.clip(pts + np.array([cx, cy]), 0, size - 1)
        if np.ptp(pts[:, 0]) < 4 or np.ptp(pts[:, 1]) < 4:
            continue
        mask = Image.new("L", (size, size), 0)
        ImageDraw.Draw(mask).polygon([tuple(p) for p in pts], fill=255)
        masks.append(np.asarray(mask) > 0)
        objects.append((cls, pts, _class_colour(rng, cls)))
    # top-down: an object stays if the objects kept above it leave MIN_VISIBLE of it in sight; the others
    # are not drawn at all, so that no unlabelled fragment of an object is left in the picture
    kept, covered = [], np.zeros((size, size), dtype=bool)
    for k in range(len(objects) - 1, -1, -1):
        area = masks[k].sum()
        if area and (masks[k] & ~covered).sum() / area >= MIN_VISIBLE:
            kept.append(k)
            covered |= masks[k]
    annotations = []
    draw = ImageDraw.Draw(img)
    for k in sorted(kept):
        cls, pts, colour = objects[k]
        draw.polygon([tuple(p) for p in pts], fill=colour, outline=tuple(int(c * 0.5) for c in colour))
        (x1, y1), (x2, y2) = pts.min(0), pts.max(0)
        annotations.append(Annotation(cls, (float(x1), float(y1), float(x2), float(y2)), pts))
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    return img, annotations


def _write_one(args: tuple[Path, int, str, int, int, Scene]) -> list[dict]:
    out, seed, split, index, size, scene = args
    img, anns = render(seed, split, index, size, scene)
    name = f"{index:06d}"
    img.save(out / "images" / split / f"{name}.jpg", quality=90)
    lines = []
    records = []
    for a in anns:
        x1, y1, x2, y2 = a.box
        poly = np.concatenate((a.polygon, a.polygon[:1]))  # closed: see the module's docstring
        lines.append(f"{a.cls} " + " ".join(f"{v / size:.6f}" for v in poly.reshape(-1)))
        area = 0.5 * abs(np.dot(poly[:, 0], np.roll(poly[:, 1], 1)) - np.dot(poly[:, 1], np.roll(poly[:, 0], 1)))
        records.append({"category_id": a.cls + 1, "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2),
                        round(y2 - y1, 2)], "area": round(float(area), 2), "iscrowd": 0,
                        "segmentation": [[round(float(v), 2) for v in poly.reshape(-1)]]})
    (out / "labels" / split / f"{name}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    return records


def write_split(out: Path, split: str, count: int, size: int, seed: int, workers: int,
                scene: Scene = Scene()) -> int:
    """Write one split; return the number of objects."""
    for sub in ("images", "labels"):
        (out / sub / split).mkdir(parents=True, exist_ok=True)
    jobs = [(out, seed, split, i, size, scene) for i in range(count)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results: Iterator[list[dict]] = pool.map(_write_one, jobs, chunksize=16)
            results = list(results)
    else:
        results = [_write_one(j) for j in jobs]
    images, annotations = [], []
    for i, records in enumerate(results):
        images.append({"id": i, "file_name": f"{i:06d}.jpg", "width": size, "height": size})
        for r in records:
            annotations.append({"id": len(annotations) + 1, "image_id": i, **r})
    coco = {
        "info": {"description": f"yolov7lib synthetic shapes, seed {seed}", "version": "1"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": n, "supercategory": "shape"}
                       for i, n in enumerate(CLASSES[:scene.classes])],
    }
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    (out / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))
    return len(annotations)


def generate(out: str | os.PathLike, train: int = 512, val: int = 128, size: int = 320, seed: int = 0,
             workers: int | None = None, scene: Scene = Scene()) -> Path:
    """Write the dataset to ``out`` and return the path of its ``data.yaml``."""
    out = Path(out)
    workers = workers or min(2, os.cpu_count() or 1)
    for split, count in (("train", train), ("val", val)):
        write_split(out, split, count, size, seed, workers, scene)
    names = "\n".join(f"  - {n}" for n in CLASSES[:scene.classes])
    data_yaml = out / "data.yaml"
    data_yaml.write_text(f"# yolov7lib synthetic shapes (seed {seed}, {size}px)\npath: .\ntrain: images/train\n"
                         f"val: images/val\nnc: {scene.classes}\nnames:\n{names}\n")
    return data_yaml


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m yolov7lib.data.synthetic", description=__doc__,
                                     formatter_class=HelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="dataset folder")
    parser.add_argument("--train", type=at_least(1), default=512, help="training images")
    parser.add_argument("--val", type=at_least(1), default=128, help="validation images")
    parser.add_argument("--size", type=at_least(IMG_MIN), default=320, help="image side in pixels")
    parser.add_argument("--seed", type=at_least(0), default=0, help="the dataset's seed (same seed, same bytes)")
    parser.add_argument("--classes", type=at_least(1), default=len(CLASSES),
                        help="the first N classes of " + ", ".join(CLASSES))
    parser.add_argument("--max-objects", type=at_least(1), default=MAX_OBJECTS, help="objects drawn per image, at most")
    parser.add_argument("--min-side", type=float, default=MIN_SIDE, help="shortest long side of an object, pixels")
    parser.add_argument("--workers", type=at_least(1), default=None, help="processes; None: up to 2")
    args = parser.parse_args(argv)
    if args.classes > len(CLASSES):
        parser.error(f"argument --classes: at most {len(CLASSES)}, the shapes drawn")
    t = time.perf_counter()
    generate(args.out, args.train, args.val, args.size, args.seed, args.workers,
             Scene(args.classes, args.max_objects, args.min_side))
    secs = time.perf_counter() - t
    print(f"wrote {args.train + args.val} images to {args.out} in {secs:.1f}s "
          f"({(args.train + args.val) / secs * 60:.0f} images/min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
