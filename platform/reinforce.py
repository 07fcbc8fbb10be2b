"""REINFORCE's small pure pieces, shared by the RL controller (a strategy: samples and scores)
and the BlockDrop policy trainer (the `adaptive` task, ``tasks/adaptive.py``: per-input keep/drop
decisions).

* `reward_transform(kind, seen)` - what a raw reward becomes before the baseline is taken:
  ``rank`` (its quantile among every reward seen so far), ``zscore`` (standardised by the
  rewards seen), ``none``;
* `EmaBaseline` - the exponential moving average of transformed rewards; an update's advantages
  use the baseline from before that update;
* `policy_gradient_loss` - ``-mean(w * A * log p) - entropy_weight * mean(H)``.

Only the standard library (torch arrives as the caller's tensors): no Lightning, no Optuna, no
models, no nasforge. It sits at the bottom of `platform/`, beside `errors` and `options`, because a
strategy and a task both use it and neither room may import the other: importing nothing of
ours, it adds no arrow between the rooms (pyproject.toml's import-linter contracts).
"""
from __future__ import annotations

import bisect
import math
from typing import Callable, Sequence

TRANSFORMS = ("rank", "zscore", "none")


def reward_transform(kind: str, seen: Sequence[float]) -> Callable[[float], float]:
    """The transform ``kind`` given every real reward seen so far."""
    if kind not in TRANSFORMS:
        raise ValueError(f"reward_transform must be one of {', '.join(TRANSFORMS)}; got {kind!r}")
    if kind == "rank" and seen:
        ordered = sorted(seen)
        n = len(ordered)
        return lambda r: ((bisect.bisect_left(ordered, r) + bisect.bisect_right(ordered, r))
                          / (2.0 * n))
    if kind == "zscore" and len(seen) > 1:
        mean = sum(seen) / len(seen)
        std = math.sqrt(sum((r - mean) ** 2 for r in seen) / (len(seen) - 1))
        return lambda r: (r - mean) / std if std > 0 else 0.0
    return lambda r: r


class EmaBaseline:
    """``b <- decay * b + (1 - decay) * r`` for each reward in order; starts at the first
    batch's mean. `update(rewards)` returns the baseline from before the update."""

    def __init__(self, decay: float):
        if not 0 <= decay < 1:
            raise ValueError(f"baseline_decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.value: float | None = None

    def update(self, rewards: Sequence[float]) -> float:
        if self.value is None:
            self.value = sum(rewards) / len(rewards)
        before = self.value
        for r in rewards:
            self.value = self.decay * self.value + (1 - self.decay) * r
        return before


def policy_gradient_loss(logp, advantage, entropy, entropy_weight: float, weights=None):
    """REINFORCE's loss over a batch of episodes (tensors of shape (B,)); ``weights`` are
    optional importance weights (truncated, detached)."""
    score = advantage * logp if weights is None else weights * advantage * logp
    return -score.mean() - entropy_weight * entropy.mean()
