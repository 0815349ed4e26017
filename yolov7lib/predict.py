"""Detection on one image, end to end: letterbox (no upscaling) → pad to the model's stride → model
→ NMS → boxes in the original image's pixels. ``yolov7 detect`` runs it on every file it reads.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .data.augment import letterbox
from .postprocess import non_max_suppression, pad_to_stride, scale_boxes


@torch.no_grad()
def predict(model: nn.Module, image: np.ndarray, img_size: int = 640, conf_thres: float = 0.25,
            iou_thres: float = 0.45) -> np.ndarray:
    """``(n, 6)`` detections ``(x1, y1, x2, y2, score, class)`` of an eval-mode ``model`` on a BGR
    uint8 ``image``, in the image's own pixels; the input follows the model's device, dtype and memory
    format."""
    weight = next(model.parameters())
    stride = int(max(model.head.strides))
    h0, w0 = image.shape[:2]
    img, ratio, pad = letterbox(image, img_size, scaleup=False)
    img, _ = pad_to_stride(img, stride)
    x = torch.from_numpy(np.ascontiguousarray(img[..., ::-1].transpose(2, 0, 1)))[None].to(weight.device)
    channels_last = weight.dim() == 4 and weight.is_contiguous(memory_format=torch.channels_last)
    x = x.to(weight.dtype).div(255)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    det = non_max_suppression(model(x)[0].float(), conf_thres, iou_thres)[0].cpu().numpy()
    det[:, :4] = scale_boxes(det[:, :4], (h0, w0), ((ratio, ratio), pad))
    return det
