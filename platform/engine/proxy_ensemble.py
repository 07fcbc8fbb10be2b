"""The proxies' ensemble: the mean of each member proxy's rank among the networks scored together.

A proxy's raw values are on scales that cannot be averaged (synflow spans thirty orders of
magnitude, naswot a few units), so the ensemble ranks: among the rows scored together, each
member's values are ranked (1 = lowest, ties share the mean rank, `WORST` ranks lowest) and a
row's ensemble is the mean of its members' ranks divided by the number of rows (so it lies in
(0, 1], higher is better). It is therefore a function of the whole scored set, not of one
network: adding rows can reorder nothing within a member, but the mean of ranks may change.

`DEFAULT_MEMBERS` (params, synflow, jacob_cov) were chosen on NAS-Bench-201 cells apart from
the ones the benchmark reports (benchmarks/README.md, "Zero-cost proxies").
"""
from __future__ import annotations

from typing import Mapping, Sequence

from scipy.stats import rankdata

DEFAULT_MEMBERS = ("params", "synflow", "jacob_cov")


def ensemble_scores(rows: Sequence[Mapping[str, float]],
                    members: Sequence[str] = DEFAULT_MEMBERS) -> list[float]:
    """One ensemble score per row (each row maps proxy name to score; every member present)."""
    if not rows:
        return []
    missing = [m for m in members if m not in rows[0]]
    if missing:
        raise ValueError(f"the ensemble needs proxies {', '.join(missing)} in every scored row")
    total = [0.0] * len(rows)
    for m in members:
        for i, r in enumerate(rankdata([row[m] for row in rows])):
            total[i] += float(r)
    return [t / (len(members) * len(rows)) for t in total]


def add_ensemble(rows: Sequence[dict[str, float]], members: Sequence[str] = DEFAULT_MEMBERS) -> None:
    """Set ``row["ensemble"]`` on every row, in place."""
    for row, value in zip(rows, ensemble_scores(rows, members)):
        row["ensemble"] = value
