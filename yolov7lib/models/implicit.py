"""YOLOR implicit knowledge used by the training heads (paper §4.1, bag-of-freebies item 2).

``ImplicitA`` adds and ``ImplicitM`` multiplies a learned per-channel vector. Both are folded into
the head convolutions at inference (see :meth:`yolov7lib.models.heads.IDetect.fuse`).
"""

from __future__ import annotations

import torch
from torch import nn


class ImplicitA(nn.Module):
    """x + implicit, implicit ~ N(0, 0.02) of shape (1, C, 1, 1)."""

    def __init__(self, channels: int, std: float = 0.02) -> None:
        super().__init__()
        self.implicit = nn.Parameter(torch.zeros(1, channels, 1, 1))
        nn.init.normal_(self.implicit, mean=0.0, std=std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.implicit + x


class ImplicitM(nn.Module):
    """x * implicit, implicit ~ N(1, 0.02) of shape (1, C, 1, 1)."""

    def __init__(self, channels: int, std: float = 0.02) -> None:
        super().__init__()
        self.implicit = nn.Parameter(torch.ones(1, channels, 1, 1))
        nn.init.normal_(self.implicit, mean=1.0, std=std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.implicit * x
