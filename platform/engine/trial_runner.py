"""One trial: sample -> network -> task LightningModule -> Lightning fit -> objective values.

`TrialContext` holds what every trial of a sweep shares (config, space, task and data
classes, run folder); `run_trial(ctx, trial)` runs one trial in this process and returns the
objective values, or raises:

* ``optuna.TrialPruned`` when the pruner stopped it;
* `TrialFailed` with a one-line reason (an invalid sample, a non-finite loss, a metric that was
  never logged); the sweep records the reason and goes on;
* anything else is a crash inside the trial: the sweep records it as a failure too.

The objective values of a trained trial come from one epoch: the best by the first objective,
whose checkpoint (``trials/<n>/best.ckpt``) is kept for promotion. ``cost/*`` metrics (params,
FLOPs, latency on the trial's device) are measured before training and can be objectives or
constraints. Tabular tasks (NAS-Bench-201) look the sample up instead of training.
"""
from __future__ import annotations

import os
import time
from typing import Any

from nasforge.platform.engine.trial import (
    TrialContext, TrialFailed, objective_values, quiet_libraries, record_constraints, set_cpu_threads,
)

def _record_sample(ctx: TrialContext, trial, sample: dict[str, Any]) -> None:
    trial.set_user_attr("sample", sample)
    trial.set_user_attr("genotype", ctx.space.to_json(sample))


def run_trial(ctx: TrialContext, trial) -> list[float]:
    from nasforge.search_spaces import SampleValidationError

    sample = ctx.space.suggest(trial)
    try:
        sample = ctx.space.validate(sample)
    except SampleValidationError as e:
        trial.set_user_attr("invalid", True)
        raise TrialFailed(f"invalid sample: {e}") from None
    _record_sample(ctx, trial, sample)
    trial_dir = ctx.trial_dir(trial.number)
    trial.set_user_attr("trial_dir", trial_dir)

    if ctx.task.kind == "tabular":
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

    try:
        if ctx.cfg.trainer.devices > 1:
            # one process group per multi-device trial (contract 6)
            from nasforge.platform.engine.ddp import run_trial_ddp

            return run_trial_ddp(ctx, trial, sample)
        return fit_trial(ctx, trial, sample, trial_dir)
    finally:
        attach_artifacts(ctx, trial)


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


def fit_trial(ctx: TrialContext, trial, sample: dict[str, Any], trial_dir: str,
              rank_zero: bool = True, strategy: Any = "auto", extra_callbacks: list | None = None) -> list[float]:
    """Train one sample with Lightning and return the objective values (records attrs on
    ``trial``, which may be a stand-in on ranks other than 0). ``extra_callbacks`` are added
    to the trainer's (platform/engine/ddp_child.py records each rank's epochs with one)."""
    import lightning as L
    import optuna
    from lightning.pytorch.callbacks import ModelCheckpoint

    from nasforge.platform.engine import tracking
    from nasforge.platform.engine.callbacks import (
        DropPathSchedule, FiniteLossGuard, MetricHistory, NonFiniteLossError, OptunaPruning,
    )

    quiet_libraries()
    cfg = ctx.cfg
    module_opts, data_opts, trainer_opts = ctx.split_options(sample)
    set_cpu_threads(cfg.trainer.cpu_threads)
    L.seed_everything(cfg.seed + trial.number, workers=True, verbose=False)
    dm = ctx.datamodule(data_opts)
    net = ctx.space.build(sample, dm.input_shape, dm.num_classes)
    try:
        module = ctx.task.load()(network=net, num_classes=dm.num_classes, **module_opts)
    except TypeError as e:
        raise TrialFailed(f"task {ctx.task.name!r}: {e}") from None
    if rank_zero:
        try:
            files = ctx.space.draw(sample, os.path.join(trial_dir, "architecture"))
            if files:
                trial.set_user_attr("diagrams", files)
        except Exception as e:  # a picture must never cost a trial
            trial.set_user_attr("diagram_error", f"{type(e).__name__}: {e}")

    first = cfg.objectives[0]
    history = MetricHistory()
    callbacks: list[Any] = [history, FiniteLossGuard()]
    if DropPathSchedule.applies(net):
        callbacks.append(DropPathSchedule())
    pruning = None
    if cfg.pruner.name != "none" and first.metric.startswith(("val/", "train/")):
        pruning = OptunaPruning(trial if rank_zero else None, first.metric)
        callbacks.append(pruning)
    ckpt = ModelCheckpoint(dirpath=trial_dir, filename="best", monitor=first.metric,
                           mode="max" if first.direction == "maximize" else "min",
                           save_top_k=1, save_weights_only=False, enable_version_counter=False)
    callbacks.append(ckpt)
    cost_cb = None
    try:
        from nasforge.platform.engine.cost import CostCallback

        cost_cb = CostCallback(dm.input_shape)
        callbacks.append(cost_cb)
    except ImportError:
        pass
    extra = getattr(ctx.task.load(), "extra_callbacks", None)
    if callable(extra):
        callbacks.extend(extra(trial_dir))
    callbacks.extend(extra_callbacks or [])

    config = {"sweep": cfg.name, "trial": trial.number, "params": dict(trial.params), "sample": sample,
              "task": cfg.task.name, "data": cfg.task.data.name, "space": ctx.space.name}
    logger = tracking.create_logger(cfg.tracking, cfg.name, trial.number, ctx.run_dir, config) if rank_zero else None
    if logger is not None:
        trial.set_user_attr("wandb_run_dir", tracking.run_folder(logger))
    t = cfg.trainer
    trainer = L.Trainer(
        max_epochs=int(trainer_opts.get("epochs", t.max_epochs)),
        accelerator=t.accelerator, devices=t.devices if strategy != "auto" else 1, strategy=strategy,
        precision=t.precision, logger=logger if logger is not None else False, callbacks=callbacks,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=trial_dir,
        limit_train_batches=t.limit_train_batches, limit_val_batches=t.limit_val_batches,
        deterministic=t.deterministic, gradient_clip_val=t.gradient_clip_val,
        num_sanity_val_steps=0, log_every_n_steps=10,
    )
    start = time.perf_counter()
    exit_code = 1
    try:
        trainer.fit(module, datamodule=dm)
        exit_code = 0
    except NonFiniteLossError as e:
        raise TrialFailed(str(e)) from None
    finally:
        metrics_best = history.best(first.metric, first.direction) or {}
        costs = dict(getattr(cost_cb, "costs", None) or {})
        metrics = {**costs, **{k: v for k, v in metrics_best.items() if k != "epoch"}}
        if rank_zero:
            trial.set_user_attr("metrics", metrics)
            trial.set_user_attr("history", history.epochs)  # learning curves for the report
            trial.set_user_attr("epochs_run", len(history.epochs))
            trial.set_user_attr("fit_seconds", round(time.perf_counter() - start, 3))
            summary = {f"objective/{o.metric}": metrics.get(o.metric) for o in cfg.objectives}
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


