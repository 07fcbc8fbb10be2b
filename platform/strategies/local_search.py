"""Local search as an Optuna sampler (White, Nolen & Savani, "Local search is state of the art
for NAS benchmarks", UAI 2021).

A neighbour of a sample differs from it in ONE active decision of ``space.decisions()`` (a
``Float`` dimension moves on its grid; decisions that become active are drawn from a generator
seeded by the sample, ones that become inactive are dropped). The search:

1. draws ``init`` random samples (``restart_init`` for every climb after the first) and takes
   the best as the *centre* of a climb;
2. evaluates the centre's neighbours one at a time (first improvement): as soon as one scores
   better than the centre it becomes the centre. A neighbour an earlier climb already evaluated
   costs nothing: if it is better, the climb moves there for free. Which unevaluated neighbour
   comes first (``order``): ``local`` (default), the one a locally weighted model predicts best:
   a ridge regression of the quantile of every trial it reads on its one-hot decision values and
   the space's structural features (``features``; `Space.features`, for `nb201` the path
   encoding of White et al. 2020: which op sequences lead from the input to the output), each
   trial weighted by ``exp(-d / locality)`` with d the number of decisions in which it differs
   from the centre (scale-free, learnt from this study alone; near the top of a space the moves
   that still improve are the ones the trials around the centre show, which a global fit
   averages away); ``additive``, the same fit with every trial weighted alike; or ``random``
   (the paper's). Which trials it reads (``scope``): in the first climb all; in a later one
   (``climb``, default) its own and the samples that started every climb, not the moves of
   earlier climbs, which would steer it back to the optimum they proved (``all``: every trial);
3. when every neighbour of the centre has been evaluated, the centre is a local optimum, and
   ``restart`` says what comes next: ``random`` (default, the paper's): a fresh climb from the
   best of ``init`` new random samples; ``kick`` (iterated local search): a climb from the best
   sample so far with ``kick`` decisions changed at random; ``next_best`` (best-first): the best
   evaluated sample that still has unevaluated neighbours becomes the centre.

De-duplication: a neighbour whose key (NAS-Bench-201: its canonical, isomorphism-free cell,
computed from the space alone) was already proposed in this study is never proposed again;
invalid samples (``space.validate`` raises) are never proposed.

State lives in storage: each trial stores the index of its climb (``nasforge:restart``), and the
centre is recomputed from the trials with smaller numbers (samples, scores, feasibility); random
choices come from ``self.rng(number)``. A resumed sweep, or a second worker, therefore proposes
what an uninterrupted one would (running trials count as proposed, so workers do not repeat each
other; they join the ranking when they finish). An in-process cache remembers which centres are
exhausted (monotone in the trial number), so a suggestion stays cheap after thousands of trials.

Outcomes: COMPLETE trials rank by their reward (``Reward``: the objective, or a declared
multi-objective reward); PRUNED ones by the reward of their last reported value; FAILED and
infeasible trials (a ``Trial.set_constraint`` value > 0) are never a centre or a climb's
start (nor a reason to move), and their samples are not proposed again; once trials have
reported constraints, neighbours and random samples that an additive model of the constraint
values predicts infeasible are passed over (`SampleStrategy.feasibility`).

Defaults (``init`` = 10, ``restart_init`` = 5, ``order`` = local with ``locality`` = 0.7,
``ridge`` = 0.03, ``scope`` = climb and ``features`` on, ``restart`` = random) were chosen on
NAS-Bench-201 seeds 1000-4999, apart from the benchmark's reported seeds (benchmarks/README.md);
they are counts and a rank-based model, not scores of any table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nasforge.platform.strategies.additive import hashable, fit_ridge
from nasforge.platform.strategies.base import Record, RewardOptions, SampleStrategy, parse_options
from nasforge.platform.strategies.proxy_prior import ProxyPrior, ProxyPriorOptions

RESTARTS = ("next_best", "random", "kick")
ORDERS = ("local", "additive", "random")
SCOPES = ("climb", "all")


@dataclass
class LocalSearchOptions(ProxyPriorOptions, RewardOptions):
    init: int = 10  # random samples before the first climb
    restart_init: int = 5  # random samples before each later climb (restart: random)
    restart: str = "random"  # at a local optimum: random (the paper), kick (from the best) or next_best
    kick: int = 3  # restart: kick: decisions changed in the best sample to start the next climb
    order: str = "local"  # which neighbour first: local / additive (a ridge model's best) or random (the paper)
    locality: float = 0.7  # order: local: a trial d decisions away from the centre weighs exp(-d / locality)
    ridge: float = 0.03  # the model's L2 penalty
    scope: str = "climb"  # the model's trials in a later climb: its own and every climb's start (climb), or all
    features: bool = True  # the model also reads the space's structural features (`Space.features`)
    max_tries: int = 50  # random draws for an unseen valid sample before a duplicate is accepted

    def check(self) -> None:
        if self.init < 1 or self.restart_init < 1:
            raise ValueError(f"init and restart_init must be >= 1, got {self.init} and {self.restart_init}")
        if self.restart not in RESTARTS:
            raise ValueError(f"restart must be one of {', '.join(RESTARTS)}; got {self.restart!r}")
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}; got {self.order!r}")
        if self.scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}; got {self.scope!r}")
        if self.kick < 1:
            raise ValueError(f"kick must be >= 1, got {self.kick}")
        if not self.locality > 0:
            raise ValueError(f"locality must be > 0, got {self.locality}")
        if not self.ridge > 0:
            raise ValueError(f"ridge must be > 0, got {self.ridge}")
        if self.max_tries < 1:
            raise ValueError(f"max_tries must be >= 1, got {self.max_tries}")


class LocalSearchSampler(SampleStrategy):
    """``LocalSearchSampler(space, seed, directions, **options)``; options as `LocalSearchOptions`."""

    def __init__(self, space, seed: int = 0, directions=("maximize",), **options: Any):
        self.options = parse_options(LocalSearchOptions, options, "strategy.options")
        super().__init__(space, seed, directions, self.options.make_reward(directions))
        self._exhausted: dict[str, int] = {}  # centre key -> a trial number by which all its neighbours were seen
        self._codes: dict[int, tuple[int, ...]] = {}  # trial number -> `encode` of its sample
        self._features: dict[int, dict[str, float]] = {}  # trial number -> `Space.features` of its sample
        self._index = [{hashable(c): i for i, c in enumerate(d.choices)} for d in self.decisions]
        self._offsets = [0]  # first one-hot column of each decision (and the total)
        for d in self.decisions:
            self._offsets.append(self._offsets[-1] + d.n)
        self.prior = ProxyPrior(space, self.options, seed)

    def reset(self) -> None:
        self._exhausted, self._codes, self._features = {}, {}, {}

    def propose(self, history: list[Record], number: int) -> dict[str, Any]:
        o = self.options
        seen = {r.key for r in history if r.key is not None}
        restart = max((int(r.extra.get("restart", 0)) for r in history), default=0)
        rng = self.rng(number)
        best = max((r for r in history if r.ranked), key=lambda r: (r.score, -r.number), default=None)
        segment = [r for r in history if int(r.extra.get("restart", 0)) == restart]
        known = {r.key: r for r in history if r.ranked}
        feasible = self.feasibility(history)
        warm = self.prior.proposal(number, seen, self.seen_key)
        if warm is not None:  # the first climb starts from the best proxy-scored samples
            self.pending_attrs = {"restart": 0}
            return warm
        while True:
            kicked = self.kicked(restart, best)
            if len(segment) < self.start_size(restart, best):  # a climb's start
                break
            ranked = sorted((r for r in segment if r.ranked), key=lambda r: (-r.score, r.number))
            if not ranked and any(not r.finished for r in segment):
                break  # the start is still running: sample at random meanwhile
            centres = ranked if o.restart == "next_best" or not ranked else [self.climb(ranked[0], known)]
            for centre in centres:
                if self._exhausted.get(centre.key, number + 1) <= number:
                    continue  # seen only grows with the trial number: still exhausted
                fresh = self.unseen_neighbours(centre.sample, seen)
                if not fresh:
                    self._exhausted[centre.key] = number
                fresh = [n for n in fresh if feasible(n)]  # predicted infeasible: as if evaluated
                if fresh:
                    self.pending_attrs = {"restart": restart}
                    return self.pick(centre.sample, fresh, self.model_trials(history, restart, best), rng)
            if o.restart == "next_best" and ranked:
                break  # every neighbour of everything ranked is seen: random samples
            restart += 1  # a local optimum (or nothing ranked): restart
            segment = []
        self.pending_attrs = {"restart": restart}
        if kicked and not segment:
            return self.kick(best.sample, seen, rng, feasible)
        return self.random_unseen(seen, rng, feasible)

    def kicked(self, restart: int, best: Record | None) -> bool:
        """Climb ``restart`` starts from a kick of the best sample (``restart: kick``)."""
        return self.options.restart == "kick" and restart > 0 and best is not None

    def start_size(self, restart: int, best: Record | None) -> int:
        """How many samples start climb ``restart`` (random ones; a kick's one)."""
        o = self.options
        first = len(self.prior.samples) or o.init  # a warm start replaces the random first look
        return 1 if self.kicked(restart, best) else first if restart == 0 else o.restart_init

    def model_trials(self, history: list[Record], restart: int, best: Record | None) -> list[Record]:
        """The ranked trials the neighbour-order model is fitted to in climb ``restart``. ``scope:
        all``: every one. ``scope: climb`` (default): in a later climb, its own trials and the
        samples that started every climb (random, so an unbiased view of the whole space), not
        the moves of earlier climbs: fitted to those, the model steers the new climb back to the
        optimum an earlier one already proved (measured in benchmarks/README.md)."""
        if self.options.scope == "all" or restart == 0:
            return [r for r in history if r.ranked]
        counts: dict[int, int] = {}
        out = []
        for r in history:  # by number, so the first samples of each climb are its start
            k = int(r.extra.get("restart", 0))
            counts[k] = counts.get(k, 0) + 1
            if r.ranked and (k == restart or counts[k] <= self.start_size(k, best)):
                out.append(r)
        return out

    def climb(self, start: Record, known: dict[str, Record]) -> Record:
        """From ``start``, move to the best already evaluated neighbour while it is better (free
        moves: a climb may cross samples an earlier climb evaluated)."""
        centre = start
        while True:
            keys = {self.seen_key(n) for n in self.neighbours(centre.sample)}
            better = [known[k] for k in keys if k in known and known[k].score > centre.score]
            if not better:
                return centre
            centre = max(better, key=lambda r: (r.score, -r.number))

    def kick(self, sample: dict[str, Any], seen: set, rng, feasible) -> dict[str, Any]:
        """An unseen valid sample ``kick`` decisions away from ``sample`` (iterated local search's
        perturbation), else a random unseen one."""
        for _ in range(self.options.max_tries):
            out = dict(sample)
            active = [d for d in self.decisions if d.label in out and d.n > 1]
            for d in rng.sample(active, min(self.options.kick, len(active))):
                if d.label in out:  # an earlier change may have made it inactive
                    out[d.label] = rng.choice([c for c in d.choices if c != out[d.label]])
                    out = self.complete(out, rng)
            if self.is_valid(out) and self.seen_key(out) not in seen and feasible(out):
                return out
        return self.random_unseen(seen, rng, feasible)

    def pick(self, centre: dict[str, Any], fresh: list[dict[str, Any]], trials: list[Record], rng) -> dict[str, Any]:
        """The neighbour to evaluate next: at random (``order: random``, the paper), or the one a
        model of the ranked ``trials`` predicts best; ties at random. The model: ridge regression
        of each trial's quantile among ``trials`` (scale-free, robust to broken samples' scores)
        on one-hot decision values and (``features``) the space's structural features;
        ``order: local`` weighs a trial d decisions away from the centre by
        ``exp(-d / locality)``, ``order: additive`` weighs all alike."""
        o = self.options
        tie = [rng.random() for _ in fresh]
        ranked = sorted(trials, key=lambda r: r.score)
        if o.order == "random" or len(ranked) < 2:
            return fresh[tie.index(max(tie))]
        import numpy as np

        codes = np.array([self.encode(r.sample, r.number) for r in ranked])  # (n, decisions)
        fresh_codes = np.array([self.encode(n) for n in fresh])  # (f, decisions)
        near = None
        if o.order == "local":  # d = the number of decisions in which a trial differs from the centre
            near = np.exp(-(codes != np.array(self.encode(centre))).sum(1) / o.locality)
        X, X_fresh = self.one_hot(codes), self.one_hot(fresh_codes)
        if o.features:
            F, F_fresh = self.feature_matrices([self.features(r.sample, r.number) for r in ranked],
                                               [self.features(n) for n in fresh])
            X, X_fresh = np.hstack([X, F]), np.hstack([X_fresh, F_fresh])
        w, _ = fit_ridge(X, [q / (len(ranked) - 1) for q in range(len(ranked))], o.ridge, near)
        predicted = X_fresh @ w  # (f,)
        best = max(range(len(fresh)), key=lambda i: (predicted[i], tie[i]))
        return fresh[best]

    def encode(self, sample: dict[str, Any], number: int | None = None) -> tuple[int, ...]:
        """The index of each decision's value in its choices (-1: inactive or off the grid);
        cached by trial number (a ranked trial's sample never changes)."""
        code = self._codes.get(number) if number is not None else None
        if code is None:
            code = tuple(self._index[j].get(hashable(sample[d.label]), -1) if d.label in sample else -1
                         for j, d in enumerate(self.decisions))
            if number is not None:
                self._codes[number] = code
        return code

    def features(self, sample: dict[str, Any], number: int | None = None) -> dict[str, float]:
        """``Space.features`` of a sample, cached by trial number like `encode`."""
        out = self._features.get(number) if number is not None else None
        if out is None:
            out = {**self.space.features(sample), **self.prior.feature(sample)}
            if number is not None:
                self._features[number] = out
        return out

    @staticmethod
    def feature_matrices(rows: list[dict[str, float]], fresh: list[dict[str, float]]):
        """(n, v) and (f, v) matrices over the v feature names of ``rows`` (sorted: the same
        columns in every worker); a name only a fresh sample has would get weight 0 anyway."""
        import numpy as np

        names = {name: j for j, name in enumerate(sorted({k for row in rows for k in row}))}
        out = []
        for part in (rows, fresh):
            M = np.zeros((len(part), len(names)))
            for i, row in enumerate(part):
                for k, v in row.items():
                    if k in names:
                        M[i, names[k]] = v
            out.append(M)
        return out

    def one_hot(self, codes):
        """(n, decisions) codes -> (n, sum of choices) one-hot matrix (inactive: all 0)."""
        import numpy as np

        X = np.zeros((len(codes), self._offsets[-1]))
        rows, cols = np.nonzero(codes >= 0)
        X[rows, np.asarray(self._offsets[:-1])[cols] + codes[rows, cols]] = 1.0
        return X

    def neighbours(self, sample: dict[str, Any]) -> list[dict[str, Any]]:
        """Every sample that differs from ``sample`` in one active decision, in decision order.
        Decisions that become active are drawn from a generator seeded by the sample alone, so the
        neighbourhood is a function of the sample (and "all neighbours seen" stays true)."""
        rng = self.rng(-1, self.space.key(sample))
        out = []
        for d in self.decisions:
            if d.label not in sample or d.n < 2:
                continue
            for c in d.choices:
                if c != sample[d.label]:
                    out.append(self.complete({**sample, d.label: c}, rng))
        return out

    def unseen_neighbours(self, sample: dict[str, Any], seen: set) -> list[dict[str, Any]]:
        """The valid neighbours whose de-duplication key is not in ``seen``, one per key."""
        out, keys = [], {self.seen_key(sample)} | seen
        for n in self.neighbours(sample):
            if not self.is_valid(n):
                continue
            k = self.seen_key(n)
            if k not in keys:
                keys.add(k)
                out.append(n)
        return out

    def random_unseen(self, seen: set, rng, feasible) -> dict[str, Any]:
        """A random valid sample, unseen and predicted feasible if one turns up in ``max_tries``
        draws (else unseen, else the last draw)."""
        fallback, sample = None, {}
        for _ in range(self.options.max_tries):
            sample = self.space.sample(rng)
            if self.is_valid(sample) and self.seen_key(sample) not in seen:
                if feasible(sample):
                    return sample
                fallback = fallback or sample
        return fallback or sample

