"""`nb201`: the NAS-Bench-201 cell space (Dong & Yang, "NAS-Bench-201: Extending the Scope of
Reproducible Neural Architecture Search", ICLR 2020).

A cell is a DAG of 4 nodes; node 0 is the cell input, node 3 its output, and every edge
``j<-i`` (i < j) carries one of 5 operations: ``none`` (zero), ``skip_connect``,
``nor_conv_1x1``, ``nor_conv_3x3`` (ReLU-Conv-BN) and ``avg_pool_3x3``. Node j is the sum of its
incoming edges. 6 edges x 5 ops = 15,625 cells. Labels are ``edge/<j><-<i>``.

``key(sample)`` is NAS-Bench-201's own string, ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``, so a
sample looks itself up in the benchmark's table; `from_string` turns one back into a sample.
``canonical_key(sample)`` is one string per *computation*: edges that cannot carry the input
to the output are dropped and the two middle nodes are ordered when they are interchangeable,
so strategies can skip isomorphic cells (it reads the space only, never the table).

``build`` makes the NAS-Bench-201 macro network: a 3x3 conv stem (C channels), three stages of
N cells (C, 2C, 4C channels) joined by residual reduction blocks (stride 2), BN-ReLU, global
average pooling and a linear classifier. The paper uses C=16, N=5; the default N=1 keeps CPU
trials small. ``build_supernet`` is the same builder with all 5 ops on every edge, one
`LayerChoice` per edge label (weight-sharing NAS, see supernet.py).
"""
from __future__ import annotations

import functools
from typing import Any, Mapping, Sequence

from .registry import register_space
from .space import Categorical, Dim, SampleValidationError, Space

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NODES = 4
EDGES = tuple((j, i) for j in range(1, NODES) for i in range(j))  # (1,0) (2,0) (2,1) (3,0) (3,1) (3,2)


def edge_label(j: int, i: int) -> str:
    return f"edge/{j}<-{i}"


LABELS = tuple(edge_label(j, i) for j, i in EDGES)


def to_string(sample: Mapping[str, Any]) -> str:
    """NAS-Bench-201's string of a cell: ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
    nodes = []
    for j in range(1, NODES):
        nodes.append("|" + "|".join(f"{sample[edge_label(j, i)]}~{i}" for i in range(j)) + "|")
    return "+".join(nodes)


def from_string(text: str) -> dict[str, str]:
    """The sample of a NAS-Bench-201 cell string; raises SampleValidationError when malformed."""
    parts = text.strip().split("+")
    if len(parts) != NODES - 1:
        raise SampleValidationError(f"{text!r}: a NAS-Bench-201 cell has {NODES - 1} nodes separated by '+'")
    sample: dict[str, str] = {}
    for j, part in enumerate(parts, start=1):
        if not (part.startswith("|") and part.endswith("|")):
            raise SampleValidationError(f"{text!r}: node {j} must be written |op~i|...|")
        edges = part[1:-1].split("|")
        if len(edges) != j:
            raise SampleValidationError(f"{text!r}: node {j} needs {j} inputs, got {len(edges)}")
        for i, edge in enumerate(edges):
            op, sep, src = edge.partition("~")
            if not sep or src != str(i):
                raise SampleValidationError(f"{text!r}: node {j} input {i} must read 'op~{i}', got {edge!r}")
            if op not in OPS:
                raise SampleValidationError(f"{text!r}: unknown op {op!r}; valid: {', '.join(OPS)}",
                                            edge_label(j, i))
            sample[edge_label(j, i)] = op
    return sample


def canonical_string(sample: Mapping[str, Any]) -> str:
    """One string per computation (see the module docstring). Cells whose output never sees the
    input all map to the same string."""
    return _canonical(tuple(sample[lab] for lab in LABELS))


@functools.lru_cache(maxsize=None)  # at most 15,625 cells
def _canonical(cell: tuple[str, ...]) -> str:
    ops = dict(zip(EDGES, cell))
    # Node j is live when it is reachable from node 0 and reaches node 3 through non-zero edges.
    reach = {0}
    for j in range(1, NODES):
        if any(ops[(j, i)] != "none" and i in reach for i in range(j)):
            reach.add(j)
    coreach = {NODES - 1}
    for i in range(NODES - 2, -1, -1):
        if any(ops[(j, i)] != "none" and j in coreach for j in range(i + 1, NODES)):
            coreach.add(i)
    live = reach & coreach
    if NODES - 1 not in live:
        return "zero"
    ops = {e: (op if e[0] in live and e[1] in live else "none") for e, op in ops.items()}
    variants = [ops]
    if ops[(2, 1)] == "none":  # nodes 1 and 2 are interchangeable: both read node 0 only
        swap = {1: 2, 2: 1, 0: 0, 3: 3}
        variants.append({(max(swap[j], swap[i]), min(swap[j], swap[i])): op for (j, i), op in ops.items()})
    return min(to_string({edge_label(j, i): v[(j, i)] for j, i in EDGES}) for v in variants)


ROUTES = tuple(tuple(zip(route[1:], route[:-1]))  # the edges (j, i) of each route 0 -> ... -> 3
               for route in ((0, 3), (0, 1, 3), (0, 2, 3), (0, 1, 2, 3)))


@functools.lru_cache(maxsize=None)  # at most 15,625 cells
def path_features(cell: tuple[str, ...]) -> dict[str, float]:
    ops = dict(zip(EDGES, cell))
    out: dict[str, float] = {}
    for route in ROUTES:
        seq = [ops[e] for e in route]
        if "none" not in seq:
            name = "path:" + ">".join(seq)
            out[name] = out.get(name, 0.0) + 1.0
    return out


@register_space
class NB201Space(Space):
    """The NAS-Bench-201 cell; options ``C`` (stem width, 16) and ``N`` (cells per stage)."""

    name = "nb201"
    builds_network = True

    def __init__(self, C: int = 16, N: int = 1):
        if int(C) < 1 or int(N) < 1:
            raise ValueError(f"nb201: C and N must be >= 1, got C={C}, N={N}")
        super().__init__(C=int(C), N=int(N))

    def dimensions(self) -> list[Dim]:
        return [Categorical(edge_label(j, i), choices=OPS, description=f"op from node {i} to node {j}")
                for j, i in EDGES]

    def key(self, sample: Mapping[str, Any]) -> str:
        return to_string(self.validate(sample))

    def canonical_key(self, sample: Mapping[str, Any]) -> str:
        return canonical_string(self.validate(sample))

    from_string = staticmethod(from_string)

    def features(self, sample: Mapping[str, Any]) -> dict[str, float]:
        """The path encoding (White, Neiswanger, Nolen & Savani, "A Study on Encodings for Neural
        Architecture Search", NeurIPS 2020): for every sequence of ops along a route from the
        input (node 0) to the output (node 3) with no ``none`` on it, how many routes carry it
        (``{"path:nor_conv_3x3>skip_connect": 1.0, ...}``). Which convolutions the input passes
        through on its way out is what an additive model of the edges cannot see."""
        return dict(path_features(tuple(sample[lab] for lab in LABELS)))  # a copy of the cached one

    def enumerate(self):
        """Every cell, in the order of `itertools.product` over the edges."""
        import itertools

        for ops in itertools.product(OPS, repeat=len(EDGES)):
            yield dict(zip(LABELS, ops))

    def build(self, sample: Mapping[str, Any], input_shape: Sequence[int], num_classes: int):
        from .nb201_network import NB201Network

        s = self.validate(sample)
        return NB201Network([s[lab] for lab in LABELS], int(input_shape[0]), num_classes,
                            C=self.options["C"], N=self.options["N"])

    def build_supernet(self, input_shape: Sequence[int], num_classes: int):
        """The same macro network with a `LayerChoice` of all 5 ops on every edge (each label
        governs that edge in every cell, as the one sampled cell is repeated)."""
        from .nb201_network import NB201Network, create_op
        from .supernet import choice_factory

        return NB201Network(LABELS, int(input_shape[0]), num_classes, C=self.options["C"],
                            N=self.options["N"], op_factory=choice_factory(self, create_op))

    def draw(self, sample: Mapping[str, Any], path: str) -> list[str]:
        """The cell as a DAG of 4 nodes, each edge labelled with its op (zero edges dashed)."""
        from .diagrams import _pyplot, _save

        s = self.validate(sample)
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(7.0, 3.2))
        ax.axis("off")
        pos = {0: (0.0, 0.0), 1: (1.0, 0.9), 2: (2.0, 0.9), 3: (3.0, 0.0)}
        for j, i in EDGES:
            op = s[edge_label(j, i)]
            (x0, y0), (x1, y1) = pos[i], pos[j]
            bend = 0.2 if (i, j) in ((0, 2), (1, 3)) else 0.0
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                        arrowprops=dict(arrowstyle="-|>", lw=1.2, color="0.6" if op == "none" else "0.15",
                                        linestyle="--" if op == "none" else "-", shrinkA=14, shrinkB=14,
                                        connectionstyle=f"arc3,rad={bend}"))
            # the label sits at the middle of the (quadratic Bezier) arc that matplotlib draws
            mx = (x0 + x1) / 2 + 0.5 * bend * (y1 - y0)
            my = (y0 + y1) / 2 - 0.5 * bend * (x1 - x0)
            ax.text(mx, my, op, ha="center", va="center", fontsize=8,
                    bbox=dict(boxstyle="round,pad=0.2", fc="#fff7e0", ec="0.7", lw=0.6))
        for n, (x, y) in pos.items():
            ax.text(x, y, "in" if n == 0 else ("out" if n == NODES - 1 else str(n)), ha="center", va="center",
                    fontsize=10, bbox=dict(boxstyle="circle,pad=0.4", fc="#dbe9f6", ec="0.2"))
        ax.set_xlim(-0.4, 3.4)
        ax.set_ylim(-0.8, 1.4)
        ax.set_title(to_string(s), fontsize=7)
        return _save(fig, path)
