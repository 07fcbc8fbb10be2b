"""Replicated sweeps: one sweep file over several seeds and strategies, each replicate an ordinary sweep.

``nasforge sweep run FILE --seeds 0-4 --set strategy.name=tpe,local_search`` runs the cartesian
product of strategies and seeds. Each replicate is a sweep of its own (status, best, promote and
report work on it as on any other), named from the file's name: ``NAME-s0`` for seeds alone,
``NAME-tpe`` for strategies alone, ``NAME-tpe-s0`` for both. What ties them together is recorded in
each replicate's study (user attr ``nasforge_group``: the group, its arm, the seed, the strategy),
so `nasforge compare NAME` finds the replicates with nothing but the storages; in W&B, the runs of
an arm's replicates share one group (``tracking.group``), each replicate's seed and strategy in
their config. Re-running the same
command resumes: a replicate whose budget is met finishes at once.
"""
from __future__ import annotations

from dataclasses import dataclass

from nasforge.platform.errors import ConfigError

GROUP_ATTR = "nasforge_group"


@dataclass(frozen=True)
class Replicate:
    name: str  # the replicate's sweep name
    group: str  # the sweep file's name: the whole family
    arm: str  # what is compared: NAME-<strategy> (or NAME when one strategy)
    seed: int | None
    strategy: str | None

    def overrides(self) -> dict:
        out: dict = {"name": self.name, "tracking.group": self.arm}  # W&B groups an arm's replicates
        if self.seed is not None:
            out["seed"] = self.seed
        if self.strategy is not None:
            out["strategy.name"] = self.strategy
        return out

    def record(self) -> dict:
        return {"group": self.group, "arm": self.arm, "seed": self.seed, "strategy": self.strategy}


def parse_seeds(text: str) -> list[int]:
    """``0-4`` -> [0, 1, 2, 3, 4]; ``0,2,7`` -> [0, 2, 7]; ranges and lists mix (``0-2,9``)."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            seeds += list(range(int(lo), int(hi) + 1)) if sep else [int(part)]
        except ValueError:
            raise ConfigError(f"--seeds {text!r}: expected seeds such as 0-4 or 0,2,7") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ConfigError(f"--seeds {text!r}: expected distinct non-negative seeds such as 0-4 or 0,2,7")
    return seeds


def split_strategies(overrides: dict) -> list[str] | None:
    """The strategies of ``--set strategy.name=a,b`` (removed from ``overrides``), or None for one."""
    value = overrides.get("strategy.name")
    if not isinstance(value, str) or "," not in value:
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    if len(set(names)) != len(names):
        raise ConfigError(f"--set strategy.name={value}: a strategy is named twice")
    del overrides["strategy.name"]
    return names


def plan(group: str, seeds: list[int] | None, strategies: list[str] | None) -> list[Replicate]:
    """The replicates of ``group``: strategies x seeds, strategy-major (all seeds of one first)."""
    out = []
    for strategy in strategies or [None]:
        arm = f"{group}-{strategy}" if strategy else group
        for seed in seeds or [None]:
            name = arm + (f"-s{seed}" if seed is not None else "")
            out.append(Replicate(name, group, arm, seed, strategy))
    return out


def record_replicate(study, rep: Replicate) -> None:
    """Write the replicate's place in its group into its study (the record of truth)."""
    if study.user_attrs.get(GROUP_ATTR) != rep.record():
        study.set_user_attr(GROUP_ATTR, rep.record())
