"""A `morphable` genotype as a structure: stages of `Layer` (width, kernel, skip), the form that the
network (`morph_network.py`), the morphism operations (`morphism.py`) and the edit distance
(`edit_distance.py`) read. No torch import.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layer:
    """One conv layer: its output width, kernel and skip (``None``, ``("add", j)`` or
    ``("concat", j)`` with j an earlier layer of the same stage)."""

    width: int
    kernel: int = 3
    skip: tuple[str, int] | None = None


Arch = tuple[tuple[Layer, ...], ...]  # stages of layers


def skip_name(skip: tuple[str, int] | None) -> str:
    return "none" if skip is None else f"{skip[0]}:{skip[1]}"


def parse_skip(text: str) -> tuple[str, int] | None:
    if text == "none":
        return None
    op, _, j = text.partition(":")
    return op, int(j)


def out_widths(arch: Arch) -> list[list[int]]:
    """The width of each layer's output ``z`` (a concat layer's is its own width plus its source's)."""
    widths = []
    for stage in arch:
        zs: list[int] = []
        for layer in stage:
            extra = zs[layer.skip[1]] if layer.skip and layer.skip[0] == "concat" else 0
            zs.append(layer.width + extra)
        widths.append(zs)
    return widths
