"""The statistics of a comparison of sweeps: best-so-far curves, mean +/- standard error over seeds,
trials to a threshold, and the difference between two groups with a paired or a rank test.

Pure functions over plain numbers (no Optuna, no plotting), so the comparison's numbers can be
checked against the studies directly. A *group* is the replicates of one arm (e.g. one strategy
over five seeds); its final best is the best objective value each replicate reached. Two groups
that share at least two seeds are compared paired (difference per seed, Wilcoxon signed-rank);
otherwise by the difference of means (standard errors added in quadrature, Mann-Whitney U).
"""
from __future__ import annotations

import math
from dataclasses import dataclass


def best_so_far(values: list[float | None], maximize: bool) -> list[float | None]:
    """Running best of ``values`` (None where a trial has no value: the best so far carries on)."""
    out: list[float | None] = []
    best = None
    for v in values:
        if v is not None and (best is None or (v > best if maximize else v < best)):
            best = v
        out.append(best)
    return out


def mean_se(xs: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for one value: no spread is known)."""
    n = len(xs)
    if not n:
        return math.nan, math.nan
    m = math.fsum(xs) / n  # floats, not the statistics module's exact fractions (a band has 1,000s of points)
    if n == 1:
        return m, 0.0
    return m, math.sqrt(math.fsum((x - m) ** 2 for x in xs) / (n - 1) / n)


def trials_to(threshold: float, curve: list[float | None], maximize: bool) -> int | None:
    """The number of trials after which the best so far first reaches ``threshold`` (None: never)."""
    for i, v in enumerate(curve):
        if v is not None and (v >= threshold if maximize else v <= threshold):
            return i + 1
    return None


def band(curves: list[list[float | None]]) -> tuple[list[float | None], list[float | None]]:
    """Pointwise mean and standard error of several curves (ragged: a shorter one stops counting)."""
    n = max((len(c) for c in curves), default=0)
    mid: list[float | None] = []
    err: list[float | None] = []
    for i in range(n):
        xs = [c[i] for c in curves if i < len(c) and c[i] is not None]
        m, s = mean_se(xs) if xs else (None, None)
        mid.append(m)
        err.append(s)
    return mid, err


@dataclass
class Difference:
    a: str
    b: str
    diff: float  # mean of (a - b), signed so that > 0 means a is better
    se: float
    paired: bool
    n: int  # seeds (paired) or replicates of the smaller group
    wins: int | None  # seeds on which a beat b (paired only)
    test: str
    p: float | None
    ties: int = 0  # seeds on which they were level (paired only)

    def words(self) -> str:
        lead, other = (self.a, self.b) if self.diff >= 0 else (self.b, self.a)
        if self.diff == 0:
            return f"{self.a} and {self.b} level (difference 0 +/- {self.se:.2g})"
        if self.n < 2:  # one replicate on a side: nothing is known about the spread
            return f"{lead} ahead of {other} by {abs(self.diff):.3g} (one sweep on a side: no standard error, no test)"
        text = f"{lead} ahead of {other} by {abs(self.diff):.3g} +/- {self.se:.2g}"
        if self.paired and self.wins is not None:
            wins = self.wins if self.diff >= 0 else self.n - self.wins - self.ties
            text += f", {wins} of {self.n} seeds"
        if self.p is not None:
            text += f" ({self.test} p = {self.p:.2g})"
        return text

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "difference": self.diff, "se": self.se, "paired": self.paired,
                "n": self.n, "wins": self.wins, "ties": self.ties, "test": self.test, "p": self.p,
                "words": self.words()}


def difference(a: str, b: str, best_a: dict[int, float], best_b: dict[int, float], maximize: bool) -> Difference:
    """``a`` against ``b`` from each group's final best by seed (``{seed: value}``)."""
    sign = 1.0 if maximize else -1.0
    shared = sorted(set(best_a) & set(best_b))
    if len(shared) >= 2:
        d = [sign * (best_a[s] - best_b[s]) for s in shared]
        m, se = mean_se(d)
        p = _test("wilcoxon", d)
        return Difference(a, b, m, se, True, len(d), sum(x > 0 for x in d), "Wilcoxon", p,
                          ties=sum(x == 0 for x in d))
    (ma, sa), (mb, sb) = mean_se(list(best_a.values())), mean_se(list(best_b.values()))
    p = _test("mannwhitneyu", list(best_a.values()), list(best_b.values()))
    return Difference(a, b, sign * (ma - mb), math.hypot(sa, sb), False, min(len(best_a), len(best_b)),
                      None, "Mann-Whitney", p)


def _test(name: str, *samples) -> float | None:
    """The p-value of scipy.stats' ``name`` test, or None where it is undefined (too few values,
    all differences zero) or scipy is absent."""
    try:
        from scipy import stats
    except ImportError:  # pragma: no cover - scipy ships with the environment
        return None
    if any(len(s) < 2 for s in samples) or (name == "wilcoxon" and not any(samples[0])):
        return None
    try:
        p = float(getattr(stats, name)(*samples).pvalue)
    except ValueError:
        return None
    return None if math.isnan(p) else p
