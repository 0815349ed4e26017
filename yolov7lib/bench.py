"""Inference speed at the paper's protocol (protocol.md §5; Tables 2 and 9), and fast paths.

Two protocols, both on the re-parameterized (deploy, fused) model:

* ``paper``: the input the official ``test.py`` gives a 4:3 COCO image (rect, pad 0.5: 512×672 at
  640, 1024×1344 at 1280), batch 1 and 32, FP16 on CUDA (FP32 on the CPU, and the CSV says so),
  warm-up first; the forward pass is timed alone and NMS separately;
* ``fixed``: square 640² or 1280² inputs, timed with CUDA events on a GPU (``perf_counter`` on the
  CPU); median and p90 per batch.

Fast paths (``eager``, ``channels_last``, ``compile``, ``cuda_graph`` and their combinations with
``channels_last``, and ``onnxruntime``: the exported graph on the CPU) are each timed against plain
eager in the same run and checked to give the same outputs (:func:`relative_error` within
:func:`tolerance`); :func:`fastest` picks the fastest that does. With ``peer=True`` the official
model (``yolov7-package``, :mod:`yolov7lib.peer`) runs with the same weights and inputs in the same
process, and the ratio ours / official is reported. Each row also carries the model's GFLOP per image
and the TFLOPS reached, to set beside :func:`conv_ceiling`: what this device's fastest large
convolutions reach, and so the most speed-up any backend of direct convolutions could show.

    yolov7 bench --models yolov7 yolov7-tiny --batch 1 32 --protocol paper fixed --peer --csv results/speed/cpu.csv
    yolov7 bench --models yolov7 --batch 1 --backend pytorch onnxruntime --peer
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import torch
from torch import nn

from . import runtime
from .complexity import count_gflops
from .console import IMG_MIN, HelpFormatter, at_least, run, stride_multiple
from .models import VARIANTS, build_model
from .postprocess import non_max_suppression
from .reparam import reparameterize

PATHS = ("eager", "channels_last", "compile", "cuda_graph", "channels_last+compile", "channels_last+cuda_graph",
         "onnxruntime")


@dataclass
class Timing:
    model: str
    impl: str  # ours:<path> or official
    protocol: str
    batch: int
    shape: str  # h x w
    precision: str
    forward_ms_median: float
    forward_ms_p90: float
    per_image_ms: float
    fps: float
    gflop: float  # per image at this shape, counted as the official model_info does (2 x MACs)
    tflops: float  # achieved: gflop x fps / 1000, to set beside conv_ceiling()
    nms_ms_per_image: float
    max_abs_diff: float  # outputs against our eager model
    max_rel_diff: float  # the same, relative to 1 + |eager output| (relative_error)
    device: str


def input_shape(name: str, protocol: str, size: int | None = None) -> tuple[int, int]:
    """``paper``: the official ``test.py`` input of a 4:3 COCO-like image, a rect batch with pad 0.5
    (each side ``ceil(side · size / stride + 0.5) · stride``: 512×672 at 640); ``fixed``: a square."""
    v = VARIANTS[name]
    stride = 64 if v.p6 else 32
    size = stride_multiple(size, stride, "timing") if size else v.img_size
    if protocol == "fixed":
        return size, size
    return tuple(math.ceil(side * size / stride + 0.5) * stride for side in (3 / 4, 1.0))


def time_forward(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> list[float]:
    """Milliseconds of each of ``repeats`` calls after ``warmup`` calls (CUDA events on a GPU)."""
    for _ in range(warmup):
        fn()
    runtime.synchronize(device)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t = time.perf_counter()
            fn()
            times.append(1000 * (time.perf_counter() - t))
    return times


CEILING_CONVS = ((128, 160), (256, 80), (512, 40))  # 3x3 convolutions of yolov7's backbone: channels, side


def conv_ceiling(device: torch.device, dtype: torch.dtype, batch: int = 1, warmup: int = 2,
                 repeats: int = 5) -> float:
    """TFLOPS of the fastest of three large 3×3 convolutions (:data:`CEILING_CONVS`, channels_last,
    PyTorch's own kernels) on ``device``: a measured ceiling for a whole network of such layers, which
    also runs small layers, activations and concatenations. A model needing ``gflop`` per image can
    not run faster than ``gflop / ceiling`` ms per image through any backend using direct
    convolutions (a Winograd or lower-precision kernel could)."""
    best = 0.0
    for channels, side in CEILING_CONVS:
        layout = torch.channels_last
        conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(device, dtype, memory_format=layout)
        x = torch.rand(batch, channels, side, side, device=device, dtype=dtype).contiguous(memory_format=layout)
        with torch.no_grad():
            ms = statistics.median(time_forward(partial(conv, x), device, warmup, repeats))
        best = max(best, 2 * batch * channels * channels * 9 * side * side / ms / 1e9)
    return best


class CUDAGraphed:
    """``model`` replayed from CUDA graphs, one captured per input shape and layout (a new batch size
    captures a new graph; all share one memory pool and one side stream for their warm-ups). The
    returned tensor is the graph's static output, overwritten by the next call: copy it to keep it."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.graphs: dict[tuple, tuple[torch.Tensor, torch.cuda.CUDAGraph, tuple]] = {}
        self.pool = None
        self.stream: torch.cuda.Stream | None = None

    def _capture(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.cuda.CUDAGraph, tuple]:
        static_in = x.clone()
        self.stream = stream = self.stream or torch.cuda.Stream(x.device)
        stream.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(stream):
            for _ in range(3):  # warm-up outside the graph (cuDNN picks its algorithms here)
                self.model(static_in)
        torch.cuda.current_stream(x.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            static_out = self.model(static_in)
        self.pool = graph.pool()
        return static_in, graph, static_out

    def __call__(self, x: torch.Tensor):
        if not x.is_cuda:
            raise RuntimeError("CUDA graphs need a CUDA device")
        key = (tuple(x.shape), x.stride(), x.dtype, x.device)
        if key not in self.graphs:
            self.graphs[key] = self._capture(x)
        static_in, graph, static_out = self.graphs[key]
        static_in.copy_(x)
        graph.replay()
        return static_out


def _onnxruntime(model: nn.Module, example: torch.Tensor, folder: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model exported to ONNX (dynamic batch) and run by onnxruntime on the CPU, all graph
    optimizations on, as many threads as PyTorch uses."""
    import onnxruntime as ort

    from .export import export_onnx

    if example.is_cuda:
        raise RuntimeError("the onnxruntime backend is timed on the CPU")
    path = export_onnx(model, folder / f"model_{example.shape[2]}x{example.shape[3]}.onnx", tuple(example.shape[2:]))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run(None, {"images": x.numpy()})[0])


def prepare(model: nn.Module, path: str, example: torch.Tensor,
            export_dir: Path | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """A callable running ``model`` through the fast path ``path`` (returns the decoded outputs).

    A path is ``onnxruntime`` (the exported graph; ``export_dir`` holds it) or PyTorch parts joined
    by ``+``: ``channels_last`` (NHWC activations and weights), then at most one runner, ``compile``
    (``torch.compile``, inductor's default mode, a static graph per input shape) or ``cuda_graph``
    (:class:`CUDAGraphed`); ``eager`` is neither."""
    if path == "onnxruntime":
        if export_dir is None:
            raise ValueError("the onnxruntime path needs a folder for the exported model")
        return _onnxruntime(model, example, export_dir)
    parts = set(path.split("+"))
    if path not in PATHS:
        raise ValueError(f"unknown fast path {path!r}; choose from {', '.join(PATHS)}")
    if "cuda_graph" in parts and not example.is_cuda:
        raise RuntimeError("CUDA graphs need a CUDA device")
    layout = torch.channels_last if "channels_last" in parts else torch.contiguous_format
    model = model.to(memory_format=layout)
    runner: Callable = torch.compile(model, dynamic=False) if "compile" in parts else \
        CUDAGraphed(model) if "cuda_graph" in parts else model
    return lambda x: runner(x.contiguous(memory_format=layout))[0]


def deploy_model(name: str, device: torch.device, half: bool, seed: int = 0) -> nn.Module:
    """The fused deploy model of ``name`` with random (seeded) weights."""
    torch.manual_seed(seed)
    model = build_model(name, "training")
    model = reparameterize(model.eval())
    return model.to(device).half() if half else model.to(device)


def bench_model(name: str, device: torch.device, batches: Sequence[int] = (1, 32), protocols: Sequence[str] = (
        "paper", "fixed"), paths: Sequence[str] = ("eager", "channels_last"), peer: bool = False, warmup: int = 10,
        repeats: int = 50, size: int | None = None) -> list[Timing]:
    """Time ``name`` under every protocol, batch and fast path (and the official peer). NMS is timed
    once per protocol and batch, on our eager outputs: it does not depend on the path."""
    import tempfile

    half = device.type == "cuda"
    dtype = torch.float16 if half else torch.float32
    precision = "FP16" if half else "FP32 (CPU)"
    ours = deploy_model(name, device, half)
    official = None
    if peer:
        try:
            official = _official(name, ours, device, half)
        except (RuntimeError, ImportError) as err:  # the rows of ours still count; the ratio is lost
            print(f"{name}: no official peer: {err}")
    rows = []
    gflop = {}  # per input shape
    with tempfile.TemporaryDirectory(prefix="yolov7lib-bench-") as export_dir:
        runners: dict[tuple, Callable] = {}  # a compiled or graphed model serves every shape; ONNX one size
        for protocol in protocols:
            h, w = input_shape(name, protocol, size)
            for batch in batches:
                x = torch.rand(batch, 3, h, w, device=device, dtype=dtype)
                if (h, w) not in gflop:
                    gflop[h, w] = count_gflops(ours, (h, w))
                with torch.no_grad():
                    reference = ours(x)[0]
                    nms = partial(non_max_suppression, reference)  # the outputs' dtype, as officially
                    t_nms = statistics.median(time_forward(nms, device, 1, 3))
                    impls: list[tuple[str, Callable]] = []
                    for path in paths:
                        try:
                            key = (path, h, w) if path == "onnxruntime" else (path,)  # batch is dynamic
                            if key not in runners:
                                runners[key] = prepare(_copy(ours), path, x, Path(export_dir))
                            impls.append((f"ours:{path}", runners[key]))
                        except (RuntimeError, ImportError) as err:
                            print(f"{name}: skipping {path}: {err}")
                    if official is not None:
                        impls.append(("official", lambda t, m=official: m(t)[0]))
                    for impl, fn in impls:
                        try:
                            out = fn(x)
                        except RuntimeError as err:  # e.g. out of memory: this row is lost, not the model's
                            print(f"{name}: skipping {impl} at batch {batch}: {err}".splitlines()[0])
                            continue
                        diff = float((out.float() - reference.float()).abs().max())
                        rel = relative_error(out, reference)
                        times = time_forward(lambda fn=fn, x=x: fn(x), device, warmup, repeats)
                        median = statistics.median(times)
                        p90 = sorted(times)[min(len(times) - 1, int(0.9 * len(times)))]
                        fps = 1000 * batch / median
                        rows.append(Timing(name, impl, protocol, batch, f"{h}x{w}", precision, median, p90,
                                           median / batch, fps, gflop[h, w], gflop[h, w] * fps / 1000,
                                           t_nms / batch, diff, rel, str(device)))
    return rows


def _copy(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model)


def _official(name: str, ours: nn.Module, device: torch.device, half: bool) -> nn.Module:
    """The official deploy model with our weights: built by the official code (deploy cfg), fused
    with its own ``fuse()``, then loaded with our fused deploy model's state_dict (same keys)."""
    from .peer import official_model

    model = official_model(name, ours.head.nc, "deploy").eval()
    model.fuse()
    model.load_state_dict(ours.state_dict())
    model = model.to(device)
    return model.half() if half else model


def relative_error(out: torch.Tensor, reference: torch.Tensor) -> float:
    """max |out - reference| / (1 + |reference|): relative for boxes in pixels, absolute for scores."""
    out, reference = out.float().to(reference.device), reference.float()
    return float(((out - reference).abs() / (1 + reference.abs())).max())


def fastest(rows: Sequence[Timing], tol: float) -> dict[tuple[str, int], str]:
    """Per (model, batch): the fastest of our fast paths whose outputs stay within ``tol`` (relative_error)."""
    best: dict[tuple[str, int], Timing] = {}
    for r in rows:
        if r.impl.startswith("ours:") and r.max_rel_diff <= tol:
            key = (r.model, r.batch)
            if key not in best or r.per_image_ms < best[key].per_image_ms:
                best[key] = r
    return {k: v.impl.removeprefix("ours:") for k, v in best.items()}


def write_csv(rows: Sequence[Timing], path: str | Path, env: dict[str, str]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        f.write("# " + ", ".join(f"{k}={v}" for k, v in env.items()) + "\n")
        writer = csv.DictWriter(f, fieldnames=list(asdict(rows[0])), lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in asdict(r).items()})


def tolerance(device: torch.device) -> float:
    """The largest :func:`relative_error` a fast path may show against eager and still count: FP16
    rounding on CUDA, FP32 on the CPU."""
    return 1e-2 if device.type == "cuda" else 1e-3


@dataclass(frozen=True)
class Ratio:
    """Our fastest path within tolerance against the official model, for one model, protocol and batch;
    with ``ceiling`` (:func:`conv_ceiling` TFLOPS at this batch) also the share of it reached and the
    most speed-up it allows: the official time over ``gflop / ceiling``."""

    ours: Timing
    official: Timing
    ceiling: float | None = None

    @property
    def speedup(self) -> float:
        return self.official.per_image_ms / self.ours.per_image_ms

    @property
    def figures(self) -> str:
        o = self.ours
        text = (f"ours ({o.impl}) {o.per_image_ms:.2f} ms/img, official {self.official.per_image_ms:.2f} ms/img, "
                f"speed-up {self.speedup:.2f}x")
        if self.ceiling:
            text += (f"; {o.tflops / self.ceiling:.0%} of the conv ceiling, which allows at most "
                     f"{self.official.per_image_ms * self.ceiling / o.gflop:.2f}x")
        return text

    def __str__(self) -> str:
        return f"{self.ours.model} {self.ours.protocol} b{self.ours.batch}: {self.figures}"


def ratios(rows: Sequence[Timing], tol: float = math.inf, ceiling: dict[int, float] | None = None) -> list[Ratio]:
    """Our fastest path (within ``tol``) against the peer, per model, protocol and batch that has both;
    ``ceiling``: :func:`conv_ceiling` TFLOPS per batch, where measured."""
    out = []
    for model, protocol, batch in sorted({(r.model, r.protocol, r.batch) for r in rows}):
        group = [r for r in rows if (r.model, r.protocol, r.batch) == (model, protocol, batch)]
        theirs = [r for r in group if r.impl == "official"]
        ours = [r for r in group if r.impl.startswith("ours:") and r.max_rel_diff <= tol]
        if theirs and ours:
            out.append(Ratio(min(ours, key=lambda r: r.per_image_ms), theirs[0], (ceiling or {}).get(batch)))
    return out


def format_row(r: Timing) -> str:
    return (f"{r.model:16s} {r.impl:30s} {r.protocol:6s} b{r.batch:<3d} {r.shape:9s} {r.per_image_ms:8.3f} ms/img "
            f"{r.fps:8.1f} FPS {r.tflops:7.3f} TFLOPS  nms {r.nms_ms_per_image:6.2f} ms/img  |Δ| {r.max_abs_diff:.1e} "
            f"(rel {r.max_rel_diff:.1e})")


def main(argv: list[str] | None = None) -> list[Timing]:
    parser = argparse.ArgumentParser(prog="yolov7 bench", description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--models", nargs="+", default=["yolov7"], choices=list(VARIANTS), metavar="MODEL",
                        help="deploy models to time; any of " + ", ".join(VARIANTS))
    parser.add_argument("--batch", nargs="+", type=at_least(1), default=[1, 32], help="batch sizes")
    parser.add_argument("--protocol", nargs="+", default=["paper", "fixed"], choices=("paper", "fixed"),
                        help="paper: letterboxed 4:3 inputs; fixed: square inputs")
    parser.add_argument("--paths", nargs="+", default=["eager", "channels_last"], choices=PATHS[:-1], metavar="PATH",
                        help="PyTorch fast paths, each checked against eager: " + ", ".join(PATHS[:-1]))
    parser.add_argument("--backend", nargs="+", default=["pytorch"], choices=("pytorch", "onnxruntime"),
                        help="onnxruntime also times the exported ONNX model on the CPU")
    parser.add_argument("--img", type=at_least(IMG_MIN), default=None,
                        help="long side in pixels (rounded up to the model's stride); None: the model's own size")
    parser.add_argument("--device", default="",
                        help="'' (CUDA if available), cuda (FP16, the paper's protocol), a GPU index or cpu (FP32)")
    parser.add_argument("--peer", action="store_true",
                        help="also time the official model with the same weights (make bench-install), and "
                             "measure the conv ceiling: how much of it each model reaches, the most speed-up it allows")
    parser.add_argument("--warmup", type=at_least(0), default=10, help="untimed calls before timing")
    parser.add_argument("--repeats", type=at_least(1), default=50, help="timed calls; the median is reported")
    parser.add_argument("--csv", type=Path, help="write every row here, the environment in a first comment line")
    args = parser.parse_args(argv)
    device = runtime.select_device(args.device)
    env = runtime.environment(device)
    print("# " + ", ".join(f"{k}={v}" for k, v in env.items()))
    if device.type == "cpu":
        print("# CPU: FP32 (the paper's FP16 protocol needs CUDA)")
    paths = [*(args.paths if "pytorch" in args.backend else ["eager"]),
             *(["onnxruntime"] if "onnxruntime" in args.backend else [])]
    rows = []
    for name in args.models:
        new = bench_model(name, device, args.batch, args.protocol, paths, args.peer, args.warmup, args.repeats,
                          args.img)
        for r in new:
            print(format_row(r), flush=True)
        rows += new
    tol = tolerance(device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    ceiling = {b: conv_ceiling(device, dtype, b) for b in args.batch} if args.peer else None
    for b, tflops in (ceiling or {}).items():
        print(f"conv ceiling, batch {b}: {tflops:.3f} TFLOPS (the fastest 3x3 convolution of {CEILING_CONVS})")
        env[f"conv_ceiling_b{b}"] = f"{tflops:.3f} TFLOPS"
    for ratio in ratios(rows, tol, ceiling):
        print(ratio)
    print("fastest path within tolerance:", fastest(rows, tol))
    if args.csv:
        write_csv(rows, args.csv, env)
    return rows


if __name__ == "__main__":
    raise SystemExit(run(main))
