"""Regularized (aging) evolution as an Optuna sampler (Real et al., "Regularized Evolution for
Image Classifier Architecture Search", AAAI 2019).

The population is the ``population`` most recently *scored* trials (by trial number): aging, not
killing the worst, is what regularizes the search. Until that many trials have scores, samples
are drawn uniformly at random. Then each new trial: draw ``sample_size`` members at random (a
tournament), take the best, and mutate ONE active decision to a different value (decisions that
become active are drawn at random, inactive ones are dropped).

Fair de-duplication (``dedup``): a child whose key (NAS-Bench-201: its canonical, isomorphism-
free form, computed from the space alone) was already proposed in this study is mutated again
(a short random walk away from the parent, up to ``max_tries`` steps; usually one or two), then
random unseen samples are tried, and only then is a duplicate accepted. Invalid samples
(``space.validate`` raises) are treated the same way: never proposed while an alternative exists.

Defaults: P = S = 30 for budgets of ~100 evaluations (a broad random start, then the strongest
selection; the best member still dies of age after P children), chosen on NAS-Bench-201 seeds
1000-1199 and 2000-2199, apart from the benchmark's seeds; at B = 100 every P in 15-50 with S in
[P/2, P] lands within 0.05 of it, P = 10 (NAS-Bench-201's REA) about 0.1 lower. For long
searches (thousands of trials) use a larger P and S < P, as Real et al. do.

Treatment of outcomes: COMPLETE trials join the population with their reward; PRUNED trials join
with the reward of their last reported value; FAILED trials never join (the aging window just
moves on). Infeasible trials (a constraint value > 0, see `SampleStrategy`) never join either:
the population holds feasible members only, so no infeasible sample is ever a parent; their
samples stay "seen" and are not proposed again; and a child (or random sample) that an additive
model of the reported constraint values predicts infeasible is treated like a duplicate. Every
proposal is a deterministic function of the seed, the trial number and the trials with smaller
numbers (see `SampleStrategy`), so resumed and multi-worker sweeps agree.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nasforge.platform.strategies.base import Record, RewardOptions, SampleStrategy, parse_options
from nasforge.platform.strategies.proxy_prior import ProxyPrior, ProxyPriorOptions


@dataclass
class EvolutionOptions(ProxyPriorOptions, RewardOptions):
    population: int = 30  # P (Real et al.: 100 over 20,000 models; NAS-Bench-201's REA: 10)
    sample_size: int = 30  # S (Real et al.: 25); S = P picks the population's best, aging still regularizes
    dedup: bool = True
    max_tries: int = 50

    def check(self) -> None:
        if self.population < 2:
            raise ValueError(f"population must be >= 2, got {self.population}")
        if not 1 <= self.sample_size <= self.population:
            raise ValueError(f"sample_size must be in [1, population={self.population}], got {self.sample_size}")
        if self.max_tries < 1:
            raise ValueError(f"max_tries must be >= 1, got {self.max_tries}")


class EvolutionSampler(SampleStrategy):
    """``EvolutionSampler(space, seed, directions, **options)``; options as `EvolutionOptions`."""

    def __init__(self, space, seed: int = 0, directions=("maximize",), **options: Any):
        self.options = parse_options(EvolutionOptions, options, "strategy.options")
        super().__init__(space, seed, directions, self.options.make_reward(directions))
        self._feasible = self.feasibility([])
        self.prior = ProxyPrior(space, self.options, seed)

    def propose(self, history: list[Record], number: int) -> dict[str, Any]:
        o = self.options
        seen = {r.key for r in history if r.key is not None} if o.dedup else set()
        scored = [r for r in history if r.ranked]  # infeasible trials never join the population
        rng = self.rng(number)
        self._feasible = self.feasibility(history)
        warm = self.prior.proposal(number, {r.key for r in history if r.key is not None}, self.seen_key)
        if warm is not None:  # the first population begins with the best proxy-scored samples
            return warm
        if len(scored) >= o.population:
            population = scored[-o.population:]
            contenders = rng.sample(population, o.sample_size)
            parent = max(contenders, key=lambda r: (r.score, r.number))
            child = parent.sample
            for _ in range(o.max_tries):
                # a seen (or invalid) child is mutated again: a short random walk from the parent
                child = self.mutate(child, rng)
                if self._fresh(child, seen):
                    return child
        for _ in range(o.max_tries):
            child = self.space.sample(rng)
            if self._fresh(child, seen):
                return child
        return child

    def mutate(self, sample: dict[str, Any], rng) -> dict[str, Any]:
        """Change one active decision (with more than one choice) to a different value."""
        active = [i for i, d in enumerate(self.decisions) if d.label in sample and d.n > 1]
        if not active:
            return dict(sample)
        d = self.decisions[active[rng.randrange(len(active))]]
        others = [c for c in d.choices if c != sample[d.label]]
        child = dict(sample)
        child[d.label] = others[rng.randrange(len(others))]
        return self.complete(child, rng)

    def _fresh(self, sample: dict[str, Any], seen: set) -> bool:
        if not self.is_valid(sample) or not self._feasible(sample):  # predicted infeasible: mutate again
            return False
        return not self.options.dedup or self.seen_key(sample) not in seen
