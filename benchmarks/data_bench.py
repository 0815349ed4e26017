"""Training-pipeline throughput: yolov7lib's DetectionDataset against the official LoadImagesAndLabels.

Both read the same images (the synthetic dataset, generated here if missing) with the same p5
hyper-parameters (mosaic 4/9, MixUp, perspective through segments, HSV, paste-in, flips) at 640
through a ``DataLoader`` with 2 workers, in this process, and the script prints images/s and the
ratio ours / official, for the full p5 recipe, for the same without paste-in, and for that again
with every image decoded once into RAM on both sides (the official ``cache_images``).

    python benchmarks/data_bench.py [--images 256] [--batches 60] [--workers 2] [--csv results/bench/data_cpu.csv]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from yolov7lib.data.check import load_split
from yolov7lib.data.dataset import DetectionDataset
from yolov7lib.data.synthetic import generate
from yolov7lib.hyp import P5
from yolov7lib.runtime import available_cores


def throughput(dataset, collate, batches: int, batch_size: int, workers: int) -> float:
    sampler = torch.utils.data.RandomSampler(dataset, replacement=True, num_samples=(batches + 1) * batch_size,
                                             generator=torch.Generator().manual_seed(0))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                                         collate_fn=collate)
    it = iter(loader)
    next(it)  # workers started, first batch
    t = time.perf_counter()
    n = 0
    for _ in range(batches):
        images = next(it)[0]
        n += images.shape[0]
    return n / (time.perf_counter() - t)


RECIPES = ("p5", "p5-no-paste", "p5-no-paste-cached")


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/bench_synthetic"),
                        help="a folder of generated images (made here when missing)")
    parser.add_argument("--images", type=int, default=256, help="training images to generate")
    parser.add_argument("--size", type=int, default=640, help="image size, generated and loaded")
    parser.add_argument("--batches", type=int, default=60, help="timed batches per loader")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes on both sides")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=RECIPES,
                        help="p5 (paste-in 0.15), p5 without paste-in, and that with images cached in RAM")
    parser.add_argument("--ours-only", action="store_true", help="without the official loader (not installed)")
    parser.add_argument("--csv", type=Path)
    args = parser.parse_args(argv)
    if not (args.data / "images" / "train").exists():
        generate(args.data, train=args.images, val=1, size=args.size, seed=0, workers=available_cores())
    if not args.ours_only:
        import numpy as np

        if not hasattr(np, "int"):  # the official code predates numpy 1.24
            np.int = int
        from yolov7_package.utils.datasets import LoadImagesAndLabels

    header = ["recipe", "img_size", "workers", "official_img_per_s", "ours_img_per_s", "ratio"]
    rows = []
    print(" | ".join(header))
    no_paste = replace(P5, paste_in=0.0)
    recipes = {"p5": ("p5 (paste-in 0.15)", P5, False), "p5-no-paste": ("p5 without paste-in", no_paste, False),
               "p5-no-paste-cached": ("p5 without paste-in, images cached", no_paste, True)}
    for recipe, hyp, cache in (recipes[r] for r in args.recipes):
        ours = DetectionDataset(load_split([args.data / "images" / "train"], 8, warn=False).images, args.size,
                                hyp, augment=True, cache_images=cache)
        loaders = [("ours", ours, DetectionDataset.collate)]
        if not args.ours_only:
            # its label cache is read back with torch.load's weights_only default, which torch >= 2.6 refuses
            (args.data / "labels" / "train.cache").unlink(missing_ok=True)
            official = LoadImagesAndLabels(str(args.data / "images" / "train"), args.size, args.batch_size,
                                           augment=True, hyp=hyp.to_dict(), cache_images=cache)
            loaders.insert(0, ("official", official, LoadImagesAndLabels.collate_fn))
        rates = {name: throughput(ds, collate, args.batches, args.batch_size, args.workers)
                 for name, ds, collate in loaders}
        theirs = rates.get("official")
        row = [recipe, args.size, args.workers, f"{theirs:.1f}" if theirs else "", f"{rates['ours']:.1f}",
               f"{rates['ours'] / theirs:.2f}" if theirs else ""]
        rows.append(row)
        print(" | ".join(map(str, row)), flush=True)
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w", newline="") as f:
            csv.writer(f).writerows([header, *rows])
    return [dict(zip(header, row)) for row in rows]


if __name__ == "__main__":
    main()
