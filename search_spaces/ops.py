"""Cell operations of the NASNet / DARTS operation set, looked up by name.

The operation set follows NASNet (Zoph et al., CVPR 2018) as trimmed by DARTS (Liu et al.,
ICLR 2019): identity, separable convolutions (3x3, 5x5, 7x7, each applied twice), dilated
separable convolutions (3x3, 5x5 with dilation 2), the factorised 1x7-then-7x1 convolution,
and 3x3 average / max pooling. Convolutions use the ReLU-conv-BN order of the papers.

Every op has the signature ``(C, stride) -> nn.Module`` (the timm convention of one shared
constructor signature), keeps the channel count C, and with ``stride=2`` maps (B, C, H, W)
to (B, C, ceil(H/2), ceil(W/2)) for any H, W, odd ones included. ``create_op(name, C, stride)``
raises ValueError listing the valid names for an unknown one.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


class ReLUConvBN(nn.Sequential):
    """ReLU -> conv (k x k) -> BN: the preprocessing of cell inputs (with k = 1)."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


class FactorizedReduce(nn.Module):
    """Halve the resolution without losing pixels: two 1x1 convs with stride 2, the second on
    the input shifted by one pixel, concatenated along channels (NASNet's "identity" for a
    reducing input). (B, C_in, H, W) -> (B, C_out, ceil(H/2), ceil(W/2))."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv_a = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_b = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]  # (B, C, H, W), moved by one pixel
        return self.bn(torch.cat([self.conv_a(x), self.conv_b(shifted)], dim=1))


class SepConv(nn.Sequential):
    """Depthwise-separable k x k convolution applied twice (stride on the first one), as in
    NASNet: (ReLU, depthwise, pointwise, BN) x 2."""

    def __init__(self, C: int, kernel: int, stride: int):
        pad = kernel // 2
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C, C, kernel, stride=stride, padding=pad, groups=C, bias=False),
            nn.Conv2d(C, C, 1, bias=False),
            nn.BatchNorm2d(C),
            nn.ReLU(inplace=False),
            nn.Conv2d(C, C, kernel, stride=1, padding=pad, groups=C, bias=False),
            nn.Conv2d(C, C, 1, bias=False),
            nn.BatchNorm2d(C),
        )


class DilConv(nn.Sequential):
    """Dilated (dilation 2) depthwise-separable k x k convolution: ReLU, depthwise, pointwise, BN."""

    def __init__(self, C: int, kernel: int, stride: int, dilation: int = 2):
        pad = dilation * (kernel // 2)
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C, C, kernel, stride=stride, padding=pad, dilation=dilation, groups=C, bias=False),
            nn.Conv2d(C, C, 1, bias=False),
            nn.BatchNorm2d(C),
        )


class Conv7x1_1x7(nn.Sequential):
    """The factorised 7x7 convolution of NASNet: ReLU, 1x7 conv, 7x1 conv, BN."""

    def __init__(self, C: int, stride: int):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C, C, (1, 7), stride=(1, stride), padding=(0, 3), bias=False),
            nn.Conv2d(C, C, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False),
            nn.BatchNorm2d(C),
        )


def _identity(C: int, stride: int) -> nn.Module:
    return nn.Identity() if stride == 1 else FactorizedReduce(C, C)


# name -> constructor (C, stride) -> nn.Module; every op keeps C channels.
OPS: dict[str, Callable[[int, int], nn.Module]] = {
    "identity": _identity,
    "sep_conv_3x3": lambda C, stride: SepConv(C, 3, stride),
    "sep_conv_5x5": lambda C, stride: SepConv(C, 5, stride),
    "sep_conv_7x7": lambda C, stride: SepConv(C, 7, stride),
    "dil_conv_3x3": lambda C, stride: DilConv(C, 3, stride),
    "dil_conv_5x5": lambda C, stride: DilConv(C, 5, stride),
    "conv_7x1_1x7": lambda C, stride: Conv7x1_1x7(C, stride),
    "avg_pool_3x3": lambda C, stride: nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False),
    "max_pool_3x3": lambda C, stride: nn.MaxPool2d(3, stride=stride, padding=1),
}


def create_op(name: str, C: int, stride: int) -> nn.Module:
    """Build the op called ``name`` for C channels; stride 1 keeps, stride 2 halves H and W."""
    if name not in OPS:
        raise ValueError(f"unknown op {name!r}; valid: {', '.join(OPS)}")
    if stride not in (1, 2):
        raise ValueError(f"op stride must be 1 or 2, got {stride}")
    return OPS[name](C, stride)
