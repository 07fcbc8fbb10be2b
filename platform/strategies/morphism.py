"""Network morphism guided by a Gaussian process (Auto-Keras, Jin, Song & Hu, KDD 2019) as an
Optuna sampler, for a space that implements the morphism operations (the
`search_spaces.morphism.MorphismSpace` protocol: `morphable`, or a user's own space).

Each trial after the first is a *child* of a trained trial: a short sequence of function-preserving
operations (the space's ``random_morph``; `morphable`'s: deepen, widen, add a skip) applied to its parent's
architecture, and the trial runner starts it from the parent's checkpoint transformed by the same
sequence (`platform/engine/inheritance.py`), so it starts at its parent's accuracy.

Which child: a GP whose kernel is built on the edit distance between architectures
(`morphism_gp.py`) is fitted on the ranked trials so far; the acquisition is UCB, mean + beta *
std. It is optimised by a tree search over morphism sequences from the ``parents`` best trials:
the frontier holds (architecture, sequence, parent) nodes, the one with the highest acquisition
is expanded by ``branch`` random operations, and a child enters the frontier when it beats the
best acquisition so far, or otherwise with probability exp((acq - best) / T) (simulated
annealing: T starts at ``t0`` and is multiplied by ``decay`` per expansion). A child that the
additive model of the sweep's constraints (`cost/*` caps) predicts infeasible is never expanded
nor proposed; an infeasible trial is never a parent (`Record.ranked`).

The first trial is the space's seed network; until a trial is ranked, trials are the seed after
``number`` random operations, trained from scratch. A proposal stores ``nasforge:parent``,
``nasforge:morphs`` and ``nasforge:epochs`` (``child_epochs``; 0: the sweep's max_epochs) on the
trial. Its state is the stored trials (as for local search): resumed and second workers agree.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Any

from nasforge.search_spaces.morphism import missing_operations
from nasforge.search_spaces.space import SampleValidationError

from nasforge.platform.errors import ConfigError
from nasforge.platform.strategies.base import Record, RewardOptions, SampleStrategy, parse_options
from nasforge.platform.strategies.morphism_gp import EditDistanceGP


@dataclass
class MorphismOptions(RewardOptions):
    beta: float = 2.0  # UCB: mean + beta * std
    t0: float = 1.0  # annealing's first temperature (in standardised score units)
    decay: float = 0.9  # temperature factor per expansion
    expansions: int = 20  # nodes expanded per proposal
    branch: int = 6  # random operations per expanded node
    parents: int = 3  # the best trials the tree starts from
    max_morphs: int = 3  # longest operation sequence from a parent
    child_epochs: int = 0  # epochs a child trains (0: the sweep's trainer.max_epochs)

    def check(self) -> None:
        if self.beta < 0 or self.t0 <= 0 or not 0 < self.decay <= 1:
            raise ValueError("beta must be >= 0, t0 > 0 and decay in (0, 1]")
        if min(self.expansions, self.branch, self.parents, self.max_morphs) < 1 or self.child_epochs < 0:
            raise ValueError("expansions, branch, parents and max_morphs must be >= 1, child_epochs >= 0")


class MorphismSampler(SampleStrategy):
    """``MorphismSampler(space, seed, directions, **options)``; options as `MorphismOptions`."""

    def __init__(self, space, seed: int = 0, directions=("maximize",), **options: Any):
        self.options = parse_options(MorphismOptions, options, "strategy.options")
        self.morphable = space
        missing = missing_operations(space)
        if missing:
            raise ConfigError(f"strategy.name: morphism searches one space with the morphism operations "
                              f"(nasforge.search_spaces.morphism.MorphismSpace, e.g. `morphable`); "
                              f"{space.name!r} lacks {', '.join(missing)}")
        super().__init__(space, seed, directions, self.options.make_reward(directions))

    def propose(self, history: list[Record], number: int) -> dict[str, Any]:
        sp, rng = self.morphable, self.rng(number)
        ranked = [r for r in history if r.ranked]
        if not ranked:
            arch = sp.seed_arch()
            for _ in range(number):
                arch = sp.morph_arch(arch, sp.random_morph(arch, rng))
            return sp.sample_of(arch)
        seen = {r.key for r in history if r.key is not None}
        feasible = self.feasibility(history)
        archs = [sp.arch(r.sample) for r in ranked]
        gp = EditDistanceGP(seed=self.seed).fit(archs, [r.score for r in ranked])
        best = self._search(gp, ranked, archs, seen, feasible, rng)
        if best is None:  # nothing new within reach: a random sample from scratch
            return sp.sample(rng)
        _, arch, morphs, parent = best
        self.pending_attrs = {"parent": parent, "morphs": [m.to_list() for m in morphs],
                              "epochs": self.options.child_epochs}
        return sp.sample_of(arch)

    def _search(self, gp, ranked, archs, seen, feasible, rng):
        o, sp = self.options, self.morphable
        top = sorted(range(len(ranked)), key=lambda i: (-ranked[i].score, ranked[i].number))[:o.parents]
        acq0 = gp.ucb([archs[i] for i in top], o.beta)
        # frontier: (-acquisition, tie, arch, morphs, parent trial number)
        frontier = [(-float(a), n, archs[i], (), ranked[i].number) for n, (i, a) in enumerate(zip(top, acq0))]
        heapq.heapify(frontier)
        best, tie, temp = None, len(frontier), o.t0
        for _ in range(o.expansions):
            if not frontier:
                break
            _, _, arch, morphs, parent = heapq.heappop(frontier)
            children = []
            for _ in range(o.branch):
                try:
                    m = sp.random_morph(arch, rng)
                except SampleValidationError:
                    break
                child = sp.morph_arch(arch, m)
                sample = sp.sample_of(child)
                if self.seen_key(sample) in seen or not feasible(sample):
                    continue
                children.append((child, morphs + (m,), sample))
            if not children:
                continue
            acqs = gp.ucb([c[0] for c in children], o.beta)
            for (child, seq, _), a in zip(children, acqs):
                a = float(a)
                if best is None or a > best[0]:
                    best = (a, child, seq, parent)
                    accept = True
                else:
                    accept = rng.random() < math.exp((a - best[0]) / (temp * gp.sd))
                if accept and len(seq) < o.max_morphs:
                    tie += 1
                    heapq.heappush(frontier, (-a, tie, child, seq, parent))
            temp *= o.decay
        return best

