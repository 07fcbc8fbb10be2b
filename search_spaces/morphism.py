"""Function-preserving network morphism on `morphable` networks (Auto-Keras, Jin et al. KDD 2019;
Net2Net, Chen et al. ICLR 2016).

A `Morph` is one operation, as data (JSON-able, so a trial can store the sequence that made it):

* ``deepen``  - insert a layer at ``layer`` (an index in its stage) whose conv is the identity
  (a Dirac kernel) and whose BN is the identity in eval mode (running mean 0, variance 1, weight
  ``sqrt(1 + eps)``); its input is a ReLU output, so the ReLU after it changes nothing;
* ``widen``   - grow a layer to ``value`` channels by replicating random existing units (conv
  rows, BN entries, an added skip's projection) and splitting each consumer's weights over the
  replicas with random fractions that sum to one (the next conv, a later skip, the head);
* ``skip``    - give a layer an ``add:j`` skip whose projection's BN has weight and bias zero, or
  a ``concat:j`` skip whose new input channels get zero weights in every consumer.

``apply_arch(arch, morph)`` is the genotype's change (what a strategy needs, no torch);
``apply_state(arch, state, morph)`` is the network's: a parent's ``state_dict`` becomes the
child's, with the same outputs in eval mode. ``random_morph`` draws an applicable operation that
keeps the child in its space.

`MorphismSpace` is the protocol the `morphism` strategy and weight inheritance use: `MorphableSpace`
implements it with the functions here, and a user's own space opts in by implementing its six
methods (`missing_operations` names those a space lacks; the sweep check reports them).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, runtime_checkable

import torch

from .morph_arch import Arch, Layer, out_widths
from .space import SampleValidationError

KINDS = ("deepen", "widen", "skip")
BN_EPS = 1e-5  # nn.BatchNorm2d's default, which MorphNet uses


@dataclass(frozen=True)
class Morph:
    kind: str
    stage: int
    layer: int
    value: Any  # deepen: kernel; widen: the new width; skip: "add:j" or "concat:j"
    seed: int = 0  # widen's replicas and weight fractions, an added skip's projection

    def to_list(self) -> list:
        return [self.kind, self.stage, self.layer, self.value, self.seed]

    @classmethod
    def from_list(cls, item) -> "Morph":
        return cls(*item)


@runtime_checkable
class MorphismSpace(Protocol):
    """What a space implements so that the `morphism` strategy searches it and a child trial starts
    from its parent's transformed checkpoint (`platform/engine/inheritance.py`). A space's network
    is described as an `Arch` (stages of `Layer`: width, kernel, skip), the form the edit distance
    (`edit_distance.py`) compares; the space's own genotype and network can be anything.

    The strategy calls ``seed_arch`` (the first trial), ``arch`` and ``sample_of`` (to and from a
    sample), ``random_morph`` and ``morph_arch`` (children, on genotypes only); the trial runner
    calls ``morph_state`` on the parent's weights for each stored operation, in order."""

    def seed_arch(self) -> Arch:
        """The first trial's architecture (trained from scratch)."""

    def arch(self, sample: Mapping[str, Any]) -> Arch:
        """A sample's architecture."""

    def sample_of(self, arch: Arch) -> dict[str, Any]:
        """The validated sample of ``arch``; `SampleValidationError` when it leaves the space."""

    def random_morph(self, arch: Arch, rng: random.Random) -> Morph:
        """A random operation applicable to ``arch`` whose child stays in the space;
        `SampleValidationError` when none is found."""

    def morph_arch(self, arch: Arch, morph: Morph) -> Arch:
        """The child's architecture; ValueError when ``morph`` does not apply to ``arch``."""

    def morph_state(self, arch: Arch, state: Mapping[str, torch.Tensor], morph: Morph) -> dict[str, torch.Tensor]:
        """The child network's ``state_dict`` from the parent's (the network `build` makes for
        ``arch``), function-preserving: the same outputs in eval mode."""


MORPHISM_OPERATIONS = ("seed_arch", "arch", "sample_of", "random_morph", "morph_arch", "morph_state")


def missing_operations(space: Any) -> list[str]:
    """The `MorphismSpace` methods that ``space`` does not implement (none: it opts in)."""
    return [name for name in MORPHISM_OPERATIONS if not callable(getattr(space, name, None))]


# ----------------------------------------------------------------------------- genotype
def apply_arch(arch: Arch, m: Morph) -> Arch:
    """The child's arch; ValueError when the operation does not apply to ``arch``."""
    stages = [list(st) for st in arch]
    if not 0 <= m.stage < len(stages):
        raise ValueError(f"no stage {m.stage}")
    st = stages[m.stage]
    if m.kind == "deepen":
        p = m.layer
        if not (1 if m.stage == 0 else 0) <= p <= len(st):  # the first layer's input is the image
            raise ValueError(f"cannot deepen stage {m.stage} at {p}")
        width = out_widths(arch)[m.stage][p - 1] if p else out_widths(arch)[m.stage - 1][-1]
        moved = [Layer(x.width, x.kernel, x.skip and (x.skip[0], x.skip[1] + (x.skip[1] >= p))) for x in st[p:]]
        stages[m.stage] = st[:p] + [Layer(width, int(m.value))] + moved
    elif m.kind == "widen":
        if not 0 <= m.layer < len(st) or int(m.value) <= st[m.layer].width:
            raise ValueError(f"cannot widen stage {m.stage} layer {m.layer} to {m.value}")
        st[m.layer] = Layer(int(m.value), st[m.layer].kernel, st[m.layer].skip)
    elif m.kind == "skip":
        op, _, j = str(m.value).partition(":")
        if not 0 <= m.layer < len(st) or st[m.layer].skip is not None or op not in ("add", "concat") \
                or not 0 <= int(j) < m.layer:
            raise ValueError(f"cannot add skip {m.value} to stage {m.stage} layer {m.layer}")
        st[m.layer] = Layer(st[m.layer].width, st[m.layer].kernel, (op, int(j)))
    else:
        raise ValueError(f"unknown morph {m.kind!r}; valid: {', '.join(KINDS)}")
    return tuple(tuple(s) for s in stages)


def random_morph(space: Any, arch: Arch, rng: random.Random, max_tries: int = 100) -> Morph:
    """A random operation whose child is in ``space`` (a `MorphableSpace`: its options and
    ``sample_of``; kind, then place, uniformly)."""
    o = space.options
    for _ in range(max_tries):
        kind, s = rng.choice(KINDS), rng.randrange(len(arch))
        n = len(arch[s])
        if kind == "deepen":
            m = Morph(kind, s, rng.randint(1 if s == 0 else 0, n), rng.choice(o["kernels"]))
        elif kind == "widen":
            layer = rng.randrange(n)
            grow = rng.choice((o["width_step"], arch[s][layer].width))  # one step, or double
            m = Morph(kind, s, layer, arch[s][layer].width + grow, rng.randrange(2 ** 31))
        else:
            if n < 2:
                continue
            layer = rng.randrange(1, n)
            m = Morph(kind, s, layer, f"{rng.choice(('add', 'concat'))}:{rng.randrange(layer)}", rng.randrange(2 ** 31))
        try:
            space.sample_of(apply_arch(arch, m))
        except (ValueError, SampleValidationError):
            continue
        return m
    raise SampleValidationError(f"no applicable morphism of this arch in {max_tries} draws")


# ----------------------------------------------------------------------------- weights
def apply_state(arch: Arch, state: Mapping[str, torch.Tensor], m: Morph) -> dict[str, torch.Tensor]:
    """The child's ``state_dict`` (a `MorphNet`'s keys) from its parent's."""
    child = apply_arch(arch, m)
    if m.kind == "deepen":
        return _deepen_state(child, state, m)
    gen = torch.Generator().manual_seed(int(m.seed))
    ymaps = {}
    if m.kind == "widen":
        old = arch[m.stage][m.layer].width
        extra = torch.randint(old, (int(m.value) - old,), generator=gen).tolist()
        ymaps[(m.stage, m.layer)] = list(range(old)) + extra
    return _remap(arch, child, state, ymaps, gen)


def _key(s: int, i: int) -> str:
    return f"blocks.s{s}l{i}"


def _deepen_state(child: Arch, state, m: Morph) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in state.items():
        parts = k.split(".")
        if parts[0] == "blocks" and parts[1].startswith(f"s{m.stage}l"):
            i = int(parts[1][len(f"s{m.stage}l"):])
            parts[1] = f"s{m.stage}l{i + (i >= m.layer)}"
        out[".".join(parts)] = v.clone()
    layer = child[m.stage][m.layer]
    c, k = layer.width, layer.kernel
    conv = torch.zeros(c, c, k, k)
    conv[torch.arange(c), torch.arange(c), k // 2, k // 2] = 1.0  # Dirac: the identity
    new = _key(m.stage, m.layer)
    out[f"{new}.conv.weight"] = conv
    out.update({f"{new}.bn.{n}": t for n, t in _bn(c, math.sqrt(1.0 + BN_EPS)).items()})
    return out


def _bn(c: int, weight: float) -> dict[str, torch.Tensor]:
    """A BN that is ``weight * x`` in eval mode (a fresh one's running statistics)."""
    return {"weight": torch.full((c,), weight), "bias": torch.zeros(c), "running_mean": torch.zeros(c),
            "running_var": torch.ones(c), "num_batches_tracked": torch.tensor(0)}


def _consume(w: torch.Tensor, rows: list[int], cols: list[int | None], gen: torch.Generator) -> torch.Tensor:
    """A consumer's weight (out, in, ...) for new output ``rows`` (old indices) and new input
    ``cols`` (old index, or None for a channel that must contribute nothing): replicas of one old
    input split its weight with random fractions that sum to one, per output row."""
    w = w[rows]
    out = torch.zeros((w.shape[0], len(cols)) + tuple(w.shape[2:]), dtype=w.dtype)
    groups: dict[int, list[int]] = {}
    for c, old in enumerate(cols):
        if old is not None:
            groups.setdefault(old, []).append(c)
    for old, new in groups.items():
        if len(new) == 1:
            out[:, new[0]] = w[:, old]
            continue
        frac = torch.rand((w.shape[0], len(new)), generator=gen) + 0.5
        frac = (frac / frac.sum(dim=1, keepdim=True)).to(w.dtype)  # (out, replicas), rows sum to 1
        for r, c in enumerate(new):
            out[:, c] = w[:, old] * frac[:, r].view(-1, *([1] * (w.dim() - 2)))
    return out


def _remap(arch: Arch, child: Arch, state, ymaps: dict, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Widen and skip: the same layers, some wider (``ymaps``: new unit -> old unit), some with a new
    skip. Every tensor ``z`` of the child gets a map new channel -> old channel (None: new, silent)."""
    out = {k: v.clone() for k, v in state.items()}
    in_map: list[int | None] = list(range(state[f"{_key(0, 0)}.conv.weight"].shape[1]))
    for s, stage in enumerate(child):
        zmaps: list[list[int | None]] = []
        for i, layer in enumerate(stage):
            key, before = _key(s, i), arch[s][i]
            ym = ymaps.get((s, i), list(range(before.width)))
            out[f"{key}.conv.weight"] = _consume(state[f"{key}.conv.weight"], ym, in_map, gen)
            for n in ("weight", "bias", "running_mean", "running_var"):
                out[f"{key}.bn.{n}"] = state[f"{key}.bn.{n}"][ym].clone()
            zm: list[int | None] = list(ym)
            if layer.skip and layer.skip[0] == "add":
                src = zmaps[layer.skip[1]]
                if before.skip == layer.skip:
                    out[f"{key}.proj.0.weight"] = _consume(state[f"{key}.proj.0.weight"], ym, src, gen)
                    for n in ("weight", "bias", "running_mean", "running_var"):
                        out[f"{key}.proj.1.{n}"] = state[f"{key}.proj.1.{n}"][ym].clone()
                else:  # a new skip: any conv, then a BN that multiplies by zero
                    w = torch.empty(layer.width, len(src), 1, 1)
                    torch.nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=gen)
                    out[f"{key}.proj.0.weight"] = w
                    out.update({f"{key}.proj.1.{n}": t for n, t in _bn(layer.width, 0.0).items()})
            elif layer.skip and layer.skip[0] == "concat":
                src = zmaps[layer.skip[1]]
                if before.skip == layer.skip:
                    zm += [None if c is None else before.width + c for c in src]
                else:
                    zm += [None] * len(src)
            zmaps.append(zm)
            in_map = zm
    bias = state["head.weight"].shape[0]
    out["head.weight"] = _consume(state["head.weight"], list(range(bias)), in_map, gen)
    return out
