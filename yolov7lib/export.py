"""ONNX export of the deploy model: dynamic batch, raw decoded outputs, optionally with NMS.

``export_onnx(model, path)`` re-parameterizes a training model first (planned re-parameterization,
§3.2), so the graph holds only plain convolutions. The output is ``(batch, N, 5 + nc)``: boxes
(cx, cy, w, h in input pixels), objectness and class probabilities, exactly the decoded output of
the PyTorch model. With ``nms=True`` the graph ends with ONNX ``NonMaxSuppression`` over
``obj · cls`` scores and returns ``(k, 7)`` rows ``(image, x1, y1, x2, y2, score, class)``.

    yolov7 export --weights best.pt --img 640 --out best.onnx [--nms] [--half]
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import torch
import torchvision  # imported before export: the exporter's registry then knows torchvision's nms
from torch import nn

from .boxes import xywh_to_xyxy
from .console import IMG_MIN, HelpFormatter, at_least, fraction, stride_multiple
from .reparam import reparameterize


class _WithNMS(nn.Module):
    """Decoded outputs -> class-aware NMS inside the graph (``torchvision.ops.nms`` exports as ONNX
    NonMaxSuppression). Each box keeps its best class, as ``non_max_suppression(multi_label=False)``;
    images and classes are kept apart by moving every (image, class) group to its own region,
    ``group · (coordinate range + 1)`` past the smallest coordinate, with dense group numbers, which
    keeps the float32 shift small and holds for boxes reaching past the top-left corner."""

    def __init__(self, model: nn.Module, conf: float, iou: float) -> None:
        super().__init__()
        self.model, self.conf, self.iou = model, conf, iou
        self.nc = model.head.nc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pred = self.model(x)[0]
        bs, n, _ = pred.shape
        scores = pred[..., 4:5] if self.nc == 1 else pred[..., 5:] * pred[..., 4:5]
        score, cls = scores.max(-1)
        boxes = xywh_to_xyxy(pred[..., :4]).reshape(-1, 4)
        image = torch.arange(bs, device=x.device).repeat_interleave(n)
        score, cls = score.reshape(-1), cls.reshape(-1)
        keep = score > self.conf
        boxes, score, cls, image = boxes[keep], score[keep], cls[keep], image[keep]
        flat = torch.cat((boxes.reshape(-1), boxes.new_zeros(1)))  # 0 when nothing passed
        smallest = flat.min()
        shift = (image * self.nc + cls).to(boxes.dtype)[:, None] * (flat.max() - smallest + 1) - smallest
        kept = torchvision.ops.nms(boxes + shift, score, self.iou)
        return torch.cat((image[kept, None].float(), boxes[kept], score[kept, None], cls[kept, None].float()), 1)


def export_onnx(model: nn.Module, path: str | Path, img_size: int | tuple[int, int] = 640, nms: bool = False,
                conf: float = 0.25, iou: float = 0.45, opset: int = 18) -> Path:
    """Write ``model`` (training or deploy form) as ONNX with a dynamic batch axis; return the path.

    The graph is captured by ``torch.export`` (PyTorch's current ONNX exporter, ``dynamo=True``;
    it needs the ``onnx`` and ``onnxscript`` packages: ``pip install yolov7lib[export]``)."""
    try:
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise ImportError("ONNX export needs onnx and onnxscript: pip install 'yolov7lib[export]'") from err
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    deploy = reparameterize(model) if getattr(model.config, "form", "deploy") == "training" else model.eval()
    h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
    param = next(deploy.parameters())
    example = torch.zeros(1, 3, h, w, device=param.device, dtype=param.dtype)
    net = (_WithNMS(deploy, conf, iou) if nms else _Decoded(deploy)).eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings():  # the head's grid cache is filled during capture: harmless here
        warnings.filterwarnings("ignore", message=".*were assigned during export.*")
        warnings.filterwarnings("ignore", category=FutureWarning)
        program = torch.onnx.export(net, (example,), input_names=["images"],
                                    output_names=["detections"] if nms else ["output"],
                                    dynamic_shapes={"x": {0: batch}}, opset_version=opset, dynamo=True,
                                    verbose=False)
    program.save(str(path))
    return path


class _Decoded(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[0]


def main(argv: list[str] | None = None) -> Path:
    from .checkpoint import load_any

    parser = argparse.ArgumentParser(prog="yolov7 export", description=__doc__,
                                     formatter_class=HelpFormatter)
    parser.add_argument("--weights", required=True, help="one of our checkpoints or an official .pt")
    parser.add_argument("--img", type=at_least(IMG_MIN), nargs="+", default=[640],
                        help="input size, or height width (rounded up to the model's stride)")
    parser.add_argument("--out", type=Path, help="the .onnx file; None: the weights' path with .onnx")
    parser.add_argument("--nms", action="store_true", help="end the graph with NMS (best class per box)")
    parser.add_argument("--conf-thres", type=fraction, default=0.25, help="with --nms: lowest score kept")
    parser.add_argument("--iou-thres", type=fraction, default=0.45, help="with --nms: NMS IoU threshold")
    parser.add_argument("--half", action="store_true", help="FP16 weights (export on CUDA)")
    args = parser.parse_args(argv)
    if len(args.img) > 2:
        parser.error("argument --img: one size, or height and width")
    if args.half and not torch.cuda.is_available():
        parser.error("argument --half: FP16 export needs CUDA")
    model = load_any(args.weights)
    if args.half:
        model = model.cuda().half()
    stride = int(max(model.head.strides))
    size = tuple(stride_multiple(s, stride, "exporting") for s in (args.img * 2)[:2])
    out = export_onnx(model, args.out or Path(args.weights).with_suffix(".onnx"), size, args.nms, args.conf_thres,
                      args.iou_thres)
    print(f"wrote {out}")
    return out
