"""From raw head outputs to detections (paper §5; algorithms.md §9): multi-label NMS, and boxes of a
letterboxed input mapped back to the original image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torchvision

from .boxes import xywh_to_xyxy

MAX_WH = 4096  # the official per-class shift of NMS (pixels), larger than any input side


def non_max_suppression(pred: torch.Tensor, conf_thres: float = 0.001, iou_thres: float = 0.65,
                        max_det: int = 300, multi_label: bool = True, max_nms: int = 30000,
                        classes: Sequence[int] | None = None, agnostic: bool = False) -> list[torch.Tensor]:
    """Per image ``(n, 6)`` detections ``(x1, y1, x2, y2, score, class)`` from decoded outputs
    ``(bs, N, 5 + nc)`` (xywh pixels, objectness, class probabilities).

    ``score = obj · cls`` (just ``obj`` for a one-class model, whose class output is untrained);
    with ``multi_label`` every class above the threshold makes a detection, otherwise the best one.
    Classes are kept apart as officially, by shifting each class's boxes by ``class · 4096`` pixels
    before one NMS (which also holds for boxes reaching past the image's top-left corner), unless
    ``agnostic``; ``classes`` keeps only the detections of those classes (after each box took its
    best class, as officially). Scores and corners are computed in ``pred``'s dtype (FP16 outputs as
    officially), the rest in FP32.
    """
    if not 0 <= conf_thres <= 1 or not 0 <= iou_thres <= 1:
        raise ValueError(f"thresholds must lie in [0, 1], got conf {conf_thres}, iou {iou_thres}")
    out = []
    nc = pred.shape[2] - 5
    for x in pred:
        x = x[x[:, 4] > conf_thres]
        scores = x[:, 4:5] if nc == 1 else x[:, 5:] * x[:, 4:5]
        boxes = xywh_to_xyxy(x[:, :4])
        if multi_label and nc > 1:
            i, j = (scores > conf_thres).nonzero(as_tuple=True)
            boxes, score, cls = boxes[i], scores[i, j], j
        else:
            score, cls = scores.max(1)
            keep = score > conf_thres
            boxes, score, cls = boxes[keep], score[keep], cls[keep]
        boxes, score = boxes.float(), score.float()
        if classes is not None:
            wanted = torch.isin(cls, torch.as_tensor(list(classes), device=cls.device, dtype=cls.dtype))
            boxes, score, cls = boxes[wanted], score[wanted], cls[wanted]
        if score.numel() > max_nms:
            top = score.topk(max_nms).indices
            boxes, score, cls = boxes[top], score[top], cls[top]
        shift = 0.0 if agnostic else MAX_WH
        keep = torchvision.ops.nms(boxes + cls[:, None].float() * shift, score, iou_thres)[:max_det]
        out.append(torch.cat((boxes[keep], score[keep, None], cls[keep, None].to(boxes.dtype)), 1))
    return out


def scale_boxes(boxes: np.ndarray, original_hw: tuple[int, int], ratio_pad) -> np.ndarray:
    """Letterboxed-input boxes (xyxy) back to the original image: remove the pad, undo the gain, clip."""
    (gain_h, _), (pad_w, pad_h) = ratio_pad
    boxes = boxes.copy()
    boxes[:, [0, 2]] -= pad_w
    boxes[:, [1, 3]] -= pad_h
    boxes /= gain_h
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, original_hw[1])
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, original_hw[0])
    return boxes
