"""Residual attention (Wang et al., "Residual Attention Network for Image Classification",
CVPR 2017).

An attention module has a *trunk* branch T and a *mask* branch M that reads the same features
through a bottom-up / top-down hourglass (max-pool and residual units down ``depth`` times,
bilinear upsampling with a skip connection at every scale back up, then two 1x1 convolutions
and a sigmoid). The output is ``(1 + M(x)) * T(x)``: *attention residual learning*. Where the
mask is near zero the trunk's features pass unchanged, so stacking many modules does not
degrade features the way a plain ``M(x) * T(x)`` does.

`ResidualAttention(channels, depth=1, trunk=None)` follows timm's attention-module convention
(``channels`` first, shape in = shape out) so it is looked up by name with timm's blocks
(`create_attn.create_attn("ra", channels, depth=d)`). In a ResNet block's attention slot
(where SE and CBAM sit, see `resnet.set_attention`) the block's residual branch is the trunk:
the module receives the branch's output, the mask branch reads that tensor and ``trunk`` is the
identity. This is the one departure from the paper, whose mask reads the module's input: the
slot sees only the branch's output. Given a ``trunk`` module, the module is the paper's form,
mask and trunk both reading ``x``. The paper's pre- and post-processing residual units are the
neighbouring ResNet blocks here. The mask branch is as wide as the features; ``depth`` is the
number of down-sampling steps (the paper uses 3, 2, 1 from the largest stage to the smallest);
pooling rounds up, so any depth works on small maps (a 1x1 map stays 1x1).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResidualUnit(nn.Module):
    """The mask branch's pre-activation residual unit: x + conv(relu(bn(conv(relu(bn(x))))))."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(channels), nn.ReLU(inplace=False),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)  # (B, C, H, W)


class ResidualAttention(nn.Module):
    """``(1 + M(x)) * T(x)`` with an hourglass mask branch of ``depth`` down-sampling steps."""

    def __init__(self, channels: int, depth: int = 1, trunk: nn.Module | None = None):
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"residual attention depth must be an integer >= 1, got {depth!r}")
        self.depth = depth
        self.trunk = trunk if trunk is not None else nn.Identity()
        # bottom-up: one residual unit after each max-pool; skips at every scale but the deepest
        self.down = nn.ModuleList(ResidualUnit(channels) for _ in range(depth))
        self.skip = nn.ModuleList(ResidualUnit(channels) for _ in range(depth - 1))
        self.up = nn.ModuleList(ResidualUnit(channels) for _ in range(depth - 1))
        self.head = nn.Sequential(
            nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels), nn.ReLU(inplace=True), nn.Conv2d(channels, channels, 1),
        )

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        """M(x): (B, C, H, W) in [0, 1]."""
        levels = [x]  # levels[k] is at 1/2**k of x's resolution
        for unit in self.down:
            levels.append(unit(F.max_pool2d(levels[-1], 3, stride=2, padding=1, ceil_mode=True)))
        y = levels[-1]
        for k in range(self.depth - 1, 0, -1):  # back up to 1/2 with a skip at each scale
            y = F.interpolate(y, size=levels[k].shape[-2:], mode="bilinear", align_corners=False)
            y = self.up[k - 1](y + self.skip[k - 1](levels[k]))
        y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return torch.sigmoid(self.head(y))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (1 + self.mask(x)) * self.trunk(x)  # (B, C, H, W)
