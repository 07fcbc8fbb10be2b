"""A comparison of sweeps: which sweeps, grouped how, compared on what, and the numbers.

`open_sweeps(names, root, storage)` turns the command line's names into sweeps read back with
`run_folder.open_run` (no training data, no user code; each from its own storage, so journal files
and PostgreSQL mix): a sweep's name, a glob over the sweeps under ``root`` (``nb201-tpe-s*``), or
a replicate group's name (`engine.replicates`: the sweeps whose study records that group).
`compare(runs, threshold)` groups them by arm (a replicate's recorded arm, else its
``tracking.group``, else the sweep itself)
and computes, for every objective the sweeps share (same metric, same direction), each group's
final best (mean +/- standard error over replicates), trials to a threshold, failed/pruned counts
and compute time, and every pair of groups' difference (`compare_stats`). What the sweeps do not
share (objectives, spaces, parameters) is said in one line each. The result is plain JSON-able
data; `compare_page` draws it and the CLI prints it.
"""
from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from typing import Any

from nasforge.platform.engine.replicates import GROUP_ATTR
from nasforge.platform.engine.storage import CONFIG_FILE, DEFAULT_ROOT
from nasforge.platform.errors import UsageError
from nasforge.platform.views.compare_stats import band, best_so_far, difference, mean_se, trials_to


def _sweeps_under(root: str) -> list[str]:
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        return []
    return sorted(d for d in os.listdir(root) if os.path.exists(os.path.join(root, d, CONFIG_FILE)))


def open_sweeps(names: list[str], root: str = DEFAULT_ROOT, storage: str | None = None) -> list:
    """The sweeps named by ``names`` (names, globs or group names), each once, in order."""
    from nasforge.platform.engine.run_folder import open_run

    known = _sweeps_under(root)
    runs: dict[str, Any] = {}
    stores: dict[str, Any] = {}  # sweeps in one storage share it
    for name in names:
        if name in known:
            matched = [name]
        elif any(c in name for c in "*?["):
            matched = fnmatch.filter(known, name)
        else:  # a group: its replicates are named <group>-..., and their studies say so
            matched = [n for n in known if n.startswith(name + "-")]
        found = []
        for n in matched:
            run = runs.get(n) or open_run(n, root, storage, stores)
            if n == name or any(c in name for c in "*?[") or \
                    (run.study.user_attrs.get(GROUP_ATTR) or {}).get("group") == name:
                found.append(run)
        if not found:
            raise UsageError(f"no sweep named {name!r} (nor a replicate group) under {os.path.abspath(root)}"
                             + (f"; sweeps there: {', '.join(known)}" if known else ""))
        for run in found:
            runs.setdefault(run.name, run)
    return list(runs.values())


@dataclass
class Member:
    """One sweep in a comparison, reduced to what the comparison needs."""
    name: str
    arm: str
    seed: int
    run: Any
    trials: list = field(default_factory=list)  # every trial, by number

    @property
    def objectives(self) -> dict[str, str]:
        return {o.metric: o.direction for o in self.run.cfg.objectives}

    def values(self, metric: str) -> list[float | None]:
        """The metric of each trial in order (None for a trial without a value)."""
        i = [o.metric for o in self.run.cfg.objectives].index(metric)
        return [t.values[i] if t.state.name == "COMPLETE" and t.values is not None else None for t in self.trials]

    def elapsed(self) -> list[float | None]:
        """Seconds from the sweep's first trial start to each trial's end."""
        starts = [t.datetime_start for t in self.trials if t.datetime_start]
        t0 = min(starts) if starts else None
        return [(t.datetime_complete - t0).total_seconds() if t0 and t.datetime_complete else None
                for t in self.trials]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.trials:
            out[t.state.name] = out.get(t.state.name, 0) + 1
        return out

    def compute_seconds(self) -> float:
        return sum((t.datetime_complete - t.datetime_start).total_seconds() for t in self.trials
                   if t.datetime_complete and t.datetime_start)


def members(runs: list) -> list[Member]:
    out = []
    for run in runs:
        rec = run.study.user_attrs.get(GROUP_ATTR) or {}
        seed = rec.get("seed") if rec.get("seed") is not None else run.cfg.seed
        arm = rec.get("arm") or run.cfg.tracking.group or run.name  # a replicate cut off before it was recorded
        out.append(Member(run.name, arm, seed, run, run.study.get_trials(deepcopy=False)))
    return out


def groups_of(ms: list[Member]) -> dict[str, list[Member]]:
    out: dict[str, list[Member]] = {}
    for m in ms:
        out.setdefault(m.arm, []).append(m)
    return out


def _space(m: Member) -> str:
    return "+".join(p.name for p in m.run.cfg.space)


def unshared(ms: list[Member]) -> tuple[list[str], list[str]]:
    """(objectives every sweep shares, one line per thing some sweeps do not share)."""
    notes = []
    shared = [k for k, d in ms[0].objectives.items() if all(m.objectives.get(k) == d for m in ms)]
    every = {k: d for m in ms for k, d in m.objectives.items()}
    for k, d in every.items():
        if k not in shared:
            have = [m.name for m in ms if m.objectives.get(k) == d]
            notes.append(f"objective {k} ({d}) is not shared: only {', '.join(have)} "
                         f"{'has' if len(have) == 1 else 'have'} it; not compared")
    spaces = {}
    for m in ms:
        spaces.setdefault(_space(m), []).append(m.name)
    if len(spaces) > 1:
        notes.append("spaces differ: " + "; ".join(f"{', '.join(v)} search {k}" for k, v in spaces.items())
                     + "; compared on the objectives, importances per group")
    params = [set(p for t in m.trials for p in t.params) for m in ms]
    only = set().union(*params) - set.intersection(*params) if params else set()
    if only and len(spaces) == 1:
        notes.append(f"parameters not searched by every sweep: {', '.join(sorted(only))}")
    return shared, notes


def _group_numbers(metric: str, maximize: bool, gm: list[Member], threshold: float) -> dict:
    finals = {}
    reach = []
    for m in gm:
        curve = best_so_far(m.values(metric), maximize)
        if curve and curve[-1] is not None:
            finals[m.name] = curve[-1]
        reach.append(trials_to(threshold, curve, maximize))
    mu, se = mean_se(list(finals.values()))
    counts = [m.counts() for m in gm]
    reached = [r for r in reach if r is not None]
    return {
        "sweeps": [m.name for m in gm], "seeds": [m.seed for m in gm], "final_best": finals,
        "mean": mu, "se": se, "n": len(finals),
        "trials_to_threshold": mean_se(reached)[0] if reached else None, "reached": len(reached),
        "trials": sum(len(m.trials) for m in gm),
        "complete": sum(c.get("COMPLETE", 0) for c in counts), "pruned": sum(c.get("PRUNED", 0) for c in counts),
        "failed": sum(c.get("FAIL", 0) for c in counts),
        "compute_seconds": sum(m.compute_seconds() for m in gm),
    }


def compare(runs: list, threshold: float | None = None) -> dict:
    """The comparison of ``runs`` as plain data (see the module docstring)."""
    ms = members(runs)
    groups = groups_of(ms)
    shared, notes = unshared(ms)
    if not shared:
        raise UsageError("these sweeps share no objective (same metric and direction); nothing to compare: "
                         + "; ".join(notes))
    out: dict[str, Any] = {"sweeps": [m.name for m in ms], "objectives": {}, "notes": notes,
                           "groups": {g: [m.name for m in v] for g, v in groups.items()}}
    for metric in shared:
        maximize = ms[0].objectives[metric] == "maximize"
        finals = [c[-1] for c in (best_so_far(m.values(metric), maximize) for m in ms) if c and c[-1] is not None]
        level = threshold if threshold is not None else (sorted(finals)[len(finals) // 2] if finals else 0.0)
        per = {g: _group_numbers(metric, maximize, gm, level) for g, gm in groups.items()}
        names = list(groups)
        diffs = []
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                ba = {m.seed: per[a]["final_best"][m.name] for m in groups[a] if m.name in per[a]["final_best"]}
                bb = {m.seed: per[b]["final_best"][m.name] for m in groups[b] if m.name in per[b]["final_best"]}
                if ba and bb:
                    diffs.append(difference(a, b, ba, bb, maximize).to_dict())
        out["objectives"][metric] = {"direction": "maximize" if maximize else "minimize", "threshold": level,
                                     "groups": per, "differences": diffs}
    return out


def curves(gm: list[Member], metric: str, maximize: bool) -> dict:
    """A group's best so far against trials (mean and band) and against wall time (each replicate's
    curve resampled at its group's common time grid)."""
    by_trial = [best_so_far(m.values(metric), maximize) for m in gm]
    mid, err = band(by_trial)
    timed = []
    for m, c in zip(gm, by_trial):
        pts = sorted((s, v) for s, v in zip(m.elapsed(), c) if s is not None and v is not None)
        timed.append(pts)
    end = max((p[-1][0] for p in timed if p), default=0.0)
    grid = [end * k / 100 for k in range(101)]
    resampled = [[_at(pts, s) for s in grid] for pts in timed]
    tmid, terr = band(resampled)
    return {"trial": list(range(1, len(mid) + 1)), "mean": mid, "se": err, "time": grid,
            "time_mean": tmid, "time_se": terr}


def _at(pts: list[tuple[float, float]], s: float) -> float | None:
    """The best so far at time ``s`` of sorted (time, best) points (None before the first)."""
    import bisect

    i = bisect.bisect_right(pts, (s, float("inf")))
    return pts[i - 1][1] if i else None
