"""A segmentation network that follows an Auto-DeepLab network-level path (Liu et al., CVPR 2019).

Auto-DeepLab searches, besides the cell, the *path* a network takes through a trellis of
resolutions: a stem brings the image to 1/4, then each of L layers keeps the resolution, halves
it or doubles it, staying between 1/4 and 1/32 ("never below 1/32"). Channels follow the
resolution: ``width * 2**level`` at 1/(4 * 2**level). Each layer resamples (3x3 stride-2 conv
down, bilinear upsample + 1x1 conv up, nothing when the level stays) and then applies its cell,
here one searched op in a residual block (``sep3``/``sep5``: depthwise-separable 3x3/5x5,
``conv3``: plain 3x3), not the paper's DARTS cell. An ASPP head (DeepLab v3: 1x1 and dilated 3x3
branches plus image pooling) gives the logits, upsampled bilinearly to the input size.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

LEVELS = 4  # 1/4, 1/8, 1/16, 1/32
OPS = ("sep3", "sep5", "conv3")


@dataclass(frozen=True)
class PathConfig:
    width: int
    levels: tuple[int, ...]  # level after each layer, 0..3
    ops: tuple[str, ...]


def conv_bn_relu(c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1, dilation: int = 1):
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride, padding=dilation * (k // 2), dilation=dilation,
                                   groups=groups, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def create_op(name: str, c: int) -> nn.Module:
    if name == "conv3":
        return nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
    if name in ("sep3", "sep5"):
        k = int(name[-1])
        return nn.Sequential(nn.Conv2d(c, c, k, padding=k // 2, groups=c, bias=False),
                             nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c))
    raise ValueError(f"unknown op {name!r}; valid: {', '.join(OPS)}")


class PathLayer(nn.Module):
    def __init__(self, width: int, level_in: int, level_out: int, op: str):
        super().__init__()
        c_in, c_out = width * 2 ** level_in, width * 2 ** level_out
        self.move = level_out - level_in  # +1 down, 0 same, -1 up
        if self.move > 0:
            self.resample = conv_bn_relu(c_in, c_out, 3, stride=2)
        elif self.move < 0:
            self.resample = conv_bn_relu(c_in, c_out, 1)
        else:
            self.resample = nn.Identity()
        self.op = create_op(op, c_out)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if self.move < 0:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        x = self.resample(x)  # (B, c_out, *size)
        return F.relu(x + self.op(x))


class ASPP(nn.Module):
    """DeepLab v3's atrous spatial pyramid pooling, small: 1x1, 3x3 at two dilations, image pool."""

    def __init__(self, c_in: int, c_out: int, rates: tuple[int, ...] = (2, 4)):
        super().__init__()
        self.branches = nn.ModuleList([conv_bn_relu(c_in, c_out, 1)] +
                                      [conv_bn_relu(c_in, c_out, 3, dilation=r) for r in rates])
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c_in, c_out, 1), nn.ReLU(inplace=True))
        self.project = conv_bn_relu(c_out * (len(rates) + 2), c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(x).expand(-1, -1, *x.shape[-2:])  # (B, c_out, h, w)
        return self.project(torch.cat([b(x) for b in self.branches] + [pooled], 1))


class AutoDeepLabNet(nn.Module):
    def __init__(self, cfg: PathConfig, in_channels: int, num_classes: int):
        super().__init__()
        w = cfg.width
        self.cfg = cfg
        self.stem = nn.Sequential(conv_bn_relu(in_channels, max(8, w // 2), 3, stride=2),
                                  conv_bn_relu(max(8, w // 2), w, 3, stride=2))  # (B, w, H/4, W/4)
        levels = (0,) + tuple(cfg.levels)
        self.layers = nn.ModuleList(PathLayer(w, a, b, op) for a, b, op in zip(levels[:-1], levels[1:], cfg.ops))
        c_last = w * 2 ** levels[-1]
        self.head = nn.Sequential(ASPP(c_last, 2 * w), nn.Conv2d(2 * w, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        sizes = [tuple(y.shape[-2:])]  # size of each level: a stride-2 conv gives ceil(n / 2)
        for _ in range(1, LEVELS):
            sizes.append(tuple((s + 1) // 2 for s in sizes[-1]))
        for layer, level in zip(self.layers, self.cfg.levels):
            y = layer(y, sizes[level])
        logits = self.head(y)  # (B, K, h, w)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
