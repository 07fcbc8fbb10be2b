"""One trial: sample -> network -> task LightningModule -> Lightning fit -> objective values.

`TrialContext` holds what every trial of a sweep shares (config, space, task and data
classes, run folder); `run_trial(ctx, trial)` runs one trial in this process and returns the
objective values, or raises:

* ``optuna.TrialPruned`` when the pruner stopped it;
* `TrialFailed` with a one-line reason (an invalid sample, a non-finite loss, a metric that was
  never logged); the sweep records the reason and goes on;
* anything else is a crash inside the trial: the sweep records it as a failure too.

Between the recorded sample and training, a trial waits while ``<run folder>/HOLD`` exists
(`wait_while_held`): an operator's pause, and the fault tests' known state.

The objective values of a trained trial come from one epoch: the best by the first objective,
whose weights (``trials/<n>/best.ckpt``) are kept for promotion while the trial is among the
best ``checkpoints.keep_top`` (engine/retention.py); a pruned or failed trial keeps none.
``cost/*`` metrics (params, FLOPs, latency on the trial's device) are measured before training
and can be objectives or constraints. With the trial profile on (engine/phases.py), each phase's
seconds are recorded as the user attr ``phases``. Tabular tasks (NAS-Bench-201) look the sample
up instead of training.
"""
from __future__ import annotations

import contextlib
import os
import time
from typing import Any

from nasforge.platform.engine import phases
from nasforge.platform.engine.retention import CHECKPOINT
from nasforge.platform.engine.trial import (
    TrialContext, TrialFailed, objective_values, quiet_libraries, record_constraints, set_cpu_threads,
)

def _record_sample(ctx: TrialContext, trial, sample: dict[str, Any]) -> None:
    trial.set_user_attr("sample", sample)
    trial.set_user_attr("genotype", ctx.space.to_json(sample))


def run_trial(ctx: TrialContext, trial) -> list[float]:
    from nasforge.search_spaces import SampleValidationError

    phases.start_trial()
    with phases.phase("sample"):
        sample = ctx.space.suggest(trial)
        try:
            sample = ctx.space.validate(sample)
        except SampleValidationError as e:
            trial.set_user_attr("invalid", True)
            raise TrialFailed(f"invalid sample: {e}") from None
        _record_sample(ctx, trial, sample)
        trial_dir = ctx.trial_dir(trial.number)
        trial.set_user_attr("trial_dir", trial_dir)
    wait_while_held(ctx.run_dir)
    try:
        return EVALUATE[ctx.kind](ctx, trial, sample, trial_dir)
    finally:
        phases.record(trial)


def wait_while_held(run_dir: str, poll: float = 0.2) -> None:
    """Pause here, the sample recorded and the heartbeat running, while ``<run folder>/HOLD``
    exists (``touch runs/NAME/HOLD`` holds a sweep's next trials; ``rm`` lets them go). The
    fault tests use it to signal or kill a worker whose trial is in a known state. Ctrl-C and
    SIGTERM end the wait like any other part of a trial."""
    from nasforge.platform.engine.storage import HOLD_FILE

    hold = os.path.join(run_dir, HOLD_FILE)
    while os.path.exists(hold):
        time.sleep(poll)


def _look_up(ctx: TrialContext, trial, sample: dict[str, Any], trial_dir: str) -> list[float]:
    """A tabular task scores the sample's architecture by looking it up in its table."""
    arch = ctx.space.arch if hasattr(ctx.space, "arch") and ctx.space.arch is not None else ctx.space
    arch_sample = ctx.space.part_sample(arch, sample) if arch is not ctx.space else sample
    try:
        metrics = ctx.bench.evaluate(arch.key(arch_sample))
    except KeyError as e:
        raise TrialFailed(f"sample not in the table: {e}") from None
    trial.set_user_attr("metrics", metrics)
    if ctx.cfg.constraints:
        record_constraints(ctx.cfg, trial, metrics)
    return objective_values(ctx.cfg, metrics)


def _train(ctx: TrialContext, trial, sample: dict[str, Any], trial_dir: str) -> list[float]:
    """A Lightning task trains the sample, in this process or as a process group of ranks."""
    try:
        if ctx.cfg.trainer.devices > 1:
            # one process group per multi-device trial (contract 6)
            from nasforge.platform.engine.ddp import run_trial_ddp

            return run_trial_ddp(ctx, trial, sample)
        return fit_trial(ctx, trial, sample, trial_dir)
    except BaseException:
        # a pruned or failed trial keeps no checkpoint (checkpoints.keep_top ranks COMPLETE ones)
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(trial_dir, CHECKPOINT))
        raise
    finally:
        with phases.phase("artifacts"):
            attach_artifacts(ctx, trial)


# How a trial is scored, chosen by the context's kind (a tabular task looks up, a Lightning one trains).
EVALUATE = {"tabular": _look_up, "lightning": _train}


def attach_artifacts(ctx: TrialContext, trial) -> None:
    """Attach the trial's diagrams and checkpoint as Optuna artifacts while it still runs, so
    optuna-dashboard shows them. Never fails a trial: a problem is recorded instead."""
    try:
        from nasforge.platform.engine.artifacts import attach_trial_artifacts, trial_files

        files = trial_files(trial)
        if files:
            attach_trial_artifacts(trial.study, trial, files, os.path.join(ctx.run_dir, "artifacts"))
    except Exception as e:  # noqa: BLE001 - a dashboard attachment must not cost a trial
        trial.set_user_attr("artifact_error", f"{type(e).__name__}: {e}"[:300])


def inherit_weights(ctx: TrialContext, trial, net, module, dm, build, measure: bool = True) -> bool:
    """Load the parent's weights (`inheritance.inherit`), measure them once before training (the user
    attr ``inherited_metrics``; ``measure``: rank 0 of a multi-device trial, alone, before the group
    starts) and train the epochs the strategy asked for. Every rank of a multi-device trial calls
    it: all load the same weights and train the same epochs."""
    import dataclasses

    from nasforge.platform.engine.assembly import create_trainer
    from nasforge.platform.engine.inheritance import child_epochs, inherit, system_attrs

    attrs = system_attrs(trial)  # read once: the epochs and the parent
    epochs = child_epochs(attrs)
    if epochs:
        build.trainer_cfg = dataclasses.replace(build.trainer_cfg, max_epochs=epochs)
    if not inherit(ctx, trial, net, attrs):
        return False
    if not measure:
        return True
    with phases.phase("inherit/validate"):  # the measurement: most of a child's time outside fit
        measured = create_trainer(build.trainer_cfg, devices=1).validate(module, datamodule=dm, verbose=False)
    trial.set_user_attr("inherited_metrics", {k: float(v) for k, v in (measured[0] if measured else {}).items()})
    return True


def fit_trial(ctx: TrialContext, trial, sample: dict[str, Any], trial_dir: str,
              rank_zero: bool = True, strategy: Any = "auto", extra_callbacks: list | None = None) -> list[float]:
    """Train one sample with Lightning and return the objective values (records attrs on
    ``trial``, which may be a stand-in on ranks other than 0). ``extra_callbacks`` are added
    to the trainer's (platform/engine/ddp_child.py records each rank's epochs with one)."""
    import lightning as L
    import optuna

    from nasforge.platform.engine import tracking
    from nasforge.platform.engine.assembly import TrialAssembly
    from nasforge.platform.engine.callbacks import FitSetupTimer, NonFiniteLossError

    phase = phases.phase
    with phase("setup"):
        quiet_libraries()
        cfg = ctx.cfg
        set_cpu_threads(cfg.trainer.cpu_threads)
        L.seed_everything(cfg.seed + trial.number, workers=True, verbose=False)
        build = TrialAssembly(ctx, sample)
    with phase("data module"):
        dm = build.datamodule()
    with phase("network + module"):
        net = build.network(dm)
        module = build.module(net, dm)
    with phase("inherit"):  # a morphism child starts from its parent's transformed checkpoint
        inherit_weights(ctx, trial, net, module, dm, build, measure=rank_zero)
    first = cfg.objectives[0]
    with phase("callbacks"):
        cbs = build.callbacks(trial, trial_dir, net, dm, rank_zero)
    history, pruning, ckpt, cost_cb = cbs.history, cbs.pruning, cbs.checkpoint, cbs.cost
    with phase("wandb start"):
        logger = build.logger(trial) if rank_zero else None
    with phase("trainer build"):
        timers = [FitSetupTimer()] if phases.enabled() else []
        trainer = build.trainer(cbs.all + list(extra_callbacks or []) + timers, logger, trial_dir, strategy)
    with phase("diagram"):  # starts the drawing; it runs beside training, joined after fit
        diagram_done = build.draw(trial, trial_dir) if rank_zero else (lambda: None)
    start = time.perf_counter()
    exit_code = 1
    try:
        with phase("fit"):
            for timer in timers:
                timer.start = time.perf_counter()
            trainer.fit(module, datamodule=dm)
        exit_code = 0
    except NonFiniteLossError as e:
        raise TrialFailed(str(e)) from None
    finally:
        fit_seconds = round(time.perf_counter() - start, 3)
        with phase("diagram wait"):
            diagram_done()
        metrics_best = history.best(first.metric, first.direction) or {}
        costs = {**(getattr(cost_cb, "costs", None) or {}), **(getattr(cbs.proxy, "scores", None) or {})}
        metrics = {**costs, **{k: v for k, v in metrics_best.items() if k != "epoch"}}
        if rank_zero:
            trial.set_user_attr("metrics", metrics)
            trial.set_user_attr("history", history.epochs)  # learning curves for the report
            trial.set_user_attr("epochs_run", len(history.epochs))
            trial.set_user_attr("fit_seconds", fit_seconds)
            summary = {f"objective/{o.metric}": metrics.get(o.metric) for o in cfg.objectives}
            with phase("wandb finish"):
                tracking.finish(logger, summary={**summary, "best_epoch": metrics_best.get("epoch")},
                                exit_code=exit_code)
    if pruning is not None and pruning.pruned_epoch is not None:
        trial.set_user_attr("pruned_epoch", pruning.pruned_epoch)
        raise optuna.TrialPruned(f"pruned after epoch {pruning.pruned_epoch}")
    if rank_zero and ckpt.best_model_path:
        trial.set_user_attr("checkpoint", os.path.abspath(ckpt.best_model_path))
    values = objective_values(cfg, metrics)
    if cfg.constraints and rank_zero:
        record_constraints(cfg, trial, metrics)
    return values


