"""The NAS-Bench-201 macro network (Dong & Yang, ICLR 2020) for a given cell.

    stem: Conv3x3(in, C) + BN                                  # (B, C, H, W)
    stage 1: N cells at C          -> residual block, stride 2  # (B, 2C, H/2, W/2)
    stage 2: N cells at 2C         -> residual block, stride 2  # (B, 4C, H/4, W/4)
    stage 3: N cells at 4C
    BN-ReLU, global average pool, Linear(4C, classes)           # (B, classes)

A cell has 4 nodes; node j = sum over i < j of op_{j<-i}(node i); the cell's output is node 3.
Convolutions are ReLU-Conv-BN as in the benchmark; ``none`` multiplies by zero (so shapes and
gradients stay defined); ``avg_pool_3x3`` does not count padding. The residual reduction block
is the benchmark's ResNet basic block: two ReLU-Conv-BN 3x3 (the first with stride 2) plus an
AvgPool2d(2) + Conv1x1 shortcut.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


class Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def create_op(name: str, C: int) -> nn.Module:
    """One edge operation at C channels, stride 1 (the cell's only stride)."""
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(C, C, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(C, C, 3)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown NAS-Bench-201 op {name!r}; valid: none, skip_connect, nor_conv_1x1, "
                     "nor_conv_3x3, avg_pool_3x3")


class NB201Cell(nn.Module):
    """``ops`` lists the 6 edge ops in the order 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2.
    ``op_factory(name, C)`` builds each edge (the supernet passes labels and a factory of
    `LayerChoice`s, so both networks are this one builder)."""

    def __init__(self, ops: Sequence[str], C: int,
                 op_factory: Callable[[str, int], nn.Module] = create_op):
        super().__init__()
        self.edges = [(j, i) for j in range(1, 4) for i in range(j)]
        self.ops = nn.ModuleList(op_factory(op, C) for op in ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        nodes = [x]
        k = 0
        for j in range(1, 4):
            total = 0
            for i in range(j):
                total = total + self.ops[k](nodes[i])
                k += 1
            nodes.append(total)
        return nodes[3]


class ResidualReduction(nn.Module):
    """The ResNet basic block between stages: stride 2, C_in -> C_out."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, Cin, H, W) -> (B, Cout, H/2, W/2)
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    def __init__(self, ops: Sequence[str], in_channels: int, num_classes: int, C: int = 16,
                 N: int = 5, op_factory: Callable[[str, int], nn.Module] = create_op):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers: list[nn.Module] = []
        c = C
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(c, 2 * c))
                c *= 2
            layers += [NB201Cell(ops, c, op_factory) for _ in range(N)]
        self.cells = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, in, H, W) -> (B, classes)
        return self.classifier(self.head(self.cells(self.stem(x))))
