"""Box formats and overlaps, in one place for the whole package.

Formats: ``xyxy`` corners and ``xywh`` centre and size, in pixels unless the name says normalised
(``xywhn``). Overlaps: IoU of box pairs (SimOTA's cost, §4.2), intersection over the second box's area
(paste-in), and the Complete IoU of the box loss (Zheng et al. 2020).
"""

from __future__ import annotations

import math

import numpy as np
import torch


def xywh_to_xyxy(box: torch.Tensor) -> torch.Tensor:
    """``(..., 4)`` centre-size boxes as corners."""
    half = box[..., 2:4] / 2
    return torch.cat((box[..., :2] - half, box[..., :2] + half), -1)


def xywhn_to_xyxy(boxes: np.ndarray, w: float, h: float, padw: float = 0, padh: float = 0) -> np.ndarray:
    """``(n, 4)`` normalised centre-size boxes as pixel corners in a ``w`` × ``h`` image placed at
    ``(padw, padh)``."""
    out = np.empty_like(boxes, dtype=np.float64)
    out[:, 0] = w * (boxes[:, 0] - boxes[:, 2] / 2) + padw
    out[:, 1] = h * (boxes[:, 1] - boxes[:, 3] / 2) + padh
    out[:, 2] = w * (boxes[:, 0] + boxes[:, 2] / 2) + padw
    out[:, 3] = h * (boxes[:, 1] + boxes[:, 3] / 2) + padh
    return out


def xyxy_to_xywhn(boxes: np.ndarray, w: float, h: float) -> np.ndarray:
    """``(n, 4)`` pixel corners in a ``w`` × ``h`` image as normalised centre-size boxes (the YOLO
    label format)."""
    out = np.empty_like(boxes)
    out[:, 0] = (boxes[:, 0] + boxes[:, 2]) / 2 / w
    out[:, 1] = (boxes[:, 1] + boxes[:, 3]) / 2 / h
    out[:, 2] = (boxes[:, 2] - boxes[:, 0]) / w
    out[:, 3] = (boxes[:, 3] - boxes[:, 1]) / h
    return out


def box_iou_pairs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of xyxy boxes ``a[..., 4]`` and ``b[..., 4]`` (broadcast), no epsilon."""
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    inter = (torch.min(a[..., 2:], b[..., 2:]) - torch.max(a[..., :2], b[..., :2])).clamp(0).prod(-1)
    return inter / (area_a + area_b - inter)


def box_ioa(box: np.ndarray, boxes: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """Intersection of ``box`` (4,) with each of ``boxes`` (n, 4), over the area of each of ``boxes``."""
    iw = (np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])).clip(0)
    ih = (np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])).clip(0)
    return iw * ih / ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) + eps)


def bbox_ciou(box1: torch.Tensor, box2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Complete IoU of xywh boxes ``(n, 4)`` (Zheng et al. 2020), computed in float32; the
    trade-off weight α is treated as a constant, as usual."""
    box1, box2 = box1.float(), box2.float()
    b1_x1, b1_x2 = box1[:, 0] - box1[:, 2] / 2, box1[:, 0] + box1[:, 2] / 2
    b1_y1, b1_y2 = box1[:, 1] - box1[:, 3] / 2, box1[:, 1] + box1[:, 3] / 2
    b2_x1, b2_x2 = box2[:, 0] - box2[:, 2] / 2, box2[:, 0] + box2[:, 2] / 2
    b2_y1, b2_y2 = box2[:, 1] - box2[:, 3] / 2, box2[:, 1] + box2[:, 3] / 2
    inter = (torch.min(b1_x2, b2_x2) - torch.max(b1_x1, b2_x1)).clamp(0) * (
        torch.min(b1_y2, b2_y2) - torch.max(b1_y1, b2_y1)
    ).clamp(0)
    w1, h1 = b1_x2 - b1_x1, b1_y2 - b1_y1 + eps
    w2, h2 = b2_x2 - b2_x1, b2_y2 - b2_y1 + eps
    iou = inter / (w1 * h1 + w2 * h2 - inter + eps)
    cw = torch.max(b1_x2, b2_x2) - torch.min(b1_x1, b2_x1)
    ch = torch.max(b1_y2, b2_y2) - torch.min(b1_y1, b2_y1)
    c2 = cw**2 + ch**2 + eps
    rho2 = ((b2_x1 + b2_x2 - b1_x1 - b1_x2) ** 2 + (b2_y1 + b2_y2 - b1_y1 - b1_y2) ** 2) / 4
    v = (4 / math.pi**2) * (torch.atan(w2 / (h2 + eps)) - torch.atan(w1 / (h1 + eps))) ** 2
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)
