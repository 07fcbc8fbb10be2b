"""A proxy prior for the strategies: warm starts from zero-cost proxy scores, and their ensemble.

A strategy sees samples and scores only, so the proxies reach it as a file of scores already
measured (``benchmarks/zero_cost_nb201.py --scores-out``, or a zero-cost sweep's
``zero_cost/scores.jsonl``): one row per sample, keyed by the space's ``key`` (``arch`` in a
CSV; a JSONL row carries ``key`` and ``scores``). Options (`ProxyPriorOptions`, shared by
``local_search``, ``evolution`` and ``controller``):

* ``proxy_scores``: the file; ``proxy``: the column to rank by (``ensemble``: the mean rank of
  ``members``, computed here over the whole file when the file has no such column);
* ``proxy_feature`` (local search): the sample's quantile by the proxy among the file's rows
  (0.5 when the file lacks it) is one more feature of the model that orders a centre's neighbours;
* ``warm_start``: M, the number of proxy-scored random samples (drawn from the file's rows with
  the strategy's seed, without replacement); ``warm_top``: k, how many of their best by the
  proxy the strategy evaluates first (local search climbs from the best of them; evolution's
  first population and the controller's first batch begin with them).

The ensemble (`ensemble_scores`): among the rows scored together, each member's values are
ranked (1 = lowest, ties share the mean rank) and a row's ensemble is the mean of its members'
ranks over the number of rows, in (0, 1], higher is better. So it is a function of the scored set,
not of one network. `DEFAULT_MEMBERS` (params, synflow, jacob_cov) were first picked on the
cells the benchmark reports; a check on held-out NAS-Bench-201 cells (`benchmarks/zero_cost_nb201.py
--choose-members`: another draw, none of the reported cells) put them within noise of the best
subset of 2-4 proxies, and they are kept as the smallest such subset (benchmarks/README.md,
"Zero-cost proxies").
"""
from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from nasforge.platform.errors import ConfigError

DEFAULT_MEMBERS = ("params", "synflow", "jacob_cov")


def ensemble_scores(rows: Sequence[Mapping[str, float]],
                    members: Sequence[str] = DEFAULT_MEMBERS) -> list[float]:
    """One ensemble score per row (each row maps proxy name to score; every member present)."""
    from scipy.stats import rankdata

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


@dataclass
class ProxyPriorOptions:
    proxy_scores: str | None = None  # a scores file (CSV keyed by arch, or a zero-cost sweep's JSONL)
    proxy: str = "ensemble"  # the column ranked by
    warm_start: int = 0  # M proxy-scored random samples (0: no warm start)
    warm_top: int = 1  # the k best of them, evaluated first
    proxy_feature: bool = False  # local search: the proxy's quantile is a feature of its neighbour model


def read_scores(path: str) -> dict[str, dict[str, float]]:
    """key -> {proxy: score} from a CSV (``arch`` column) or a JSONL file of {key, scores}."""
    out: dict[str, dict[str, float]] = {}
    try:
        with open(path, newline="") as f:
            if path.endswith(".jsonl"):
                for line in f:
                    row = json.loads(line)
                    out[row["key"]] = {k: float(v) for k, v in row["scores"].items()}
            else:
                for row in csv.DictReader(f):
                    out[row["arch"]] = {k: float(v) for k, v in row.items() if k != "arch"}
    except (OSError, KeyError, ValueError) as e:
        raise ConfigError(f"strategy.options.proxy_scores: cannot read {path!r}: {type(e).__name__}: {e}") from None
    return out


class ProxyPrior:
    """The warm-start samples of one strategy: the ``warm_top`` best by ``proxy`` among
    ``warm_start`` rows drawn with ``seed``; ``proposal(number, seen)`` hands them out first."""

    def __init__(self, space, options: ProxyPriorOptions, seed: int):
        self.space, self.samples, self.scores, self.quantiles = space, [], {}, None
        o = options
        if o.warm_start < 0 or o.warm_top < 1:
            raise ConfigError(f"strategy.options: warm_start must be >= 0 and warm_top >= 1, "
                              f"got {o.warm_start} and {o.warm_top}")
        if not o.proxy_scores:
            if o.warm_start:
                raise ConfigError("strategy.options.warm_start: give proxy_scores, the file of proxy scores")
            return
        rows = read_scores(o.proxy_scores)
        keys = list(rows)
        if keys and o.proxy not in rows[keys[0]]:
            if o.proxy != "ensemble":
                raise ConfigError(f"strategy.options.proxy: no column {o.proxy!r} in {o.proxy_scores}; valid: "
                                  f"{', '.join(rows[keys[0]])}, ensemble")
            add_ensemble([rows[k] for k in keys])
        self.scores = {k: rows[k][o.proxy] for k in keys}
        if o.proxy_feature:
            order = sorted(keys, key=lambda k: self.scores[k])
            self.quantiles = {k: i / max(1, len(order) - 1) for i, k in enumerate(order)}
        drawn = random.Random(seed).sample(keys, min(o.warm_start, len(keys)))
        best = sorted(drawn, key=lambda k: -self.scores[k])[:o.warm_top]
        self.samples = [self.sample_of(k) for k in best]
        self.drawn = len(drawn)

    def sample_of(self, key: str) -> dict[str, Any]:
        parse = getattr(self.space, "from_string", None)
        return self.space.validate(parse(key) if parse is not None else json.loads(key))

    def proposal(self, number: int, seen: set, seen_key) -> dict[str, Any] | None:
        """Warm sample ``number`` (trial numbers 0..k-1) unless it was evaluated already."""
        if number < len(self.samples) and seen_key(self.samples[number]) not in seen:
            return dict(self.samples[number])
        return None

    def feature(self, sample: Mapping[str, Any]) -> dict[str, float]:
        """{"proxy": the sample's quantile} with ``proxy_feature``, else {}."""
        if self.quantiles is None:
            return {}
        return {"proxy": self.quantiles.get(self.space.key(sample), 0.5)}
