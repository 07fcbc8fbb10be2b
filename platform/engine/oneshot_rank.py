"""How a one-shot search scores a sample: by the supernet, by zero-cost proxies, or by both.

``oneshot.rank`` (`config_schema.OneShotConfig`) picks the search study's value:

* ``supernet`` - ``val/acc``: the sample's accuracy with inherited weights, batch norm
  recalibrated (`single_path.InheritedWeightScorer`);
* ``proxies``  - ``proxy/ensemble``: the zero-cost ensemble (`strategies.proxy_prior.ensemble_scores`,
  the mean rank of ``oneshot.members``) of the untrained network the space builds for the sample,
  scored with the sweep's seed on the first training batch of the sweep's own data
  (`proxy_scoring.ProxyScorer`, as ``mode: zero_cost`` scores);
* ``both``     - ``oneshot/both``: the mean of the sample's supernet quantile and its proxy
  ensemble.

A rank needs a set to rank in, and ranking among the trials scored so far would make a trial's
value depend on which trials came later. So ranks are taken in a fixed **reference pool**:
``oneshot.reference`` samples drawn as the zero-cost mode draws them (`proxy_scoring.draw_samples`,
the sweep's seed), scored once before the search and kept in ``supernet/reference.jsonl`` (a
resumed sweep reads them back). A sample's quantile is its rank among the pool and itself over
the pool's size + 1, in (0, 1]: a function of the sample alone. With ``proxies`` or ``both``
each trial records ``supernet/val_acc``, the raw ``proxy/<member>`` scores, ``proxy/ensemble``
and, for ``both``, ``supernet/quantile`` and ``oneshot/both`` in its ``metrics``. This module scores; the search
loop is `oneshot.search_supernet`.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

from nasforge.platform.errors import ConfigError

RANKS = ("supernet", "proxies", "both")
VALUE_METRIC = {"supernet": "val/acc", "proxies": "proxy/ensemble", "both": "oneshot/both"}
REFERENCE_FILE = "reference.jsonl"


def quantile(pool: Sequence[dict[str, float]], row: dict[str, float], members: Sequence[str]) -> float:
    """``row``'s ensemble of ``members`` among ``pool`` and itself: mean rank / (len(pool) + 1)."""
    from nasforge.platform.strategies.proxy_prior import ensemble_scores

    return ensemble_scores([*pool, row], members)[-1]


class RankedScorer:
    """``score(sample)``: the metrics of one sample, its value under ``self.metric``.

    ``supernet`` and ``proxies`` have ``score(sample)`` (a float; a dict of proxy scores);
    ``pool``: the reference rows (`raw` of each reference sample), needed unless rank is supernet."""

    def __init__(self, rank: str, supernet, proxies=None, members: Sequence[str] = (),
                 pool: Sequence[dict[str, float]] = ()):
        if rank not in RANKS:
            raise ConfigError(f"oneshot.rank: unknown {rank!r}; valid: {', '.join(RANKS)}")
        self.rank, self.supernet, self.proxies = rank, supernet, proxies
        self.members, self.pool, self.metric = list(members), list(pool), VALUE_METRIC[rank]

    def raw(self, sample: dict[str, Any]) -> dict[str, float]:
        """The sample's own scores: ``supernet`` and, with a proxy scorer, each proxy's."""
        row = {"supernet": float(self.supernet.score(sample))}
        if self.proxies is not None:
            row.update(self.proxies.score(sample))
        return row

    def metrics(self, row: dict[str, float]) -> dict[str, float]:
        proxies = {f"proxy/{k}": v for k, v in row.items() if k != "supernet"}
        if self.rank == "supernet":  # the value is the supernet's val/acc (as before ranks existed)
            return {"val/acc": row["supernet"], **proxies}
        out = {"supernet/val_acc": row["supernet"], **proxies}
        out["proxy/ensemble"] = quantile(self.pool, row, self.members)
        if self.rank == "both":
            out["supernet/quantile"] = quantile(self.pool, row, ["supernet"])
            out["oneshot/both"] = (out["supernet/quantile"] + out["proxy/ensemble"]) / 2
        return out

    def score(self, sample: dict[str, Any]) -> dict[str, float]:
        return self.metrics(self.raw(sample))


def create_ranked_scorer(ctx, module, dm, folder: str, show_progress: bool = False, console=None) -> RankedScorer:
    """The sweep's scorer on its trained supernet (``module.network``) and set-up data module; unless
    rank is supernet, with the proxies and the reference pool (scored once, kept in ``folder``)."""
    from nasforge.platform.engine.single_path import InheritedWeightScorer
    from nasforge.platform.engine.proxy_scoring import ProxyScorer, draw_samples, scores_file

    o = ctx.cfg.oneshot
    supernet = InheritedWeightScorer.from_datamodule(module.network, dm, o.calib_batches, o.val_batches)
    if o.rank == "supernet":
        return RankedScorer("supernet", supernet)
    scorer = RankedScorer(o.rank, supernet, ProxyScorer(ctx, o.members, dm=dm), o.members)
    path = os.path.join(folder, REFERENCE_FILE)
    pool = draw_samples(ctx.space, o.reference, ctx.cfg.seed)
    scorer.pool = scores_file(pool, path, ctx.space.key, scorer.raw, "reference samples", show_progress, console)
    missing = sorted(set(o.members) - set(scorer.pool[0]))
    if missing:
        raise ConfigError(f"oneshot.members: the reference samples in {path} were scored without "
                          f"{', '.join(missing)}; use --name NEW for a new sweep (or delete the run folder)")
    return scorer


def search_view(cfg) -> tuple[Any, list[str], str]:
    """How leaderboards read a one-shot sweep's search study: the sweep config with the rank's
    value as its one objective, the extra metric columns of the terminal's leaderboard (the
    report's shows every ``proxy/*`` too), and what the value is (for titles)."""
    import dataclasses

    from nasforge.platform.engine.config_schema import Objective

    rank = cfg.oneshot.rank
    view = dataclasses.replace(cfg, objectives=[Objective(metric=VALUE_METRIC[rank], direction="maximize")])
    if rank == "supernet":
        return view, [], "val/acc with the supernet's weights (batch norm recalibrated)"
    columns = ["supernet/val_acc", "proxy/ensemble"] if rank == "both" else ["supernet/val_acc"]
    what = {"proxies": "the zero-cost ensemble of the untrained network (quantile in the reference pool)",
            "both": "the mean of the supernet's and the zero-cost ensemble's quantiles in the reference pool"}[rank]
    return view, columns, what
