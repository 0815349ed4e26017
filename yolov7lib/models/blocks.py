"""Basic layers of the YOLOv7 networks: Conv-BN-act, pooling, ReOrg, SPPCSPC, DownC.

Every block keeps the attribute names of the official implementation so that a state_dict maps
one-to-one onto official checkpoints (`model.<i>.conv.weight`, `model.<i>.cv1.bn.bias`, ...).
BatchNorm uses eps 1e-3 and momentum 0.03 throughout, as the official `initialize_weights` sets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

BN_EPS = 1e-3
BN_MOMENTUM = 0.03

ActFactory = Callable[[], nn.Module]


class SiLU(nn.SiLU):
    """SiLU, in place only where autograd does not record (inference, EMA evaluation).

    Under autograd an in-place SiLU makes torch save a copy of its input for the backward pass, so
    training is faster out of place; without autograd
    the in-place form saves an allocation per layer.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.silu(x, inplace=not (torch.is_grad_enabled() and x.requires_grad))


def silu() -> nn.Module:
    """The default activation of every YOLOv7 model except YOLOv7-tiny (paper §5.1)."""
    return SiLU()


def leaky_relu() -> nn.Module:
    """YOLOv7-tiny's activation: LeakyReLU with slope 0.1 (paper §5.1)."""
    return nn.LeakyReLU(0.1, inplace=True)


ACTIVATIONS: dict[str, ActFactory] = {"silu": silu, "leaky": leaky_relu}


def batch_norm(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


class Conv(nn.Module):
    """Conv2d (no bias, 'same' padding) -> BatchNorm -> activation.

    After :meth:`fuse` the BatchNorm is folded into a biased convolution (paper §4.1, "BN layer
    connected directly to the convolutional layer") and ``bn`` is removed.
    """

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, act: ActFactory = silu) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, bias=False)
        self.bn: nn.BatchNorm2d | None = batch_norm(c2)
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x)

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold BatchNorm into the convolution: W' = W·γ/σ, b' = β − γμ/σ."""
        if self.bn is None:
            return
        weight, bias = fold_batch_norm(self.conv.weight, self.bn)
        conv = nn.Conv2d(
            self.conv.in_channels,
            self.conv.out_channels,
            self.conv.kernel_size,
            self.conv.stride,
            self.conv.padding,
            groups=self.conv.groups,
            bias=True,
        ).to(weight)
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
        conv.requires_grad_(False)
        self.conv = conv
        self.bn = None


def fold_batch_norm(weight: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the (weight, bias) of a biased conv equal to ``bn(conv(x))`` for a bias-free conv."""
    std = (bn.running_var + bn.eps).sqrt()
    scale = bn.weight / std
    return weight * scale.reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * scale


class MP(nn.Module):
    """2x2 max-pool with stride 2 (the max-pool branch of YOLOv7's transition block)."""

    def __init__(self, k: int = 2) -> None:
        super().__init__()
        self.m = nn.MaxPool2d(kernel_size=k, stride=k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m(x)


class SP(nn.Module):
    """Stride-1 max-pool with 'same' padding (the SPP branches of YOLOv7-tiny)."""

    def __init__(self, k: int = 3) -> None:
        super().__init__()
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m(x)


class ReOrg(nn.Module):
    """Space-to-depth stem of the P6 models: (C, H, W) -> (4C, H/2, W/2), official channel order."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]], 1
        )


class Concat(nn.Module):
    """Channel concatenation of several layers' outputs, in the given order."""

    multi_input = True

    def forward(self, xs: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.cat(list(xs), 1)


class Shortcut(nn.Module):
    """Element-wise sum of two layers (merges the two groups of E-ELAN, paper §3.1)."""

    multi_input = True

    def forward(self, xs: Sequence[torch.Tensor]) -> torch.Tensor:
        return xs[0] + xs[1]


class Upsample(nn.Upsample):
    """2x nearest-neighbour upsampling of the top-down path."""

    def __init__(self) -> None:
        super().__init__(scale_factor=2.0, mode="nearest")


class DownC(nn.Module):
    """Down-sampling transition of E6/D6/E6E: cat(3x3 stride-2 conv branch, max-pool + 1x1 branch)."""

    def __init__(self, c1: int, c2: int, k: int = 2, act: ActFactory = silu) -> None:
        super().__init__()
        self.cv1 = Conv(c1, c1, 1, 1, act)
        self.cv2 = Conv(c1, c2 // 2, 3, k, act)
        self.cv3 = Conv(c1, c2 // 2, 1, 1, act)
        self.mp = nn.MaxPool2d(kernel_size=k, stride=k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.cv2(self.cv1(x)), self.cv3(self.mp(x))), 1)


class SPPCSPC(nn.Module):
    """Spatial pyramid pooling in a cross-stage-partial block (max-pools 5, 9, 13)."""

    def __init__(self, c1: int, c2: int, k: Sequence[int] = (5, 9, 13), act: ActFactory = silu):
        super().__init__()
        c_ = c2  # the official int(2 * c2 * 0.5)
        self.cv1 = Conv(c1, c_, 1, 1, act)
        self.cv2 = Conv(c1, c_, 1, 1, act)
        self.cv3 = Conv(c_, c_, 3, 1, act)
        self.cv4 = Conv(c_, c_, 1, 1, act)
        self.m = nn.ModuleList(nn.MaxPool2d(kernel_size=x, stride=1, padding=x // 2) for x in k)
        self.cv5 = Conv(4 * c_, c_, 1, 1, act)
        self.cv6 = Conv(c_, c_, 3, 1, act)
        self.cv7 = Conv(2 * c_, c2, 1, 1, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.cv4(self.cv3(self.cv1(x)))
        y1 = self.cv6(self.cv5(torch.cat([x1] + [m(x1) for m in self.m], 1)))
        return self.cv7(torch.cat((y1, self.cv2(x)), 1))
