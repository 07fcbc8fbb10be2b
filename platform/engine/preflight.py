"""The preflight: one sample trained for one step before a sweep costs anything (contract 10).

`preflight(cfg, root)` runs, in this order, everything a trial will do, on a scale of seconds:
the storage opens (or, for a new local sweep, its folder can be made), W&B can start in the mode
the sweep asks for, the data module is built and one batch is read, one valid sample of the space
is drawn and its network built, the task's LightningModule is instantiated (once per choice of
each searched categorical hyperparameter, so ``optimizer: [sgd, lbfgs]`` fails whichever is
drawn), and one training step and one validation step run with the sweep's trainer settings
(accelerator, precision, clipping; ``limit_*_batches=1``, one epoch, no logger, no checkpoint),
after which every objective and constraint metric must have been logged. Tabular tasks look one
sample up instead of training. A one-shot sweep (``mode: one_shot``) is checked as its retraining
phase (an ordinary trial of the same file), and its supernet is built and trains and validates one
step with one path active, before the supernet's epochs start.

Every failure is a `ConfigError` (one line naming the key at fault, exit 2) raised before
anything is written: the Trainer runs in a temporary folder that is removed afterwards, and
nothing touches the run folder or the storage. The pieces come from the one trial assembly
(`engine.assembly.TrialAssembly`), so whatever a trial builds, the preflight builds too.
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from nasforge.platform.engine.config import SweepConfig
from nasforge.platform.errors import ConfigError


@dataclass
class PreflightReport:
    """What the preflight checked and how long each step took (seconds)."""

    steps: dict[str, float] = field(default_factory=dict)
    metrics: list[str] = field(default_factory=list)
    sample: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return sum(self.steps.values())


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:300]}" if text else type(e).__name__


class _Step:
    """Time one step; any exception becomes a ConfigError naming ``key``."""

    def __init__(self, report: PreflightReport, name: str, key: str):
        self.report, self.name, self.key = report, name, key

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, kind, e, tb):
        self.report.steps[self.name] = round(time.perf_counter() - self.start, 3)
        if e is None or isinstance(e, (ConfigError, KeyboardInterrupt, SystemExit)):
            return False
        from nasforge.platform.engine.trial import TrialFailed

        # instantiate's own one line already names the class
        message = str(e).strip().splitlines()[0] if isinstance(e, TrialFailed) and str(e).strip() else _one_line(e)
        raise ConfigError(f"preflight: {self.key}: {message}") from None


# ----------------------------------------------------------------------------- storage and W&B
def check_tracking(cfg: SweepConfig) -> str:
    """The W&B mode the trials will use, checked: online needs credentials."""
    from nasforge.platform.engine import tracking

    try:
        mode = tracking.resolve_mode(cfg.tracking.mode)
    except ValueError as e:
        raise ConfigError(f"tracking.mode: {e}") from None
    if mode == "online" and not tracking.has_credentials():
        raise ConfigError(
            "tracking.mode: W&B online needs credentials (WANDB_API_KEY or `wandb login`); "
            "use tracking.mode: offline (run files, `wandb sync` later) or disabled"
        )
    if mode != "disabled":
        import wandb

        try:
            wandb.Settings(mode=mode, silent=True)
        except Exception as e:  # noqa: BLE001 - pydantic's ValidationError: a bad WANDB_* variable
            raise ConfigError(f"tracking: W&B refuses its settings: {_one_line(e)}") from None
    return mode


# ----------------------------------------------------------------------------- one sample
def draw_sample(space, seed: int) -> dict[str, Any]:
    """One valid sample of ``space`` (random, seeded), or a one-line config error."""
    import random

    from nasforge.search_spaces import SampleValidationError

    try:
        return space.sample(random.Random(seed))
    except SampleValidationError as e:
        raise ConfigError(f"space: {e}") from None


def _categorical_module_choices(ctx, sample: dict[str, Any]) -> list[dict[str, Any]]:
    """The sample with each other choice of every searched categorical init arg of the task's
    LightningModule (a ``params`` dimension whose key path is in ``model.init_args``), so that a
    bad choice fails here whichever one a trial would draw."""
    from nasforge.search_spaces.space import Categorical

    variants = []
    for dim in ctx.space.dims:
        keys = ctx.keys.get(dim.label)
        if isinstance(dim, Categorical) and keys and keys[0] == "model" and dim.label in sample:
            variants += [{**sample, dim.label: c} for c in dim.choices if c != sample[dim.label]]
    return variants


def _check_metrics(cfg: SweepConfig, logged: set[str]) -> None:
    for i, o in enumerate(cfg.objectives):
        if o.metric not in logged:
            raise ConfigError(f"objectives[{i}].metric: {o.metric!r} is never logged; logged: "
                              f"{', '.join(sorted(logged)) or 'nothing'}")
    for i, c in enumerate(cfg.constraints):
        if c.metric not in logged:
            raise ConfigError(f"constraints[{i}].metric: {c.metric!r} is never logged; logged: "
                              f"{', '.join(sorted(logged)) or 'nothing'}")


def _train_one_step(ctx, sample: dict[str, Any], report: PreflightReport, workdir: str) -> set[str]:
    """Data, network, module and one training + one validation step; the metric names logged."""
    import lightning as L

    from nasforge.platform.engine.assembly import TrialAssembly, data_shape
    from nasforge.platform.engine.callbacks import FiniteLossGuard, MetricHistory
    from nasforge.platform.engine.trial import quiet_libraries, set_cpu_threads

    quiet_libraries()
    set_cpu_threads(ctx.cfg.trainer.cpu_threads)
    L.seed_everything(ctx.cfg.seed, workers=True, verbose=False)
    build = TrialAssembly(ctx, sample)
    data_key = "task.data"
    dataset = _built_in_dataset(ctx)
    if ctx.data_path is None and dataset is not None and dataset.needs_path:
        data_key = f"task.data.path: none given and no local copy of {dataset.name!r}, so a download was tried"
    with _Step(report, "data", data_key):
        dm = build.datamodule()
        dm.prepare_data()
        dm.setup("fit")
        next(iter(dm.train_dataloader()))
        next(iter(dm.val_dataloader()))
    with _Step(report, "network", "space"):
        net = build.network(dm)
    module_key = "task.options" if ctx.cfg.task.model is None else "task.model"  # where its init args come from
    with _Step(report, "module", module_key):
        module = build.module(net, dm)
        for variant in _categorical_module_choices(ctx, sample):
            TrialAssembly(ctx, variant).module(net, dm)
    history = MetricHistory()
    callbacks = [history, FiniteLossGuard()]
    cost = None
    if net is not None:  # the cost of the searched network, at the data's real input size
        from nasforge.platform.engine.cost import CostCallback

        cost = CostCallback(data_shape(dm)[0], latency_runs=1, warmup_runs=0)
        callbacks.append(cost)
    with _Step(report, "trainer", "trainer"):
        trainer = _one_step_trainer(build.trainer_cfg, workdir, callbacks)  # the sample's trainer values too
    with _Step(report, "train+val step", "one training and validation step (task.options, space, trainer)"):
        trainer.fit(module, datamodule=dm)
    logged = set(trainer.callback_metrics) | set(cost.costs if cost is not None else ())
    for row in history.epochs:
        logged |= set(row) - {"epoch"}
    return logged


def _one_step_trainer(t, workdir: str, callbacks: list):
    """A Lightning Trainer with the sweep's trainer settings ``t`` that runs one training and one
    validation step on one device, writing nothing outside ``workdir``."""
    from nasforge.platform.engine.assembly import create_trainer

    return create_trainer(t, devices=1, default_root_dir=workdir, max_epochs=1, limit_train_batches=1,
                          limit_val_batches=1, callbacks=callbacks)


def _train_supernet_step(ctx, report: PreflightReport, workdir: str) -> None:
    """A one-shot sweep's supernet, built at the data's shape as `oneshot.train_supernet` builds
    it, trains one step with one path drawn as its training draws them, and validates one step."""
    from nasforge.platform.engine.assembly import TrialAssembly, data_shape
    from nasforge.platform.engine.callbacks import FiniteLossGuard
    from nasforge.platform.engine.single_path import SinglePathSampling

    build = TrialAssembly(ctx, {})  # the task's fixed init args; the supernet holds every path
    with _Step(report, "supernet", "space (its supernet)"):
        dm = build.datamodule()
        dm.prepare_data()
        dm.setup("fit")
        module = build.module(ctx.space.build_supernet(*data_shape(dm)), dm)
    # the controller's draws need its study; the path mechanics it drives are the uniform ones'
    paths = SinglePathSampling(ctx.space, ctx.cfg.seed, fair=ctx.cfg.oneshot.sampling == "fair")
    with _Step(report, "supernet step", "one supernet training and validation step (oneshot, space, trainer)"):
        _one_step_trainer(ctx.cfg.trainer, workdir, [paths, FiniteLossGuard()]).fit(module, datamodule=dm)


def _built_in_dataset(ctx):
    """The built-in data set of the short form ``task.data: {name: ...}`` (None for a class path)."""
    from nasforge.tasks.task_factory import DATASETS

    d = ctx.cfg.task.data
    return DATASETS.get(d.name) if d.class_path is None else None


def _look_up_one(ctx, sample: dict[str, Any], report: PreflightReport) -> set[str]:
    with _Step(report, "table", "task.data"):
        arch = ctx.space.arch if getattr(ctx.space, "arch", None) is not None else ctx.space
        arch_sample = ctx.space.part_sample(arch, sample) if arch is not ctx.space else sample
        return set(ctx.bench.evaluate(arch.key(arch_sample)))


def preflight(cfg: SweepConfig, root: str | os.PathLike = "runs") -> PreflightReport:
    """Check ``cfg`` end to end on one sample; raise `ConfigError` (nothing written) on any fault."""
    from nasforge.platform.engine.storage import check_storage, run_dir
    from nasforge.platform.engine.trial import TrialContext

    root = os.fspath(root)
    report = PreflightReport()
    with _Step(report, "storage", "storage"):
        check_storage(cfg, root)
    with _Step(report, "tracking", "tracking"):
        check_tracking(cfg)
    with _Step(report, "space", "space"):
        ctx = TrialContext.create(cfg, run_dir(cfg.name, root))
        report.sample = draw_sample(ctx.space, cfg.seed)
    with tempfile.TemporaryDirectory(prefix="nasforge-preflight-") as workdir:
        ctx.run_dir = workdir  # nothing of the preflight lands in the run folder
        if ctx.kind == "tabular":
            logged = _look_up_one(ctx, report.sample, report)
        else:
            logged = _train_one_step(ctx, report.sample, report, workdir)  # also a one-shot sweep's retraining
            if cfg.mode == "one_shot":
                _train_supernet_step(ctx, report, workdir)
    report.metrics = sorted(logged)
    _check_metrics(cfg, logged)
    return report
