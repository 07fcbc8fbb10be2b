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

`NASSupernet` (the end of this file) is the same network built of `SuperCell`s, which hold every
choice of the space at once (weight-sharing NAS; see supernet.py and ``NasNetSpace.build_supernet``).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from timm.layers import drop_path
from torch import nn
from torch.func import functional_call

from .ops import FactorizedReduce, ReLUConvBN, create_op
from .space import SampleValidationError
from .supernet import Choice, LayerChoice

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
                 drop_path_max: float = 0.0, dropout: float = 0.0, make_cell: Callable[..., nn.Module] = Cell):
        """``make_cell(cell, c_prev_prev, c_prev, C, reduction, reduction_prev)`` builds each
        cell (the supernet passes the cells' labels and `SuperCell`; see `NASSupernet`)."""
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
                cell = make_cell(reduce if reduction else normal, c_prev_prev, c_prev, c_curr, reduction,
                                 reduction_prev)
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


# ----------------------------------------------------------------------------- the supernet
# Weight-sharing NAS (supernet.py): the same network with every choice of the cells held at once.
# A block's input is an `InputChoice`; its op a `LayerChoice` of every declared op. In a
# reduction cell an op reading h(i-2) or h(i-1) has stride 2 and one reading a block stride 1,
# so such an op slot holds both (``<op>`` and ``<op>@stride1``), chosen by the input's value.
# A cell's width follows the path (C x its unused blocks), so every cell's preprocessing and the
# classifier hold the weights of the widest input (C x B, every block unused) and read only the
# input channels the path produces; the stand-alone network gets exactly those weights.


class InputChoice(Choice):
    """The state a block's input reads (0 = h(i-2), 1 = h(i-1), 2 + j = block j)."""

    def __init__(self, label: str, states: Sequence[int]):
        super().__init__(label)
        self.states = tuple(states)
        self.active = self.states[0]

    def activate(self, state) -> None:
        if state not in self.states:
            raise SampleValidationError(f"{self.label}={state!r} is not one of {list(self.states)}", self.label)
        self.active = state

    def extra_repr(self) -> str:
        return f"label={self.label!r}, active={self.active}"


class OpChoice(LayerChoice):
    """A block's op: `LayerChoice` of the declared ops; in a reduction cell its key also says
    the stride the input's value implies (``<op>@stride1`` for a block's output)."""

    def __init__(self, label: str, input_label: str, candidates, strided: bool):
        super().__init__(label, candidates)
        self.input_label, self.strided = input_label, strided

    def value_of(self, sample):
        op = super().value_of(sample)
        return f"{op}@stride1" if self.strided and sample.get(self.input_label, 0) >= 2 else op

    @property
    def op(self) -> str:
        return self.active.partition("@")[0]


def _read(module: nn.Module, x: torch.Tensor, channels: torch.Tensor | None) -> torch.Tensor:
    """A cell's preprocessing of an input that has only ``channels`` of its widest width (None:
    all): ``module(x)`` with its convs' weights of those input channels."""
    if channels is None:
        return module(x)
    sliced = {f"{name}.weight": conv.weight.index_select(1, channels)
              for name, conv in module.named_modules() if isinstance(conv, nn.Conv2d)}
    return functional_call(module, sliced, (x,))


def _channels(concat: Sequence[int], C: int) -> torch.Tensor:
    """Indices of the channels of blocks ``concat`` in the widest cell output (C per block)."""
    return torch.tensor([k * C + c for k in concat for c in range(C)], dtype=torch.long)


class SuperCell(nn.Module):
    """Every cell of the space at one position. ``labels`` is the cell's B blocks of
    ((input label, op label), ...); ``choices[label]`` the declared values of each label."""

    def __init__(self, labels, c_prev_prev: int, c_prev: int, C: int, reduction: bool,
                 reduction_prev: bool, choices=None):
        super().__init__()
        self.reduction, self.C = reduction, C
        self.pre0 = FactorizedReduce(c_prev_prev, C) if reduction_prev else ReLUConvBN(c_prev_prev, C)
        self.pre1 = ReLUConvBN(c_prev, C)
        self.inputs = nn.ModuleList()
        self.ops = nn.ModuleList()
        for block in labels:
            for in_label, op_label in block:
                states = choices[in_label]
                self.inputs.append(InputChoice(in_label, states))
                strided = reduction and max(states) >= 2  # reads h(i-2)/h(i-1) or a block
                candidates = {op: create_op(op, C, 2 if reduction else 1) for op in choices[op_label]}
                if strided:
                    candidates.update({f"{op}@stride1": create_op(op, C, 1) for op in choices[op_label]})
                self.ops.append(OpChoice(op_label, in_label, candidates, strided))
        self.out_channels = C * len(labels)  # the widest output: no block reads another

    def concat(self) -> list[int]:
        """The unused blocks of the active cell (its output)."""
        return unused_blocks(tuple(((self.inputs[2 * k].active, ""), (self.inputs[2 * k + 1].active, ""))
                                   for k in range(len(self.ops) // 2)))

    def forward(self, s0, s1, ch0=None, ch1=None, drop_prob: float = 0.0):
        """As `Cell.forward`; ``ch0``/``ch1`` are the channels of the wide inputs the previous
        cells produced (None: all). Returns the output and its channels in the widest output."""
        states = [_read(self.pre0, s0, ch0), _read(self.pre1, s1, ch1)]  # each (B, C, H, W)
        for k in range(len(self.ops) // 2):
            hs = []
            for n in (2 * k, 2 * k + 1):
                h = self.ops[n](states[self.inputs[n].active])
                hs.append(h if self.ops[n].op == "identity" else drop_path(h, drop_prob, self.training))
            states.append(hs[0] + hs[1])
        concat = self.concat()
        return torch.cat([states[2 + k] for k in concat], dim=1), _channels(concat, self.C).to(s1.device)


class NASSupernet(NASNetwork):
    """`NASNetwork` built of `SuperCell`s: the path's cells with inherited weights."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)  # (B, 3C, H, W)
        c0 = c1 = None
        for cell in self.cells:
            out, c = cell(s0, s1, c0, c1, self.drop_path_prob)
            s0, s1, c0, c1 = s1, out, c1, c
        out = self.dropout(self.pool(s1).flatten(1))  # (B, C_last x unused blocks)
        return F.linear(out, self.classifier.weight.index_select(1, c1), self.classifier.bias)

    def path_channels(self) -> list[torch.Tensor | None]:
        """The channels of the stem (None: all, twice: it feeds both inputs of the first cell)
        and of each cell's output on the active path: cell i reads entries i and i + 1, the
        classifier the last."""
        return [None, None] + [_channels(cell.concat(), cell.C) for cell in self.cells]

    def subnet_state(self, prefix: str, state: dict) -> None:
        """The stand-alone network's preprocessing and classifier read only the path's channels."""
        outs = self.path_channels()
        for i, cell in enumerate(self.cells):
            for pre, ch in (("pre0", outs[i]), ("pre1", outs[i + 1])):
                if ch is None:
                    continue
                for name, m in getattr(cell, pre).named_modules():
                    if isinstance(m, nn.Conv2d):
                        key = f"{prefix}cells.{i}.{pre}.{name}.weight"
                        state[key] = state[key].index_select(1, ch.to(state[key].device))
        key = f"{prefix}classifier.weight"
        state[key] = state[key].index_select(1, outs[-1].to(state[key].device))
