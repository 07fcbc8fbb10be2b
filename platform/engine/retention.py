"""Which trials keep their checkpoint: disk that grows with the best trials, not with the sweep.

A trained trial writes its best epoch's weights to ``trials/<n>/best.ckpt`` (and the dashboard
serves that same file through a hard link in ``artifacts/``). `apply_retention(study, cfg,
run_dir)` keeps the checkpoints of the ``checkpoints.keep_top`` best COMPLETE trials by each
objective (several objectives: the union of each one's top k, so every objective's leaders
stay promotable) and deletes the others' and those of PRUNED and FAILED trials. RUNNING trials
are never touched, nor the parent a RUNNING child inherits its weights from (`inheritance.py`).
The sweep loop calls it under the budget lock after each trial, so several workers never decide
at once; a promotion reads the checkpoint under the same lock and copies the weights into the
registry, so a promoted version never depends on the trial's file.
"""
from __future__ import annotations

import os
from typing import Any, Iterable

from nasforge.platform.engine.artifacts import ARTIFACT_DIR, remove_trial_artifacts
from nasforge.platform.engine.config import SweepConfig

CHECKPOINT = "best.ckpt"
PARENT_ATTR = "nasforge:parent"  # the trial a child inherits its weights from (engine/inheritance.py)


def needed_parents(trials: Iterable[Any]) -> set[int]:
    """The parents named by trials that have not finished: their checkpoints must stay."""
    return {int(t.system_attrs[PARENT_ATTR]) for t in trials
            if not t.state.is_finished() and t.system_attrs.get(PARENT_ATTR) is not None}


def kept_trials(trials: Iterable[Any], cfg: SweepConfig) -> set[int]:
    """Numbers of the trials whose checkpoint stays (see the module docstring)."""
    from optuna.trial import TrialState

    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    k = cfg.checkpoints.keep_top
    if k is None:
        return {t.number for t in complete}
    keep: set[int] = set()
    for i, o in enumerate(cfg.objectives):
        sign = -1.0 if o.direction == "maximize" else 1.0
        ranked = sorted(complete, key=lambda t: (sign * t.values[i], t.number))
        keep.update(t.number for t in ranked[:k])
    return keep


def checkpoint_path(trial: Any) -> str | None:
    """The trial's checkpoint file (recorded, or the runner's name in its folder), if any."""
    path = trial.user_attrs.get("checkpoint")
    if not path and trial.user_attrs.get("trial_dir"):
        path = os.path.join(trial.user_attrs["trial_dir"], CHECKPOINT)
    return path


def apply_retention(study, cfg: SweepConfig, run_dir: str) -> list[str]:
    """Delete the checkpoints the policy does not keep (and their dashboard links); returns the
    paths deleted. Call under the sweep's budget lock."""
    trials = study.get_trials(deepcopy=False)
    keep = kept_trials(trials, cfg) | needed_parents(trials)
    removed = []
    for t in trials:
        if not t.state.is_finished() or t.number in keep:
            continue
        path = checkpoint_path(t)
        if not path or not os.path.isfile(path):
            continue
        remove_trial_artifacts(study, t, os.path.basename(path), os.path.join(run_dir, ARTIFACT_DIR))
        os.remove(path)
        removed.append(path)
    return removed
