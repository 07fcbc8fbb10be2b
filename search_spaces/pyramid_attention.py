"""Pyramid Attention Network's two modules (Li et al., "Pyramid Attention Network for Semantic
Segmentation", BMVC 2018): Feature Pyramid Attention (FPA) and Global Attention Upsample (GAU).

* `FeaturePyramidAttention(channels)` sits on the encoder's deepest map. A U-shaped pyramid of
  7x7, 5x5 and 3x3 convolutions at 1/2, 1/4 and 1/8 of the map's resolution (each scale down by
  a max-pool, two convs per scale, the coarser result upsampled and added at each scale back up)
  gives a one-channel spatial attention map; it multiplies the map's 1x1-convolved features,
  and a global-average-pooling branch adds image-level context:
  ``out = conv1x1(x) * up(pyramid(x)) + conv1x1(gap(x))``. Shape in = shape out.
* `GlobalAttentionUpsample(channels, gate_channels)` sits on a decoder stage's skip connection,
  where an Attention U-Net gate would (`attention_gate.py`): the global context of the high-level
  features (global average pooling, a 1x1 conv) weights the channels of the 3x3-convolved
  low-level skip, ``skip' = conv3x3(skip) * w(gap(high))``. In the paper the upsampled
  high-level map is then added; here the decoder stage concatenates it and convolves, as it
  does for every skip attention.

Departures from the paper, all so that any batch trains: the convs on pooled (B, C, 1, 1)
vectors and the pyramid's one-channel convs have a bias and no BatchNorm (BN cannot train on
one value per channel, which a batch of one gives there; deep in the pyramid a map is 1x1), and
GAU's channel weights pass through a sigmoid (as in SE) instead of a ReLU, so each is in (0, 1).
Pooling rounds up, so any map size works (a 1x1 map stays 1x1 down the pyramid).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .autodeeplab_network import conv_bn_relu  # k x k conv (padding k // 2), BN, ReLU


def conv_relu(c_in: int, c_out: int, k: int) -> nn.Sequential:
    """k x k conv with a bias (no BN: see the module docstring), then ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=k // 2), nn.ReLU(inplace=True))


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


def _down(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 2, ceil_mode=True)


class FeaturePyramidAttention(nn.Module):
    KERNELS = (7, 5, 3)  # 1/2, 1/4, 1/8 of the input map

    def __init__(self, channels: int, out_channels: int | None = None):
        super().__init__()
        out = out_channels or channels
        self.main = conv_bn_relu(channels, out, 1)
        self.context = nn.Conv2d(channels, out, 1)  # on the pooled (B, C, 1, 1) vector: no BN
        k1, k2, k3 = self.KERNELS
        # bottom-up: each scale's first conv reads the pooled finer map, its second refines it
        self.down = nn.ModuleList([conv_relu(channels, 1, k1), conv_relu(1, 1, k2),
                                   conv_relu(1, 1, k3)])
        self.refine = nn.ModuleList([conv_relu(1, 1, k1), conv_relu(1, 1, k2), conv_relu(1, 1, k3)])

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The pyramid's spatial attention map: (B, 1, H, W)."""
        d1 = self.down[0](_down(x))  # (B, 1, H/2, W/2)
        d2 = self.down[1](_down(d1))  # (B, 1, H/4, W/4)
        d3 = self.down[2](_down(d2))  # (B, 1, H/8, W/8)
        y = self.refine[2](d3)
        y = self.refine[1](d2) + _up(y, d2)
        y = self.refine[0](d1) + _up(y, d1)
        return _up(y, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = F.relu(self.context(F.adaptive_avg_pool2d(x, 1)))  # (B, out, 1, 1)
        return self.main(x) * self.attention(x) + context  # (B, out, H, W)


class GlobalAttentionUpsample(nn.Module):
    def __init__(self, channels: int, gate_channels: int):
        super().__init__()
        self.low = conv_bn_relu(channels, channels, 3)
        self.weights = nn.Conv2d(gate_channels, channels, 1)  # on the pooled vector: no BN

    def channel_weights(self, g: torch.Tensor) -> torch.Tensor:
        """Per-channel weights of the skip from the high-level map g: (B, C, 1, 1) in (0, 1)."""
        return torch.sigmoid(self.weights(F.adaptive_avg_pool2d(g, 1)))

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        # x (B, C, H, W) the low-level skip; g (B, Cg, h, w) the high-level map from the decoder
        return self.low(x) * self.channel_weights(g)  # (B, C, H, W)
