"""Running a sweep: the worker loop over Optuna's ask/tell.

`run_sweep(cfg, root)` opens (or resumes) the sweep's study and runs trials until the budget
is met. The budget counts trials that *finished*: COMPLETE or PRUNED. A FAILED trial (a crash,
a NaN loss, a killed worker) does not use up the budget, so the sweep still reaches its total;
``budget.max_failures`` failures in one invocation stop it (an always-crashing config must not
loop forever), and so do `SAME_REASON_LIMIT` failures in a row with the same reason (numbers
aside), which say the config is at fault, not the trial. Re-running the same command with a
larger ``--trials`` resumes: finished trials are kept and only the difference runs.

Several workers (processes on one machine, or machines sharing a PostgreSQL storage) run this
same loop. Claiming a trial is ``count -> ask`` under a budget lock (a file lock beside a local
storage, a PostgreSQL advisory lock for a shared database), so together they start exactly the
requested number of trials, and a worker exits when the remaining budget is covered by trials
that others are running.

Fault tolerance (platform/engine/heartbeat.py): while a trial runs, a heartbeat thread marks it alive;
under the budget lock each worker first fails the stale RUNNING trials (their worker died) and
enqueues a retry of each, which the next ``ask`` picks up. Ctrl-C (or SIGTERM in a worker)
records the running trial as FAIL ("interrupted") and stops the worker.

The budget lock is in `locks`, the signal handling in `lifeline`.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from typing import Any, Callable

from nasforge.platform.console import Bar
from nasforge.platform.engine.config import SweepConfig
from nasforge.platform.errors import ConfigError, NasforgeError
from nasforge.platform.engine.lifeline import stop_signals_deferred
from nasforge.platform.engine.locks import budget_lock
from nasforge.platform.engine.heartbeat import Heartbeat, recover_stale_trials, release_memory
from nasforge.platform.engine.storage import (
    CONFIG_FILE, DEFAULT_ROOT, check_storage, create_storage, run_dir,
)
from nasforge.platform.optuna_adapter import reread_trial

FINISHED = ("COMPLETE", "PRUNED")
# this many failures in a row with the same reason stop the sweep: the config is at fault, not the trial
SAME_REASON_LIMIT = 3
# keys whose change makes an existing sweep a different experiment
IDENTITY_KEYS = ("task", "space", "strategy", "objectives", "constraints", "seed", "pruner", "mode")
# one line per trial and per recovered trial (workers send it to their log file)
log = logging.getLogger("nasforge.sweep")


class SweepFailed(NasforgeError):
    pass


# ----------------------------------------------------------------------------- config on disk
def write_config(cfg: SweepConfig, rundir: str) -> None:
    """Write the resolved config beside the study; refuse to resume a different experiment."""
    import yaml

    path = os.path.join(rundir, CONFIG_FILE)
    if os.path.exists(path):
        with open(path) as f:
            old = yaml.safe_load(f) or {}
        new = cfg.to_dict()
        changed = [k for k in IDENTITY_KEYS if old.get(k) != new.get(k)]
        if changed:
            raise ConfigError(
                f"sweep {cfg.name!r} already exists in {rundir} with a different {', '.join(changed)}; "
                "use --name NEW for a new sweep (or delete the run folder)"
            )
    os.makedirs(rundir, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(cfg.to_yaml())
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- the study
def start_run(cfg: SweepConfig, root: str | os.PathLike = DEFAULT_ROOT):
    """(run folder, storage URL, trial context) of a sweep about to run: the root, the storage and
    the space's options are checked first (one line, nothing written), then ``sweep.yaml``."""
    from nasforge.platform.engine.trial import TrialContext

    rundir = run_dir(cfg.name, root)
    storage_url = check_storage(cfg, root)
    try:
        ctx = TrialContext.create(cfg, rundir)
        ctx.space.dims  # noqa: B018 - build the declaration now: bad space options fail before any write
    except (ValueError, TypeError) as e:
        raise ConfigError(f"space: {e}") from None
    write_config(cfg, rundir)
    return rundir, storage_url, ctx


def open_study(cfg: SweepConfig, ctx, storage_url: str, seed: int | None = None):
    import optuna

    from nasforge.platform.engine.pruners import create_pruner
    from nasforge.platform.strategies import create_sampler

    import warnings

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    storage = create_storage(storage_url)

    sampler = create_sampler(cfg.strategy, ctx.space, cfg.seed if seed is None else seed, cfg.directions)
    pruner = create_pruner(cfg.pruner, cfg.trainer.max_epochs)
    study = optuna.create_study(study_name=cfg.name, storage=storage, sampler=sampler, pruner=pruner,
                                directions=cfg.directions, load_if_exists=True)
    if study.metric_names is None:
        study.set_metric_names([o.metric for o in cfg.objectives])
        study.set_user_attr("nasforge_config", cfg.to_dict())
    return study


def sampler_seed(seed: int, n_trials: int, worker: str | None, strategy: str = "random") -> int:
    """The sampler's seed for this invocation: the sweep's seed for a fresh single-worker run
    (reproducible) and for strategies outside `strategies.RESEEDED`; otherwise one per worker and
    per resume point."""
    from nasforge.platform.strategies import RESEEDED

    if (not worker and n_trials == 0) or strategy not in RESEEDED:
        return seed
    return int(hashlib.sha1(f"{seed}:{worker or ''}:{n_trials}".encode()).hexdigest()[:8], 16)


def state_counts(study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


def best_value_text(study, cfg: SweepConfig) -> str:
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        return "-"
    if cfg.multi_objective:
        return f"{len(study.best_trials)} on the Pareto front"
    best = study.best_trial
    return f"{cfg.objectives[0].metric}={best.value:.4g} (trial {best.number})"


# ----------------------------------------------------------------------------- the loop
def run_sweep(cfg: SweepConfig, root: str | os.PathLike = DEFAULT_ROOT, show_progress: bool = True,
              console=None, worker: str | None = None,
              on_finish: Callable[[Any, SweepConfig, str], None] | None = None) -> Any:
    """Run (or resume) a sweep until its budget is met; return the Optuna study.

    ``on_finish(study, cfg, run_dir)`` runs once at the end of a one-process sweep (not in a
    worker): the CLI logs the W&B sweep summary there (views are above the engine)."""
    import optuna
    from optuna.trial import TrialState

    from nasforge.platform.engine.retention import apply_retention
    from nasforge.platform.engine.trial import TrialFailed
    from nasforge.platform.engine.trial_runner import run_trial

    rundir, storage_url, ctx = start_run(cfg, root)
    study = open_study(cfg, ctx, storage_url)
    seed = sampler_seed(cfg.seed, len(study.get_trials(deepcopy=False)), worker, cfg.strategy.name)
    if seed != cfg.seed:
        study = open_study(cfg, ctx, storage_url, seed=seed)

    total = cfg.budget.trials if cfg.budget.trials is not None else math.inf
    deadline = time.monotonic() + cfg.budget.timeout if cfg.budget.timeout else math.inf
    max_failures = cfg.budget.max_failures or max(3, int(total) if total != math.inf else 10)
    failures = 0
    streak: list[str] = []  # reasons of the failures since the last finished trial
    progress = _Progress(cfg, total, show_progress, console, worker)
    trial = None
    try:
        while True:
            with budget_lock(storage_url, rundir, cfg.name):
                # dead workers' trials: FAIL + retry
                recover_stale_trials(study, log=progress.note, under_lock=True)
                apply_retention(study, cfg, rundir)  # checkpoints of the top k only (checkpoints.keep_top)
                counts = state_counts(study)
                finished = sum(counts.get(s, 0) for s in FINISHED)
                # WAITING trials (retries, enqueued ones) are not claimed yet: ``ask`` pops them first
                in_flight = counts.get("RUNNING", 0)
                progress.update(finished, study)
                if finished >= total or time.monotonic() >= deadline:
                    break
                if finished + in_flight >= total:
                    trial = None  # others are running the rest of the budget
                else:
                    with stop_signals_deferred():  # a trial is never made without us holding it
                        trial = study.ask()
                        if worker:
                            trial.set_user_attr("worker", worker)
                        beat = Heartbeat(trial, worker)
                        beat.beat(strict=True)  # before the lock goes: see heartbeat.stale_reason
            if trial is None:
                if not _others_alive(study):
                    break
                time.sleep(1.0)
                continue
            start = time.perf_counter()
            try:
                with beat:
                    values = run_trial(ctx, trial)
            except optuna.TrialPruned as e:
                streak.clear()
                _tell(study, trial, state=TrialState.PRUNED)
                progress.trial_done(trial.number, "PRUNED", str(e), time.perf_counter() - start)
            except (KeyboardInterrupt, SystemExit):  # Lightning turns Ctrl-C into sys.exit(1)
                _fail_interrupted(study, trial)
                progress.trial_done(trial.number, "FAIL", "interrupted", time.perf_counter() - start)
                raise KeyboardInterrupt from None
            except Exception as e:  # a crash inside one trial fails that trial, not the worker
                reason = str(e) if isinstance(e, TrialFailed) else f"{type(e).__name__}: {e}"
                reason = reason.strip().splitlines()[0][:500] if reason.strip() else type(e).__name__
                trial.set_user_attr("fail_reason", reason)
                _tell(study, trial, state=TrialState.FAIL)
                release_memory()  # e.g. CUDA out of memory: the next trial gets the memory back
                failures += 1
                streak.append(reason)
                progress.trial_done(trial.number, "FAIL", reason, time.perf_counter() - start)
                if repeated_failure(streak):
                    raise SweepFailed(
                        f"stopped early: {len(streak)} trials in a row failed for the same reason "
                        f"(budget.max_failures={max_failures} not reached): {reason}"
                    ) from None
                if failures >= max_failures:
                    raise SweepFailed(
                        f"{failures} trials failed in this run (budget.max_failures={max_failures}); "
                        f"last reason: {reason}"
                    ) from None
            else:
                streak.clear()
                if not _tell(study, trial, values):
                    progress.note(f"trial {trial.number}: result dropped, another worker declared it "
                                  "stale and retries it")
                    continue
                text = ", ".join(f"{o.metric}={v:.4g}" for o, v in zip(cfg.objectives, values))
                progress.trial_done(trial.number, "COMPLETE", text, time.perf_counter() - start)
    except KeyboardInterrupt:
        if trial is not None and _fail_interrupted(study, trial):  # claimed, not started yet
            progress.trial_done(trial.number, "FAIL", "interrupted", 0.0)
        # a SIGTERM or Ctrl-C that lands after the last trial was told: finished, not interrupted
        finished = sum(state_counts(study).get(s, 0) for s in FINISHED)
        if finished < total:
            raise
    finally:
        progress.close(study)
    if worker is None and on_finish is not None:  # workers: their parent's business
        on_finish(study, cfg, rundir)
    return study


def repeated_failure(reasons: list[str], limit: int = SAME_REASON_LIMIT) -> bool:
    """Whether the last ``limit`` failures in a row share one reason (numbers masked: a NaN at
    step 12 and one at step 40 are the same fault)."""
    import re

    if len(reasons) < limit:
        return False
    last = {re.sub(r"[-+]?\d[\d.e+-]*", "#", r) for r in reasons[-limit:]}
    return len(last) == 1


def _fail_interrupted(study, trial) -> bool:
    """Record ``trial`` as FAIL ("interrupted") unless it already finished; whether it was."""
    from optuna.trial import TrialState

    # private: re-read the state (another worker may have failed it as stale); no public getter by trial
    if reread_trial(study, trial).state.is_finished():
        return False
    trial.set_user_attr("fail_reason", "interrupted (Ctrl-C, SIGTERM or SIGHUP)")
    return _tell(study, trial, state=TrialState.FAIL)


def _others_alive(study) -> bool:
    """Whether a RUNNING trial may still finish (another worker is on it)."""
    from optuna.trial import TrialState

    return bool(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def _tell(study, trial, values=None, state=None) -> bool:
    """``study.tell``; False when the trial was already finished elsewhere (failed as stale)."""
    # private: re-read the state (another worker may have failed it as stale); no public getter by trial
    if reread_trial(study, trial).state.is_finished():
        return False
    study.tell(trial, values, state=state, skip_if_finished=True)
    return True


# ----------------------------------------------------------------------------- progress
class _Progress:
    """A rich progress bar (trials finished / total, best so far) plus one line per trial."""

    def __init__(self, cfg: SweepConfig, total: float, enabled: bool, console, worker: str | None):
        self.cfg, self.worker = cfg, worker
        self.bar = Bar(f"sweep {cfg.name}", None if total == math.inf else total, enabled, console,
                       status="best {best}", best="-")

    def update(self, finished: int, study) -> None:
        if self.bar.enabled:  # the best value is a storage read: none without a bar
            self.bar.update(finished, best=best_value_text(study, self.cfg))

    def note(self, text: str) -> None:
        who = f"[{self.worker}] " if self.worker else ""
        log.info("%s%s", who, text)
        if self.bar.enabled:
            self.bar.print(f"{who}{text}")

    def trial_done(self, number: int, state: str, text: str, seconds: float) -> None:
        log.info("%strial %d %s %s (%.1fs)", f"[{self.worker}] " if self.worker else "", number, state, text, seconds)
        if self.bar.enabled:
            colour = {"COMPLETE": "green", "PRUNED": "yellow", "FAIL": "red"}[state]
            who = f"[{self.worker}] " if self.worker else ""
            self.bar.print(f"{who}trial {number:>3} [{colour}]{state:<8}[/] {text}  ({seconds:.1f}s)")

    def close(self, study) -> None:
        if self.bar.enabled:
            self.update(sum(state_counts(study).get(s, 0) for s in FINISHED), study)
        self.bar.close()
