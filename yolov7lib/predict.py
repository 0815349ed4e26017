"""Detection end to end, as in the official ``detect.py``: letterbox (the longer side to the image size,
rounded up to the model's stride; the shorter padded to the next multiple of the stride) → model →
NMS (each box its best class) → boxes in the original image's pixels.

:func:`predict` detects objects in one image or video frame and returns :class:`Detections` (boxes,
scores, classes and their names); :func:`predict_source` does it for every image and every frame of
every video that files, folders, list files or glob patterns name; ``yolov7 detect`` writes what
they find.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from .boxes import xyxy_to_xywhn
from .data.augment import letterbox
from .data.formats import IMAGE_SUFFIXES, VIDEO_SUFFIXES, image_files
from .data.images import load_rgb, video_frames
from .postprocess import non_max_suppression, scale_boxes

SOURCE_SUFFIXES = IMAGE_SUFFIXES + VIDEO_SUFFIXES


@dataclass(frozen=True)
class Detections:
    """The objects found in one image or video frame, in its own pixels."""

    boxes: np.ndarray  # (n, 4) x1 y1 x2 y2
    scores: np.ndarray  # (n,)
    classes: np.ndarray  # (n,) int
    names: tuple[str, ...]  # the class name of each detection
    source: str = ""  # the file it came from
    frame: int | None = None  # its index in a video; None for an image
    image_hw: tuple[int, int] = (0, 0)  # the image's height and width

    def __len__(self) -> int:
        return len(self.scores)

    def yolo_labels(self, conf: bool = False) -> str:
        """A line per detection in the YOLO label format, ``class cx cy w h`` normalised to the image
        (with the score last if ``conf``), as the official ``detect.py --save-txt [--save-conf]``."""
        h, w = self.image_hw
        rows = zip(self.classes.tolist(), xyxy_to_xywhn(self.boxes.astype(np.float64), w, h).tolist(),
                   self.scores.tolist())
        return "".join(" ".join(f"{v:g}" for v in (c, *box, *([s] if conf else []))) + "\n" for c, box, s in rows)

    def records(self) -> list[dict]:
        """One JSON-ready record per detection: ``class``, ``name``, ``score``, ``box_xyxy``."""
        return [{"class": int(c), "name": n, "score": round(float(s), 5), "box_xyxy": [round(float(v), 2) for v in b]}
                for b, s, c, n in zip(self.boxes, self.scores, self.classes, self.names)]


def class_names(model: nn.Module) -> list[str]:
    """The class names a model was trained with (its config), else their indices as text."""
    config = getattr(model, "config", None)
    return list(getattr(config, "names", None) or [str(i) for i in range(model.head.nc)])


@torch.no_grad()
def infer(model: nn.Module, image: np.ndarray, img_size: int = 640, conf_thres: float = 0.25,
          iou_thres: float = 0.45, *, classes: Sequence[int] | None = None, agnostic: bool = False) -> np.ndarray:
    """``(n, 6)`` detections ``(x1, y1, x2, y2, score, class)`` of an eval-mode ``model`` on a BGR
    uint8 ``image``, in the image's own pixels; the input follows the model's device, dtype and memory
    format. ``img_size`` is rounded up to a multiple of the model's stride, as officially; ``classes``
    and ``agnostic`` go to :func:`~yolov7lib.postprocess.non_max_suppression`."""
    weight = next(model.parameters())
    stride = int(max(model.head.strides))
    h0, w0 = image.shape[:2]
    img, ratio, pad = letterbox(image, -(-img_size // stride) * stride, auto=True, stride=stride)
    x = torch.from_numpy(np.ascontiguousarray(img[..., ::-1].transpose(2, 0, 1)))[None].to(weight.device)
    channels_last = weight.dim() == 4 and weight.is_contiguous(memory_format=torch.channels_last)
    x = x.to(weight.dtype).div(255)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    det = non_max_suppression(model(x)[0], conf_thres, iou_thres, multi_label=False, classes=classes,
                              agnostic=agnostic)[0].cpu().numpy()
    det[:, :4] = scale_boxes(det[:, :4], (h0, w0), ((ratio, ratio), pad))
    return det


def predict(model: nn.Module, image: np.ndarray, img_size: int = 640, conf_thres: float = 0.25,
            iou_thres: float = 0.45, source: str = "", frame: int | None = None, *,
            classes: Sequence[int] | None = None, agnostic: bool = False) -> Detections:
    """The :class:`Detections` of an eval-mode ``model`` in a BGR uint8 ``image`` (or video frame)."""
    det = infer(model, image, img_size, conf_thres, iou_thres, classes=classes, agnostic=agnostic)
    names = class_names(model)
    classes = det[:, 5].astype(np.int64)
    return Detections(det[:, :4], det[:, 4], classes, tuple(names[c] for c in classes), source, frame,
                      image.shape[:2])


def read_source(files: Sequence[Path], on_error: Callable[[Path, Exception], None] | None = None
                ) -> Iterator[tuple[Path, int | None, np.ndarray]]:
    """``(file, frame index or None, BGR image)`` for every image and every frame of every video in
    ``files``; a file that cannot be read goes to ``on_error`` (and is skipped) when one is given."""
    for path in files:
        try:
            if path.suffix.lower() in VIDEO_SUFFIXES:
                yield from ((path, i, frame) for i, frame in enumerate(video_frames(path)))
            else:
                image = load_rgb(path, bgr=True)
                yield path, None, image
        except (OSError, ValueError, cv2.error) as err:
            if on_error is None:
                raise
            on_error(path, err)


def predict_source(model: nn.Module, source: str | Path | Sequence[str | Path], img_size: int = 640,
                   conf_thres: float = 0.25, iou_thres: float = 0.45,
                   on_error: Callable[[Path, Exception], None] | None = None, *,
                   classes: Sequence[int] | None = None, agnostic: bool = False) -> Iterator[Detections]:
    """:func:`predict` on every image and video frame that ``source`` names (files, folders, list
    files, glob patterns such as ``clips/*.mp4``), in file order, lazily."""
    sources = [source] if isinstance(source, (str, Path)) else list(source)
    for path, frame, image in read_source(image_files(sources, SOURCE_SUFFIXES), on_error):
        yield predict(model, image, img_size, conf_thres, iou_thres, str(path), frame, classes=classes,
                      agnostic=agnostic)


def annotate(image: np.ndarray, det: Detections) -> np.ndarray:
    """A copy of the BGR ``image`` with each detection's box and ``name score`` drawn (a colour per class)."""
    canvas = image.copy()
    for (x1, y1, x2, y2), score, cls, name in zip(det.boxes.tolist(), det.scores, det.classes, det.names):
        color = tuple(int(c) for c in np.random.default_rng(int(cls)).integers(0, 255, 3))
        cv2.rectangle(canvas, (round(x1), round(y1)), (round(x2), round(y2)), color, 2)
        cv2.putText(canvas, f"{name} {score:.2f}", (round(x1), max(round(y1) - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5, color, 1)
    return canvas
