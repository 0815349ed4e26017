"""Does cuDNN's autotuner or ``torch.compile`` lift yolov7 at 640², FP16, batch 32 (issue 19's goal
of 3,000 images/s)? On one GPU: our fused yolov7 through channels_last and channels_last + CUDA graph,
with ``cudnn.benchmark`` off (as ``make gpu-check``'s speed table) and on, then channels_last +
``torch.compile`` with it on, each beside the official model (the bench peer) in the same process.

    PYTHONPATH=. python benchmarks/cudnn_autotune_bench.py --out results/gpu   # writes speed_cudnn_benchmark.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from yolov7lib import bench, runtime


def main(argv: list[str] | None = None) -> list[bench.Timing]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results/gpu"), help="folder for speed_cudnn_benchmark.csv")
    parser.add_argument("--model", default="yolov7", help="a deploy model (default: yolov7)")
    args = parser.parse_args(argv)
    device = torch.device("cuda")
    rows: list[bench.Timing] = []
    for tuned in (False, True):
        torch.backends.cudnn.benchmark = tuned
        paths = ["channels_last", "channels_last+cuda_graph"] + (["channels_last+compile"] if tuned else [])
        for r in bench.bench_model(args.model, device, (32,), ("fixed",), paths, peer=True, warmup=5, repeats=20):
            r.impl += " (cudnn.benchmark)" if tuned else ""
            rows.append(r)
            print(bench.format_row(r), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    bench.write_csv(rows, args.out / "speed_cudnn_benchmark.csv", runtime.environment(device))
    return rows


if __name__ == "__main__":
    main()
