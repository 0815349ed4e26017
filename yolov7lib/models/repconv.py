"""RepConv: the re-parameterizable 3x3 convolution of planned re-parameterization (paper §3.2, §4.1).

Training form: ``act(BN(conv3x3(x)) + BN(conv1x1(x)) + BN(x))``; the identity branch exists only
when input and output shapes agree (RepConv). Without it the block is RepConvN, which the paper
prescribes wherever a layer's output feeds a residual or concatenation (Figure 4); every RepConv of
the official YOLOv7 maps C -> 2C and so has no identity branch. Deploy form: one biased 3x3 conv
(``rbr_reparam``) with the same output, obtained by :meth:`RepConv.fuse`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ActFactory, batch_norm, fold_batch_norm, silu


class RepConv(nn.Module):
    """3x3 RepConv (official key names ``rbr_dense``, ``rbr_1x1``, ``rbr_identity``, ``rbr_reparam``)."""

    def __init__(
        self,
        c1: int,
        c2: int,
        k: int = 3,
        s: int = 1,
        act: ActFactory = silu,
        identity: bool | None = None,
    ) -> None:
        super().__init__()
        if k != 3:
            raise ValueError(f"RepConv needs a 3x3 kernel, got k={k}")
        self.c1, self.c2, self.s = c1, c2, s
        self.act = act()
        if identity is None:
            identity = c1 == c2 and s == 1
        if identity and (c1 != c2 or s != 1):
            raise ValueError("an identity branch needs c1 == c2 and stride 1")
        self.rbr_reparam: nn.Conv2d | None = None  # the deploy form, made by fuse()
        self.rbr_identity = batch_norm(c1) if identity else None
        self.rbr_dense = nn.Sequential(nn.Conv2d(c1, c2, 3, s, 1, bias=False), batch_norm(c2))
        self.rbr_1x1 = nn.Sequential(nn.Conv2d(c1, c2, 1, s, 0, bias=False), batch_norm(c2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rbr_reparam is not None:
            return self.act(self.rbr_reparam(x))
        y = self.rbr_dense(x) + self.rbr_1x1(x)
        if self.rbr_identity is not None:
            y = y + self.rbr_identity(x)
        return self.act(y)

    def equivalent_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The single 3x3 (kernel, bias) equal to the sum of the three branches."""
        w3, b3 = fold_batch_norm(self.rbr_dense[0].weight, self.rbr_dense[1])
        w1, b1 = fold_batch_norm(self.rbr_1x1[0].weight, self.rbr_1x1[1])
        weight, bias = w3 + F.pad(w1, [1, 1, 1, 1]), b3 + b1
        if self.rbr_identity is not None:
            eye = torch.zeros_like(w3)
            eye[torch.arange(self.c1), torch.arange(self.c1), 1, 1] = 1.0
            wi, bi = fold_batch_norm(eye, self.rbr_identity)
            weight, bias = weight + wi, bias + bi
        return weight, bias

    @torch.no_grad()
    def fuse(self) -> None:
        """Merge the branches into ``rbr_reparam`` and drop them (idempotent)."""
        if self.rbr_reparam is not None:
            return
        weight, bias = self.equivalent_kernel_bias()
        conv = nn.Conv2d(self.c1, self.c2, 3, self.s, 1, bias=True).to(weight)
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
        self.rbr_reparam = conv
        del self.rbr_dense, self.rbr_1x1, self.rbr_identity
