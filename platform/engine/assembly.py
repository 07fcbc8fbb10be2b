"""The trial assembly: what a trial trains, built from a sample in one place.

`TrialAssembly(ctx, sample)` splits the task options and the searched hparams into what the
LightningModule, the data module and the Trainer each take, then builds, in this order, the data
module, the network (`build_network`: ``space.build`` with the data module's input shape and
classes, or the task's head on ``space.build_backbone``), the task's
LightningModule with the network injected, the callbacks through which search reaches training
(metric history, NaN guard, drop-path schedule, pruning, best checkpoint, cost, the task's own),
the W&B logger and the Trainer; the architecture diagram is drawn beside training. The
in-process trial and every DDP rank (`trial_runner.fit_trial`)
and the registry (`registry.promote.load`, `registry.promote.evaluate`) build from here, so a network is
rebuilt for promotion exactly as it was trained. Lightning is imported inside the methods.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Callable

from nasforge.platform.engine.trial import TrialContext, TrialFailed


def instantiate(cls: type, init_args: dict[str, Any], injected: dict[str, Any]):
    """``cls(**injected, **init_args)``: a LightningModule or a data module with the platform's
    arguments injected (the network, the number of classes, the seed); a constructor that fails
    fails the trial with its reason in one line. A data module is checked against the
    `ShapedDataModule` protocol (`data_shape`) when a network is built for it."""
    try:
        return cls(**injected, **init_args)
    except (TypeError, ValueError) as e:
        raise TrialFailed(f"{cls.__name__}: {e}") from None


def data_shape(dm) -> tuple[tuple[int, ...], int]:
    """(input shape, number of classes) of a data module (`tasks.protocols.ShapedDataModule`): read
    from its attributes, after ``prepare_data`` + ``setup`` when they are learnt from the data."""
    from nasforge.tasks.protocols import missing_shape

    if missing_shape(dm):
        dm.prepare_data()
        dm.setup("fit")
    missing = missing_shape(dm)
    if missing:
        raise TrialFailed(f"{type(dm).__name__} does not expose {' and '.join(missing)} (the ShapedDataModule "
                          "protocol: input_shape (C, H, W) and num_classes), so no network can be built for it")
    return tuple(int(s) for s in dm.input_shape), int(dm.num_classes)


def build_network(space, sample: dict[str, Any], input_shape: tuple[int, ...], num_classes: int, task_cls,
                  module_options: dict[str, Any] | None = None):
    """The network the task receives as ``network=``. A task class with
    ``create_network(backbone, num_classes, **options)`` (detection) puts its own head on the
    space's backbone (``space.build_backbone``: each stage's feature map, DESIGN contract 11);
    every other task gets the space's whole network (``space.build``). A checkpoint's
    ``network.`` weights fit what this returns."""
    create = getattr(task_cls, "create_network", None)
    if create is None:
        return space.build(sample, input_shape, num_classes)
    return create(space.build_backbone(sample, input_shape), num_classes, **dict(module_options or {}))


def create_trainer(t=None, **overrides):
    """The house's Lightning Trainer: quiet (no progress bar, model summary, sanity steps, logger
    or checkpointing unless ``overrides`` ask for them), with the sweep's trainer settings ``t``
    (`config.TrainerConfig`: accelerator, devices, precision, epochs, batch limits,
    determinism, gradient clipping) when given, else one CPU device. Every Trainer of the
    platform (a trial, the preflight's step, the supernet, the registry's evaluation and
    adaptive training) and of the benchmarks is made here, so a setting is honoured everywhere."""
    import lightning as L

    kwargs: dict[str, Any] = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                                  enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    if t is not None:
        kwargs.update(accelerator=t.accelerator, devices=t.devices, precision=t.precision, max_epochs=t.max_epochs,
                      limit_train_batches=t.limit_train_batches, limit_val_batches=t.limit_val_batches,
                      deterministic=t.deterministic, gradient_clip_val=t.gradient_clip_val)
    kwargs.update(overrides)
    return L.Trainer(**kwargs)


class TrialAssembly:
    """Everything one sample needs for training; see the module docstring for the order."""

    def __init__(self, ctx: TrialContext, sample: dict[str, Any]):
        self.ctx, self.sample = ctx, sample
        self.module_options, self.data_options, self.trainer_cfg = ctx.split_options(sample)

    def datamodule(self):
        spec = self.ctx.resolved.data
        injected = {"seed": self.ctx.cfg.seed} if "seed" in spec.injected else {}
        return instantiate(spec.load(), self.data_options, injected)

    def network(self, dm):
        if not self.ctx.resolved.network_arg:
            return None  # a pure hyperparameter search: the module builds its own
        shape, classes = data_shape(dm)
        return build_network(self.ctx.space, self.sample, shape, classes, self.ctx.resolved.model.load(),
                             self.module_options)

    def module(self, network, dm):
        r = self.ctx.resolved
        injected: dict[str, Any] = {r.network_arg: network} if r.network_arg else {}
        if "num_classes" in r.model.injected:
            injected["num_classes"] = data_shape(dm)[1]
        return instantiate(r.model.load(), self.module_options, injected)

    def callbacks(self, trial, trial_dir: str, network, dm, rank_zero: bool = True) -> "TrialCallbacks":
        from nasforge.platform.engine.callbacks import (
            BestCheckpoint, DropPathSchedule, FiniteLossGuard, MetricHistory, OptunaPruning,
        )

        cfg = self.ctx.cfg
        first = cfg.objectives[0]
        out = TrialCallbacks(history=MetricHistory())
        out.all = [out.history, FiniteLossGuard()]
        if DropPathSchedule.applies(network):
            out.all.append(DropPathSchedule())
        if cfg.pruner.name != "none" and first.metric.startswith(("val/", "train/")):
            out.pruning = OptunaPruning(trial if rank_zero else None, first.metric)
            out.all.append(out.pruning)
        out.checkpoint = BestCheckpoint(trial_dir, first.metric, "max" if first.direction == "maximize" else "min")
        out.all.append(out.checkpoint)
        if network is not None:  # the cost of the searched network, at the data's real input size
            from nasforge.platform.engine.cost import CostCallback

            # latency takes timed forward passes: only when an objective or constraint reads it
            asked = {o.metric for o in cfg.objectives} | {c.metric for c in cfg.constraints}
            out.cost = CostCallback(data_shape(dm)[0], latency="cost/latency_ms" in asked)
            out.all.append(out.cost)
        if cfg.proxies:
            from nasforge.platform.engine.proxy_callback import ProxyCallback

            out.proxy = ProxyCallback(cfg.proxies, cfg.seed)
            out.all.append(out.proxy)
        extra = getattr(self.ctx.resolved.model.load(), "extra_callbacks", None)
        if callable(extra):
            out.all.extend(extra(trial_dir))
        return out

    def logger(self, trial):
        """The trial's W&B logger (None when tracking is disabled); records its run folder."""
        from nasforge.platform.engine import tracking

        cfg = self.ctx.cfg
        config = {"sweep": cfg.name, "trial": trial.number, "params": dict(trial.params), "sample": self.sample,
                  "task": self.ctx.resolved.model.class_path,
                  "data": self.ctx.resolved.data.class_path, "space": self.ctx.space.name}
        logger = tracking.create_logger(cfg.tracking, cfg.name, trial.number, self.ctx.run_dir, config)
        if logger is not None:
            trial.set_user_attr("wandb_run_dir", tracking.run_folder(logger))
        return logger

    def trainer(self, callbacks: list, logger, trial_dir: str, strategy: Any = "auto"):
        t = self.trainer_cfg
        return create_trainer(t, devices=t.devices if strategy != "auto" else 1, strategy=strategy,
                              logger=logger if logger is not None else False, callbacks=callbacks,
                              enable_checkpointing=True, default_root_dir=trial_dir, log_every_n_steps=10)

    def draw(self, trial, trial_dir: str) -> Callable[[], None]:
        """Draw the architecture diagram (rank 0) in a background thread, so that it overlaps
        training instead of adding to the trial (matplotlib holds the GIL far less than it takes
        to draw; torch's kernels release it). Returns the function that waits for the drawing and
        records its files on the trial; a picture must never cost a trial."""
        out: dict[str, Any] = {}

        def draw() -> None:
            try:
                out["files"] = self.ctx.space.draw(self.sample, os.path.join(trial_dir, "architecture"))
            except Exception as e:  # noqa: BLE001
                out["error"] = f"{type(e).__name__}: {e}"

        thread = threading.Thread(target=draw, name=f"nasforge-diagram-{trial.number}", daemon=True)
        thread.start()

        def finish() -> None:
            thread.join()
            if out.get("files"):
                trial.set_user_attr("diagrams", out["files"])
            if "error" in out:
                trial.set_user_attr("diagram_error", out["error"])

        return finish


class TrialCallbacks:
    """The callbacks of one trial, with handles on the ones whose state the trial reads after fit."""

    def __init__(self, history):
        self.history = history
        self.all: list[Any] = []
        self.pruning = None
        self.checkpoint = None
        self.cost = None
        self.proxy = None
