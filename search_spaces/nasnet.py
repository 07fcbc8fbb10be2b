"""`nasnet`: the NASNet search space (Zoph et al., "Learning Transferable Architectures for
Scalable Image Recognition", CVPR 2018).

Two cells are searched, a normal cell and a reduction cell, each of B blocks (5 by default).
Block k picks two inputs and one op for each; the two results are added. Its inputs come from
the states ``0 = h(i-2)``, ``1 = h(i-1)`` (the two previous cells' outputs) and
``2 + j = block j`` for the earlier blocks j < k, so block k's inputs are a categorical over
``0 .. k+1`` and every declared value is a state that exists. Unused block outputs are
concatenated into the cell's output. Labels: ``normal/block2/input0``, ``normal/block2/op0``,
``reduce/block4/op1``. Ops (see ops.py): the NASNet/DARTS set, restrictable with ``ops=[...]``.

Options: ``blocks`` (B, 5), ``C`` (initial width, 16), ``N`` (normal cells per stage, 1),
``stem_multiplier`` (3), ``drop_path`` (the final ScheduledDropPath probability, 0.2),
``dropout`` before the classifier (0.0), ``ops``. The network is in nasnet_network.py; this
module imports no torch, so strategies can read the space without loading it.
``build_supernet`` is that network with every declared input and op of every block held at
once (weight-sharing NAS, see supernet.py).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .registry import register_space
from .space import Categorical, Dim, SampleValidationError, Space

# The NASNet / DARTS operation set; every name is a key of ops.OPS.
NASNET_OPS = (
    "identity",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "sep_conv_7x7",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "conv_7x1_1x7",
    "avg_pool_3x3",
    "max_pool_3x3",
)
CELLS = ("normal", "reduce")


def state_name(index: int) -> str:
    """0 -> 'h(i-2)', 1 -> 'h(i-1)', 2 + j -> 'block j'."""
    return ("h(i-2)", "h(i-1)")[index] if index < 2 else f"block{index - 2}"


@dataclass(frozen=True)
class CellInput(Categorical):
    """The input of block ``block``: one of the states 0 .. block+1. A value naming a block that
    does not exist, or comes later, is rejected with a reason that says so (wherever the
    dimension is checked, in a composite space too)."""

    block: int = 0
    blocks: int = 5

    def check(self, value: Any) -> Any:
        k = self.block
        if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= k + 1:
            valid = ", ".join(f"{i} = {state_name(i)}" for i in range(k + 2))
            b = value - 2
            if value < 0:
                why = f"state {value}, which does not exist"
            elif b == k:
                why = f"block{k} itself"
            elif b < self.blocks:
                why = f"block{b}, which is computed after block{k}"
            else:
                why = f"block{b}, which does not exist (the cell has {self.blocks} blocks)"
            raise SampleValidationError(f"{self.label}={value} references {why}; block{k} can read {valid}",
                                        self.label)
        return super().check(value)


@register_space
class NasNetSpace(Space):
    """NASNet normal + reduction cells (Zoph et al. 2018): B blocks, two inputs and two ops each."""

    name = "nasnet"
    builds_network = True

    def __init__(self, blocks: int = 5, C: int = 16, N: int = 1, stem_multiplier: int = 3,
                 drop_path: float = 0.2, dropout: float = 0.0, ops: Sequence[str] = NASNET_OPS):
        if int(blocks) < 1:
            raise ValueError(f"nasnet.blocks must be >= 1, got {blocks}")
        if int(C) < 1 or int(N) < 1 or int(stem_multiplier) < 1:
            raise ValueError(f"nasnet.C, nasnet.N and nasnet.stem_multiplier must be >= 1, "
                             f"got {C}, {N}, {stem_multiplier}")
        if not 0.0 <= float(drop_path) < 1.0 or not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"nasnet.drop_path and nasnet.dropout must be in [0, 1), got {drop_path}, {dropout}")
        ops = list(ops)
        bad = [o for o in ops if o not in NASNET_OPS]
        if bad or not ops:
            raise ValueError(f"unknown nasnet op {bad[0] if bad else None!r}; valid: {', '.join(NASNET_OPS)}")
        super().__init__(blocks=int(blocks), C=int(C), N=int(N), stem_multiplier=int(stem_multiplier),
                         drop_path=float(drop_path), dropout=float(dropout), ops=ops)

    # -- the declaration ------------------------------------------------------------------
    def dimensions(self) -> list[Dim]:
        dims: list[Dim] = []
        ops = tuple(self.options["ops"])
        for cell in CELLS:
            for k in range(self.options["blocks"]):
                states = tuple(range(k + 2))  # h(i-2), h(i-1), blocks 0..k-1
                for j in (0, 1):
                    dims.append(CellInput(f"{cell}/block{k}/input{j}", choices=states, block=k,
                                          blocks=self.options["blocks"],
                                          description=f"{cell} cell, block {k}: state for input {j}"))
                    dims.append(Categorical(f"{cell}/block{k}/op{j}", choices=ops,
                                            description=f"{cell} cell, block {k}: op on input {j}"))
        return dims

    # -- genotype -------------------------------------------------------------------------
    def cells(self, sample: Mapping[str, Any]) -> dict[str, tuple]:
        """{"normal": cell, "reduce": cell}, a cell being B blocks ((in0, op0), (in1, op1))."""
        s = self.validate(sample)
        return {
            cell: tuple(
                tuple((s[f"{cell}/block{k}/input{j}"], s[f"{cell}/block{k}/op{j}"]) for j in (0, 1))
                for k in range(self.options["blocks"])
            )
            for cell in CELLS
        }

    def key(self, sample: Mapping[str, Any]) -> str:
        """Canonical genotype string, DARTS-like: ``normal:op~in+op~in|...;reduce:...``. The two
        inputs of a block are added, so their order does not matter and is sorted."""
        parts = []
        for cell, blocks in self.cells(sample).items():
            text = "|".join("+".join(f"{op}~{i}" for i, op in sorted(block)) for block in blocks)
            parts.append(f"{cell}:{text}")
        return ";".join(parts)

    def genotype_json(self, sample: Mapping[str, Any]) -> str:
        return json.dumps({c: [list(map(list, b)) for b in blocks] for c, blocks in self.cells(sample).items()})

    # -- network and picture --------------------------------------------------------------
    def build(self, sample: Mapping[str, Any], input_shape: Sequence[int], num_classes: int):
        from .nasnet_network import NASNetwork

        cells = self.cells(sample)
        o = self.options
        return NASNetwork(cells["normal"], cells["reduce"], input_shape, num_classes, C=o["C"], N=o["N"],
                          stem_multiplier=o["stem_multiplier"], drop_path_max=o["drop_path"],
                          dropout=o["dropout"])

    def build_supernet(self, input_shape: Sequence[int], num_classes: int):
        """The same network of `SuperCell`s: each block's inputs and ops hold every declared
        choice of their labels (see nasnet_network.py); each label governs its slot in every
        normal (or reduction) cell, as the one sampled cell is repeated."""
        import functools

        from .nasnet_network import NASSupernet, SuperCell

        o = self.options
        choices = {d.label: d.grid() for d in self.dims}
        labels = {cell: tuple(tuple((f"{cell}/block{k}/input{j}", f"{cell}/block{k}/op{j}") for j in (0, 1))
                              for k in range(o["blocks"])) for cell in CELLS}
        return NASSupernet(labels["normal"], labels["reduce"], input_shape, num_classes, C=o["C"], N=o["N"],
                           stem_multiplier=o["stem_multiplier"], drop_path_max=o["drop_path"],
                           dropout=o["dropout"], make_cell=functools.partial(SuperCell, choices=choices))

    def draw(self, sample: Mapping[str, Any], path: str) -> list[str]:
        """Both cells, normal above reduction, in ``<path>.png`` and ``<path>.svg``."""
        from .diagrams import draw_cells

        cells = self.cells(sample)
        return draw_cells([("Normal cell", cells["normal"]), ("Reduction cell", cells["reduce"])], path)
