"""The additive attention gate of Attention U-Net (Oktay et al., MIDL 2018).

A skip connection ``x`` (B, Cx, H, W) is multiplied by a per-pixel coefficient
``alpha = sigmoid(psi(relu(W_x x + W_g g)))`` in [0, 1], where ``g`` (B, Cg, h, w) is the
gating signal from the coarser decoder stage. The gate learns to pass the skip features where
the coarser context says the target structure is and to suppress them elsewhere. As in the
paper's 2-D variants, ``W_x``, ``W_g`` and ``psi`` are 1x1 convolutions; unlike the paper's
strided ``W_x`` (compute at g's grid, then upsample alpha), ``W_g g`` is upsampled bilinearly to
x's grid, which works for any pair of sizes (odd sides included).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AttentionGate(nn.Module):
    def __init__(self, skip_channels: int, gate_channels: int, inter_channels: int | None = None):
        super().__init__()
        inter = inter_channels or max(4, min(skip_channels, gate_channels) // 2)
        self.w_x = nn.Conv2d(skip_channels, inter, 1, bias=False)
        self.w_g = nn.Conv2d(gate_channels, inter, 1, bias=True)
        self.psi = nn.Sequential(nn.Conv2d(inter, 1, 1, bias=True), nn.BatchNorm2d(1), nn.Sigmoid())

    def coefficients(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """alpha: (B, 1, H, W) in [0, 1] for skip x (B, Cx, H, W) and gate g (B, Cg, h, w)."""
        gx = F.interpolate(self.w_g(g), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.psi(F.relu(self.w_x(x) + gx))

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return x * self.coefficients(x, g)  # (B, Cx, H, W)
