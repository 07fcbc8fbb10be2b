"""`SampleStrategy`: the base of our own strategies (RL controller, regularized evolution, local
search) as Optuna samplers that propose a *whole sample* per trial.

Call order (what Optuna does, and what this class adds):

1. Optuna creates trial n; the objective calls ``space.suggest(trial)``, which asks for one
   parameter after another through `sample_independent`.
2. At the first ask for trial n, `SampleStrategy` reads the trials in storage (`History`: for
   each trial its sample, state and scalar score), calls the subclass's
   ``propose(history, number)`` once, stores the sample in the trial's system attribute
   ``nasforge:sample`` (so another process - a DDP rank, a second worker - sees the same one)
   and caches it by trial id. Every ask then returns that sample's value (for a ``Float``
   dimension, the grid value the strategy chose).
3. A parameter the sample does not cover (a space the strategy was not built for) falls back to
   Optuna's `RandomSampler` with the same seed.

A proposal must be a deterministic function of the seed, the trial number and the trials with
smaller numbers in storage; randomness comes from ``self.rng(number, salt)``, never from a
running generator. So a resumed sweep, or a second worker, proposes what an uninterrupted
one would. Strategies see samples and scores only; never networks, trainers or tables.

Scores: `Reward` (`strategy_options`, with `parse_options`; both re-exported here) turns a
trial's objective values into one number to maximize (the value, or its
negation for ``minimize``; multi-objective sweeps declare a reward: MnasNet's
``acc * (cost / target) ** w`` or a weighted sum). A PRUNED trial scores its last reported
intermediate value; a FAILED trial has no score (each strategy says what it does with it).
De-duplication: ``self.seen_key(sample)`` is the space's ``canonical_key`` when it has one
(NAS-Bench-201's isomorphic cells map to one key), else ``space.key``.

Constraints: a trial is *infeasible* when any value it reported with ``Trial.set_constraint``
(Optuna 5's ``FrozenTrial.constraints``; the trial runner sets one per bound of the sweep's
``constraints:``) is > 0. ``Record.feasible`` says so, and ``Record.ranked`` (a sample, a score
and feasible) is what every strategy of ours may use as a parent, an incumbent or a positively
rewarded sample; an infeasible sample stays "seen" (it is never proposed again). Once a few
trials have reported constraints, ``self.feasibility(history)`` (`additive.py`) predicts each
constraint from the decisions, so a strategy can pass over samples that look infeasible before
it spends a trial on them.
"""
from __future__ import annotations

import dataclasses
import json
import math
import random
import threading
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.trial import FrozenTrial, TrialState

from nasforge.search_spaces import SampleValidationError, Space

from nasforge.platform.optuna_adapter import set_system_attr, storage_of
from nasforge.platform.strategies.strategy_options import REWARDS, Reward, RewardOptions, parse_options

__all__ = ["FINISHED", "REWARDS", "Record", "Reward", "RewardOptions", "SAMPLE_ATTR", "SampleStrategy", "parse_options"]

SAMPLE_ATTR = "nasforge:sample"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


# ----------------------------------------------------------------------------- history
@dataclass(frozen=True)
class Record:
    """What a strategy may know of one trial: its sample, state and score."""

    number: int
    sample: dict[str, Any] | None  # None: the trial's params do not form a sample of the space
    state: TrialState
    score: float | None  # COMPLETE: reward; PRUNED: reward of the last intermediate value; else None
    key: str | None  # the de-duplication key of the sample
    extra: Mapping[str, Any]  # the trial's nasforge system attributes (e.g. rejected samples)
    feasible: bool = True  # no constraint value > 0 (Trial.set_constraint)
    constraints: Mapping[str, float] = dataclasses.field(default_factory=dict)  # FrozenTrial.constraints

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def ranked(self) -> bool:
        """May be a parent, an incumbent or a positively rewarded sample."""
        return self.sample is not None and self.score is not None and self.feasible


class SampleStrategy(BaseSampler):
    """Base class: subclasses implement ``propose(history, number) -> sample`` (see above).

    ``deterministic_from_storage``: every worker and every resume must get the sweep's own seed
    (proposals already differ per trial number, so workers never redraw each other's samples)."""

    deterministic_from_storage = True

    def __init__(self, space: Space, seed: int = 0, directions: Sequence[str] = ("maximize",),
                 reward: Reward | None = None):
        self.space = space
        self.seed = int(seed)
        self.directions = tuple(directions)
        self.reward = reward or Reward.create(None, self.directions)
        self.decisions = space.decisions()
        self._fallback = RandomSampler(seed=self.seed)
        self._samples: dict[tuple, dict[str, Any]] = {}  # (storage, study, trial id) -> sample
        self._records: dict[int, Record] = {}  # trial number -> finished record (never changes)
        self._study_key: Any = None
        self._canonical = getattr(space, "canonical_key", None)
        self._lock = threading.RLock()  # study.optimize(n_jobs > 1) shares one sampler between threads

    # -- for subclasses ------------------------------------------------------------------
    def propose(self, history: list[Record], number: int) -> dict[str, Any]:  # pragma: no cover
        """The sample for trial ``number``. May fill ``self.pending_attrs`` ({name: JSON value}),
        stored on the trial as ``nasforge:<name>`` and seen again as ``Record.extra``."""
        raise NotImplementedError

    def rng(self, number: int, salt: Any = 0) -> random.Random:
        """A generator that depends on the seed, the trial number and ``salt`` only."""
        return random.Random(f"{type(self).__name__}:{self.seed}:{number}:{salt}")

    def seen_key(self, sample: Mapping[str, Any]) -> str:
        return self._canonical(sample) if self._canonical is not None else self.space.key(sample)

    def is_valid(self, sample: Mapping[str, Any]) -> bool:
        try:
            self.space.validate(sample)
            return True
        except SampleValidationError:
            return False

    def complete(self, sample: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
        """Drop values of decisions that are inactive and draw the missing active ones."""
        out: dict[str, Any] = {}
        for d in self.decisions:
            if d.dim.is_active(out):
                out[d.label] = sample[d.label] if d.label in sample else d.choices[rng.randrange(d.n)]
        return out

    def feasibility(self, history: list[Record]):
        """A predicate ``sample -> bool``: False when an additive model of the constraint values
        reported so far predicts a violation (always True before ``MIN_CONSTRAINED`` trials)."""
        from nasforge.platform.strategies.additive import feasibility_predicate

        return feasibility_predicate(history)

    def set_trial_attr(self, study, trial: FrozenTrial, name: str, value: Any) -> None:
        # private: a sampler sees a FrozenTrial, and Optuna 5 removed the public set_system_attr
        set_system_attr(storage_of(study), trial, f"nasforge:{name}", value)

    # -- Optuna's interface ----------------------------------------------------------------
    def infer_relative_search_space(self, study, trial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study, trial, search_space) -> dict[str, Any]:
        return {}

    def reseed_rng(self) -> None:  # proposals never use a running generator
        self._fallback.reseed_rng()

    def sample_independent(self, study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        sample = self._sample_for(study, trial)
        if param_name not in sample:
            return self._fallback.sample_independent(study, trial, param_name, param_distribution)
        value = sample[param_name]
        if isinstance(param_distribution, CategoricalDistribution):
            if value in param_distribution.choices:
                return value
        elif isinstance(param_distribution, (FloatDistribution, IntDistribution)):
            if isinstance(value, (int, float)) and param_distribution.low <= value <= param_distribution.high:
                return int(value) if isinstance(param_distribution, IntDistribution) else float(value)
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def _sample_for(self, study, trial: FrozenTrial) -> dict[str, Any]:
        with self._lock:
            return self._sample_for_locked(study, trial)

    def _sample_for_locked(self, study, trial: FrozenTrial) -> dict[str, Any]:
        cache_key = (id(storage_of(study)), study.study_name, trial.number)
        cached = self._samples.get(cache_key)
        if cached is not None:
            return cached
        stored = trial.system_attrs.get(SAMPLE_ATTR)
        if stored is None:
            history = self.history(study, trial.number)
            self.pending_attrs = {}
            sample = dict(self.propose(history, trial.number))
            set_system_attr(storage_of(study), trial, SAMPLE_ATTR, sample)
            for name, value in self.pending_attrs.items():  # e.g. the controller's rejected samples
                if value is not None and value != [] and value != {}:  # 0 is a value (a parent trial)
                    self.set_trial_attr(study, trial, name, value)
        else:
            sample = dict(stored)
        if len(self._samples) > 10000:
            self._samples.clear()
        self._samples[cache_key] = sample
        return sample

    # -- reading storage -----------------------------------------------------------------
    def history(self, study, before: int) -> list[Record]:
        """Records of the study's trials numbered below ``before``, by number. Finished records are
        cached (a finished trial never changes); running ones are re-read every time."""
        study_key = (id(storage_of(study)), study.study_name)
        if study_key != self._study_key:
            self._study_key = study_key
            self._records = {}
            self.reset()
        out: list[Record] = []
        for t in study.get_trials(deepcopy=False):
            if t.number >= before:
                continue
            rec = self._records.get(t.number)
            if rec is None:
                rec = self._record(t)
                if rec.finished:
                    self._records[t.number] = rec
            out.append(rec)
        out.sort(key=lambda r: r.number)
        return out

    def reset(self) -> None:
        """Forget state derived from another study (subclasses extend)."""

    def _record(self, t: FrozenTrial) -> Record:
        sample = t.system_attrs.get(SAMPLE_ATTR)
        if sample is None:
            sample = self._sample_from_params(t.params)
        key = None
        if sample is not None:
            try:
                key = self.seen_key(sample)
            except SampleValidationError:
                key = json.dumps(sample, sort_keys=True)
        score = None
        if t.state == TrialState.COMPLETE and t.values is not None:
            score = self.reward(t.values)
        elif t.state == TrialState.PRUNED and t.intermediate_values and len(self.directions) == 1:
            last = t.intermediate_values[max(t.intermediate_values)]
            score = self.reward([last]) if math.isfinite(last) else None
        if score is not None and not math.isfinite(score):
            score = None
        extra = {k[len("nasforge:"):]: v for k, v in t.system_attrs.items()
                 if k.startswith("nasforge:") and k != SAMPLE_ATTR}
        constraints = t.constraints
        feasible = all(v <= 0.0 for v in constraints.values())
        return Record(t.number, dict(sample) if sample else None, t.state, score, key, extra, feasible,
                      constraints)

    def _sample_from_params(self, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """A sample from another strategy's trial: each value snapped to the decision's grid."""
        sample: dict[str, Any] = {}
        for d in self.decisions:
            if not d.dim.is_active(sample):
                continue
            if d.label not in params:
                return None
            v = params[d.label]
            if v not in d.choices:
                try:
                    v = min(d.choices, key=lambda c: abs(float(c) - float(v)))
                except (TypeError, ValueError):
                    return None
            sample[d.label] = v
        return sample

    def index(self, decision_pos: int, value: Any) -> int:
        return self.decisions[decision_pos].choices.index(value)
