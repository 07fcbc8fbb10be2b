"""The network a NASNet genotype builds (Zoph et al., CVPR 2018; CIFAR layout as in DARTS).

A cell takes the outputs of the two previous cells, h(i-2) and h(i-1), brings both to C
channels (a 1x1 ReLU-conv-BN; a factorised reduction when h(i-2) is at twice the resolution),
then computes B blocks. Block k applies one op to each of its two inputs (state 0 = h(i-2),
1 = h(i-1), 2 + j = block j) and adds the results. The outputs of the blocks no other block
uses are concatenated: a cell's width is C x (number of unused blocks). In a reduction cell the
ops reading h(i-2) or h(i-1) have stride 2.

The network: a 3x3 conv stem (3C channels), then 3 stages of N normal cells with a reduction
cell (doubling C) between stages, global average pooling and a linear classifier.
ScheduledDropPath (see drop_path.py) drops each non-identity op's output with probability
``self.drop_path_prob``, set per epoch by ``set_drop_path_prob``.

Genotype format used here: a cell is a tuple of B blocks, a block a pair
``((input0, op0), (input1, op1))``.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .drop_path import drop_path
from .ops import FactorizedReduce, ReLUConvBN, create_op

Block = tuple[tuple[int, str], tuple[int, str]]
CellGenotype = tuple[Block, ...]


def unused_blocks(cell: CellGenotype) -> list[int]:
    """Indices of the blocks whose output no later block reads (they form the cell's output)."""
    used = {i - 2 for block in cell for i, _op in block if i >= 2}
    return [k for k in range(len(cell)) if k not in used]


class Cell(nn.Module):
    def __init__(self, cell: CellGenotype, c_prev_prev: int, c_prev: int, C: int,
                 reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        self.pre0 = FactorizedReduce(c_prev_prev, C) if reduction_prev else ReLUConvBN(c_prev_prev, C)
        self.pre1 = ReLUConvBN(c_prev, C)
        self.inputs = [(i0, i1) for (i0, _), (i1, _) in cell]
        self.identity = [(op0 == "identity", op1 == "identity") for (_, op0), (_, op1) in cell]
        self.ops = nn.ModuleList()
        for (i0, op0), (i1, op1) in cell:
            for i, op in ((i0, op0), (i1, op1)):
                self.ops.append(create_op(op, C, 2 if reduction and i < 2 else 1))
        self.concat = unused_blocks(cell)
        self.out_channels = C * len(self.concat)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]  # each (B, C, H, W)
        for k, (i0, i1) in enumerate(self.inputs):
            h0 = self.ops[2 * k](states[i0])
            h1 = self.ops[2 * k + 1](states[i1])
            id0, id1 = self.identity[k]
            if not id0:
                h0 = drop_path(h0, drop_prob, self.training)
            if not id1:
                h1 = drop_path(h1, drop_prob, self.training)
            states.append(h0 + h1)  # (B, C, H', W'), H' = H/2 in a reduction cell
        return torch.cat([states[2 + k] for k in self.concat], dim=1)  # (B, C * len(concat), H', W')


class NASNetwork(nn.Module):
    """Stem -> [N normal cells, reduction] x 2 -> N normal cells -> pool -> classifier."""

    def __init__(self, normal: CellGenotype, reduce: CellGenotype, input_shape: Sequence[int],
                 num_classes: int, C: int = 16, N: int = 1, stem_multiplier: int = 3,
                 drop_path_max: float = 0.0, dropout: float = 0.0):
        super().__init__()
        self.drop_path_max = float(drop_path_max)
        self.drop_path_prob = 0.0  # ScheduledDropPath: set per epoch by set_drop_path_prob
        c_in = int(input_shape[0])
        c_stem = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(c_in, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        c_prev_prev, c_prev, c_curr = c_stem, c_stem, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for stage in range(3):
            kinds = ([True] if stage > 0 else []) + [False] * N
            for reduction in kinds:
                if reduction:
                    c_curr *= 2
                cell = Cell(reduce if reduction else normal, c_prev_prev, c_prev, c_curr, reduction, reduction_prev)
                self.cells.append(cell)
                reduction_prev = reduction
                c_prev_prev, c_prev = c_prev, cell.out_channels
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)  # (B, 3C, H, W)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
        out = self.pool(s1).flatten(1)  # (B, C_last)
        return self.classifier(self.dropout(out))  # (B, num_classes)
