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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/bench_synthetic"))
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--csv", type=Path)
    args = parser.parse_args()
    if not (args.data / "images" / "train").exists():
        generate(args.data, train=args.images, val=1, size=args.size, seed=0)
    import numpy as np

    if not hasattr(np, "int"):  # the official code predates numpy 1.24
        np.int = int
    from yolov7_package.utils.datasets import LoadImagesAndLabels

    header = ["recipe", "img_size", "workers", "official_img_per_s", "ours_img_per_s", "ratio"]
    rows = []
    print(" | ".join(header))
    no_paste = replace(P5, paste_in=0.0)
    for recipe, hyp, cache in (("p5 (paste-in 0.15)", P5, False), ("p5 without paste-in", no_paste, False),
                               ("p5 without paste-in, images cached", no_paste, True)):
        ours = DetectionDataset(load_split([args.data / "images" / "train"], 8, warn=False).images, args.size,
                                hyp, augment=True, cache_images=cache)
        # its label cache is read back with torch.load's weights_only default, which torch >= 2.6 refuses
        (args.data / "labels" / "train.cache").unlink(missing_ok=True)
        official = LoadImagesAndLabels(str(args.data / "images" / "train"), args.size, args.batch_size,
                                       augment=True, hyp=hyp.to_dict(), cache_images=cache)
        rates = {}
        for name, ds, collate in (("official", official, LoadImagesAndLabels.collate_fn),
                                  ("ours", ours, DetectionDataset.collate)):
            rates[name] = throughput(ds, collate, args.batches, args.batch_size, args.workers)
        row = [recipe, args.size, args.workers, f"{rates['official']:.1f}", f"{rates['ours']:.1f}",
               f"{rates['ours'] / rates['official']:.2f}"]
        rows.append(row)
        print(" | ".join(map(str, row)), flush=True)
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w", newline="") as f:
            csv.writer(f).writerows([header, *rows])


if __name__ == "__main__":
    main()
