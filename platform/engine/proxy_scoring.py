"""Scoring samples' untrained networks with zero-cost proxies, for the sweeps that do it.

`draw_samples` draws distinct samples as ``space.sample`` does; `ProxyScorer` builds a sample's
network as its trial would (`TrialAssembly`) from a fixed torch seed and scores it with
`proxies.score_network` on the first training batch of the task's data module; `scores_file`
keeps such scores in a JSONL file of {key, sample, scores} rows, appended as they are made, so
that a resumed sweep scores only what is missing. ``mode: zero_cost`` (`zero_cost.py`) and the
proxy ranks of ``mode: one_shot`` (`oneshot_rank.py`) both score through here. The proxies
themselves are `proxies.py`; their ensemble is `strategies.proxy_prior.ensemble_scores`.
"""
from __future__ import annotations

import json
import os
import random
from typing import Any

from nasforge.platform.errors import ConfigError


def draw_samples(space, n: int, seed: int, max_draws: int = 100_000) -> list[dict[str, Any]]:
    """Up to ``n`` distinct samples (by key) in the order ``space.sample`` draws them."""
    rng, out, seen = random.Random(seed), [], set()
    for _ in range(max_draws):
        if len(out) == n:
            break
        sample = space.sample(rng)
        if space.key(sample) not in seen:
            seen.add(space.key(sample))
            out.append(sample)
    return out


def proxy_device(cfg) -> str:
    """Where the trainer of SweepConfig ``cfg`` would run: cuda when asked for (or auto) and present."""
    import torch

    wants_gpu = cfg.trainer.accelerator in ("auto", "gpu", "cuda")
    return "cuda" if wants_gpu and torch.cuda.is_available() else "cpu"


class ProxyScorer:
    """The proxies ``names`` of a sample's untrained network, built from torch seed ``cfg.seed``
    and scored with that seed on the first training batch of ``dm`` (a set-up data module), or of
    the task's own data module for ``sample`` (made here), on the device the trainer would use."""

    def __init__(self, ctx, names, dm=None, sample=None):
        from nasforge.platform.engine.assembly import TrialAssembly
        from nasforge.platform.engine.proxies import first_batch, model_batch

        if not ctx.resolved.network_arg:
            raise ConfigError(f"mode: {ctx.cfg.mode} scores networks with proxies; this task builds its own "
                              "(no network_arg)")
        self.ctx, self.names = ctx, [p for p in names if p != "ensemble"]
        if dm is None:
            self.dm = TrialAssembly(ctx, sample or {}).datamodule()
            self.batch = first_batch(self.dm, proxy_device(ctx.cfg))
        else:
            self.dm, self.batch = dm, model_batch(dm, proxy_device(ctx.cfg))

    def score(self, sample: dict[str, Any]) -> dict[str, float]:
        import torch

        from nasforge.platform.engine.assembly import TrialAssembly
        from nasforge.platform.engine.proxies import score_network

        torch.manual_seed(self.ctx.cfg.seed)
        net = TrialAssembly(self.ctx, sample).network(self.dm)
        return score_network(net, self.batch, self.names, seed=self.ctx.cfg.seed)


def scores_file(samples: list[dict[str, Any]], path: str, key, score, label: str, show_progress: bool = False,
                console=None) -> list[dict[str, float]]:
    """``score(sample)`` (a dict of floats) of every sample, in order: read back from the JSONL file
    ``path`` (rows {key, sample, scores}, `proxy_prior.read_scores` reads it) for the keys already
    there, the others scored and appended as they are made (so a resumed run scores only what is missing)."""
    from nasforge.platform.console import Bar

    done: dict[str, dict[str, float]] = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                done[row["key"]] = row["scores"]
    missing = [s for s in samples if key(s) not in done]
    if missing:
        bar = Bar(label, len(samples), show_progress, console)
        try:
            for sample in missing:  # the file is made at the first score (nothing written when it fails)
                done[key(sample)] = scores = score(sample)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "a") as f:
                    f.write(json.dumps({"key": key(sample), "sample": sample, "scores": scores}) + "\n")
                bar.update(len(done))
        finally:
            bar.close()
    return [dict(done[key(s)]) for s in samples]
