"""The network of a `morphable` genotype (`morphable.Arch`).

    stage s: layers  y_l = BN(conv_k(z_{l-1}))                       # (B, w_l, H, W)
                     z_l = ReLU(y_l + BN(conv1x1(z_j)))   (add:j)
                     z_l = cat(ReLU(y_l), z_j)             (concat:j) # (B, w_l + |z_j|, H, W)
    between stages:  MaxPool2d(2)                                    # (B, C, H/2, W/2)
    head:            global average pool, Linear(|z_last|, classes)  # (B, classes)

Parameter names are what the morphism operations (`morphism.py`) rewrite: ``blocks.s{s}l{l}.conv``,
``.bn``, ``.proj.0`` (the added skip's 1x1 conv), ``.proj.1`` (its BN) and ``head``.
"""
from __future__ import annotations

import torch
from torch import nn

from .morph_arch import Arch, Layer, out_widths


class Block(nn.Module):
    """conv-BN of one layer and, for an added skip, the skip's 1x1 conv-BN projection."""

    def __init__(self, c_in: int, layer: Layer, c_skip: int | None):
        super().__init__()
        self.conv = nn.Conv2d(c_in, layer.width, layer.kernel, padding=layer.kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(layer.width)
        if c_skip is not None:
            self.proj = nn.Sequential(nn.Conv2d(c_skip, layer.width, 1, bias=False), nn.BatchNorm2d(layer.width))


class MorphNet(nn.Module):
    """The network of an `Arch`; ``blocks['s0l1']`` is the first stage's second layer."""

    def __init__(self, arch: Arch, in_channels: int, num_classes: int):
        super().__init__()
        self.arch = arch
        zs = out_widths(arch)
        self.blocks = nn.ModuleDict()
        c_in = in_channels
        for s, stage in enumerate(arch):
            for i, layer in enumerate(stage):
                c_skip = zs[s][layer.skip[1]] if layer.skip and layer.skip[0] == "add" else None
                self.blocks[f"s{s}l{i}"] = Block(c_in, layer, c_skip)
                c_in = zs[s][i]
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        self.head = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        h = x
        for s, stage in enumerate(self.arch):
            if s:
                h = self.pool(h)  # (B, C, H/2, W/2)
            zs = []
            for i, layer in enumerate(stage):
                blk = self.blocks[f"s{s}l{i}"]
                y = blk.bn(blk.conv(h))
                if layer.skip and layer.skip[0] == "add":
                    y = y + blk.proj(zs[layer.skip[1]])
                h = torch.relu(y)
                if layer.skip and layer.skip[0] == "concat":
                    h = torch.cat([h, zs[layer.skip[1]]], dim=1)  # (B, w_l + |z_j|, H, W)
                zs.append(h)
        return self.head(h.mean(dim=(2, 3)))  # (B, classes)
