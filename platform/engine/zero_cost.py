"""Zero-cost sweeps: rank samples with untrained networks first, train only the best.

A sweep file with ``mode: zero_cost`` (options under ``zero_cost:``, see
`zero_cost_config.ZeroCostConfig`) runs three phases, each resumable, in the sweep's run folder
and storage:

1. **Score.** ``samples`` distinct samples drawn with ``space.sample(random.Random(seed))``; each
   one's network (built from torch seed ``seed``) is scored with the asked ``proxies`` on the
   first training batch of the task's own data module (`proxy_scoring.ProxyScorer`, on the device
   the trainer would use). Scores go to ``zero_cost/scores.jsonl`` as they are made; a resumed
   sweep reads them back and scores only what is missing.
2. **Record.** The ensemble (`strategies.proxy_prior`, ranks among all scored samples) is added and every
   sample becomes a COMPLETE trial of study ``<name>.zero_cost`` in the same storage (value: the
   ``rank_by`` score; ``metrics``: every ``proxy/*``), so the leaderboard, the report and
   optuna-dashboard show them as they show any study.
3. **Train.** The ``top_k`` best distinct samples are enqueued into the sweep's own study and
   trained by `run_sweep` (full ``trainer.max_epochs``; budget ``top_k``), as one-shot sweeps do,
   so the sweep ends with ordinary trials, checkpoints and ``nasforge promote NAME --best``.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

from nasforge.platform.engine.config import SweepConfig
from nasforge.platform.engine.proxy_scoring import ProxyScorer, draw_samples, scores_file
from nasforge.platform.errors import ConfigError

SCORES_DIR = "zero_cost"
SCORES_FILE = "scores.jsonl"


def zero_cost_study_name(name: str) -> str:
    return f"{name}.zero_cost"


def load_zero_cost_study(name: str, storage_url: str):  # None before the scores were recorded
    from nasforge.platform.engine.storage import load_study_if_exists

    return load_study_if_exists(zero_cost_study_name(name), storage_url)


def score_samples(ctx, samples: list[dict[str, Any]], path: str, show_progress: bool = False,
                  console=None) -> list[dict[str, float]]:
    """Phase 1: the proxies of every sample, read from ``path`` when already there."""
    scorer: list[ProxyScorer] = []  # made at the first sample to score (none when all are in the file)

    def score(sample):
        if not scorer:
            scorer.append(ProxyScorer(ctx, ctx.cfg.zero_cost.proxies, sample=sample))
        return scorer[0].score(sample)

    return scores_file(samples, path, ctx.space.key, score, "zero-cost scores", show_progress, console)


def record_scores(cfg: SweepConfig, space, samples, rows, storage_url: str):
    """Phase 2: every scored sample a COMPLETE trial of ``<name>.zero_cost`` (once)."""
    import optuna
    from optuna.trial import TrialState

    from nasforge.platform.strategies.proxy_prior import add_ensemble
    from nasforge.platform.engine.storage import create_storage

    z = cfg.zero_cost
    if z.rank_by == "ensemble" or "ensemble" in z.proxies:
        add_ensemble(rows, z.members)
    study = optuna.create_study(study_name=zero_cost_study_name(cfg.name), storage=create_storage(storage_url),
                                sampler=optuna.samplers.RandomSampler(seed=cfg.seed), direction="maximize",
                                load_if_exists=True)
    if study.metric_names is None:
        study.set_metric_names([f"proxy/{z.rank_by}"])
        study.set_user_attr("nasforge_config", cfg.to_dict())
        study.set_user_attr("zero_cost_phase", "proxy scores of untrained networks")
    recorded = {t.user_attrs.get("key") for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    for sample, row in zip(samples, rows):
        key = space.key(sample)
        if key in recorded:
            continue
        study.enqueue_trial(sample)
        trial = study.ask()
        space.suggest(trial)
        trial.set_user_attr("sample", sample)
        trial.set_user_attr("genotype", space.to_json(sample))
        trial.set_user_attr("key", key)
        trial.set_user_attr("metrics", {f"proxy/{k}": v for k, v in row.items()})
        study.tell(trial, row[z.rank_by])
    return study


def run_zero_cost(cfg: SweepConfig, root: str, show_progress: bool = True, console=None) -> dict[str, Any]:
    """All three phases (each resumes from what the run folder and storage hold). Returns
    {"scores": study of the scored samples, "retrain": the sweep's own study}."""
    from nasforge.platform.engine.oneshot import enqueue_top, top_samples
    from nasforge.platform.engine.sweep import open_study, run_sweep, start_run

    if cfg.mode != "zero_cost":
        raise ConfigError(f"mode: run_zero_cost needs mode zero_cost, got {cfg.mode!r}")
    rundir, storage_url, ctx = start_run(cfg, root)
    samples = draw_samples(ctx.space, cfg.zero_cost.samples, cfg.seed)
    rows = score_samples(ctx, samples, os.path.join(rundir, SCORES_DIR, SCORES_FILE), show_progress, console)
    scores = record_scores(cfg, ctx.space, samples, rows, storage_url)
    rcfg = dataclasses.replace(cfg, budget=dataclasses.replace(cfg.budget, trials=cfg.zero_cost.top_k))
    retrain = open_study(rcfg, ctx, storage_url)
    enqueue_top(retrain, top_samples(scores, cfg.zero_cost.top_k), "zero_cost_rank",
                f"proxy/{cfg.zero_cost.rank_by}")
    retrain = run_sweep(rcfg, root=root, show_progress=show_progress, console=console)
    return {"scores": scores, "retrain": retrain}
