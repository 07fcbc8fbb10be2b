"""A strategy's options and its reward: ``strategy.options`` parsed onto a dataclass (unknown
options and wrong types are one ConfigError naming them), and `Reward`, the one number to
maximize that a strategy makes of a trial's objective values. Re-exported by `base`."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from nasforge.platform.errors import ConfigError
from nasforge.platform.options import PYTHON, coerce


def parse_options(cls: type, options: Mapping[str, Any] | None, where: str) -> Any:
    """Build the options dataclass ``cls`` from a sweep file's ``strategy.options``; an unknown
    option or a value of the wrong type raises ConfigError naming it and the valid ones."""
    options = dict(options or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in options:
        if key not in fields:
            raise ConfigError(f"{where}: unknown option {key!r}; valid options: {', '.join(fields)}")
    kwargs = {key: coerce(value, hints[key], f"{where}.{key}", PYTHON) for key, value in options.items()}
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if check is not None:
        try:
            check()
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from None
    return obj


REWARDS = ("objective", "mnasnet", "weighted")


@dataclass
class Reward:
    """One number to maximize from a trial's objective values.

    * ``objective`` (single-objective sweeps): the value, negated when minimized;
    * ``mnasnet`` (Tan et al., CVPR 2019): ``v0 * (v1 / target) ** w`` with v0 the quality
      objective (accuracy) and v1 the cost (latency, FLOPs, params); w = -0.07 by default;
    * ``weighted``: ``sum(weights[i] * sign_i * v_i)``, sign_i = -1 for minimized objectives.
    """

    kind: str
    directions: tuple[str, ...]
    target: float | None = None
    exponent: float = -0.07
    weights: tuple[float, ...] | None = None

    @classmethod
    def create(cls, kind: str | None, directions: Sequence[str], target=None, exponent=-0.07, weights=None,
               where: str = "strategy.options") -> "Reward":
        directions = tuple(directions)
        kind = kind or ("objective" if len(directions) == 1 else None)
        if kind is None:
            raise ConfigError(f"{where}.reward: a multi-objective sweep must declare its reward "
                              f"(one of {', '.join(REWARDS[1:])}), e.g. reward: mnasnet, reward_target: 3.0e6")
        if kind not in REWARDS:
            raise ConfigError(f"{where}.reward: unknown reward {kind!r}; valid: {', '.join(REWARDS)}")
        if kind == "objective" and len(directions) != 1:
            raise ConfigError(f"{where}.reward: 'objective' needs one objective; this sweep has "
                              f"{len(directions)}: use mnasnet or weighted")
        if kind == "mnasnet":
            if len(directions) != 2:
                raise ConfigError(f"{where}.reward: mnasnet needs two objectives (quality, cost), "
                                  f"got {len(directions)}")
            if target is None or target <= 0:
                raise ConfigError(f"{where}.reward_target: mnasnet needs a positive cost target")
        if kind == "weighted":
            if weights is None or len(weights) != len(directions):
                raise ConfigError(f"{where}.reward_weights: give one weight per objective ({len(directions)})")
            weights = tuple(float(w) for w in weights)
        return cls(kind, directions, target, float(exponent), weights)

    def __call__(self, values: Sequence[float]) -> float:
        if self.kind == "objective":
            v = float(values[0])
            return v if self.directions[0] == "maximize" else -v
        if self.kind == "mnasnet":
            quality, cost = float(values[0]), float(values[1])
            quality = quality if self.directions[0] == "maximize" else -quality
            return quality * (max(cost, 1e-12) / self.target) ** self.exponent
        return sum(w * (v if d == "maximize" else -v) for w, v, d in zip(self.weights, values, self.directions))


@dataclass
class RewardOptions:
    """The reward options every strategy of ours takes (see `Reward`); strategies' option
    dataclasses extend this one."""

    reward: str | None = None  # multi-objective: mnasnet or weighted
    reward_target: float | None = None
    reward_exponent: float = -0.07
    reward_weights: list | None = None

    def make_reward(self, directions: Sequence[str]) -> Reward:
        return Reward.create(self.reward, directions, self.reward_target, self.reward_exponent,
                             self.reward_weights)
