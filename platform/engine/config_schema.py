"""The sweep file's schema: one dataclass per section, defaults in code.

`config` parses a sweep file onto these (unknown keys fail loudly, every value coerced to its
declared type) and checks them; `SweepConfig.to_dict()` is the resolved config that the
platform writes beside the study as ``sweep.yaml``. Import them from `config`, which re-exports
every class here.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml


@dataclass
class DataConfig:
    name: str = "digits"
    path: str | None = None  # a folder or zip (cifar10, camvid, isbi); ~ and env vars expand
    val_fraction: float = 0.2
    subset: int | None = None  # use at most this many training examples
    val_subset: int | None = None  # use at most this many validation examples
    num_workers: int = 0
    options: dict[str, Any] = field(default_factory=dict)  # data-set specific (crop size, ...)
    # LightningCLI's form instead of the fields above: any LightningDataModule (or a built-in name)
    class_path: str | None = None
    init_args: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelConfig:
    """``task.model``: any LightningModule by class path (or a built-in task name), LightningCLI-style."""

    class_path: str = "classification"
    init_args: dict[str, Any] = field(default_factory=dict)
    network_arg: str = "network"  # the constructor argument that receives the built network


@dataclass
class TaskConfig:
    name: str = "classification"
    data: DataConfig = field(default_factory=DataConfig)
    options: dict[str, Any] = field(default_factory=dict)  # fixed hparams (lr, optimizer, ...)
    model: ModelConfig | None = None  # overrides name + options

    @property
    def label(self) -> str:
        """``<task> on <data>`` for headers: the short names, or the class paths."""
        return (f"{self.model.class_path if self.model else self.name} on "
                f"{self.data.class_path or self.data.name}")


@dataclass
class SpacePart:
    name: str = "convnet"
    options: dict[str, Any] = field(default_factory=dict)
    class_path: str | None = None  # a user's Space subclass (its options are `options`)


@dataclass
class StrategyConfig:
    name: str = "tpe"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class BudgetConfig:
    trials: int | None = 10  # trials that end COMPLETE or PRUNED
    timeout: float | None = None  # seconds for this invocation
    max_failures: int | None = None  # stop after this many FAILED trials (default: trials)


@dataclass
class PrunerConfig:
    name: str = "median"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Objective:
    metric: str = "val/acc"
    direction: Literal["maximize", "minimize"] = "maximize"


@dataclass
class Constraint:
    metric: str = "cost/params"
    max: float | None = None
    min: float | None = None


@dataclass
class TrainerConfig:
    accelerator: str = "auto"
    devices: int = 1
    precision: str = "32-true"
    max_epochs: int = 5
    limit_train_batches: float | int | None = None
    limit_val_batches: float | int | None = None
    deterministic: bool = False
    gradient_clip_val: float | None = None
    cpu_threads: int | None = None  # torch intra-op threads per trial on the CPU (default: torch's)


@dataclass
class TrackingConfig:
    project: str = "nasforge"
    entity: str | None = None
    mode: Literal["auto", "online", "offline", "disabled"] = "auto"
    group: str | None = None  # W&B group of the sweep's runs (default: the sweep name; replicates: their arm)


@dataclass
class OneShotConfig:
    """``mode: one_shot`` (engine/oneshot.py): train one supernet, score ``search_trials``
    samples on it with inherited weights, retrain the ``top_k`` best as an ordinary sweep."""

    epochs: int = 10  # supernet training epochs (trainer.max_epochs is for the retrained trials)
    # uniform: one path per batch drawn uniformly (SPOS); fair: FairNAS's strict fairness,
    # every choice of every decision once per round of steps; controller: drawn by the RL
    # controller, whose policy learns from validation batches (ENAS)
    sampling: Literal["uniform", "fair", "controller"] = "uniform"
    controller_every: int = 10  # controller: training steps per drawn path (one policy episode)
    search_trials: int = 100  # samples scored with inherited weights, chosen by `strategy`
    calib_batches: int = 4  # training batches that recalibrate batch norm before each score
    val_batches: int | None = None  # validation batches per score (default: all)
    top_k: int = 2  # best distinct samples retrained from scratch (the retrain sweep's budget)
    # how the search scores a sample (engine/oneshot_rank.py): supernet, its inherited-weight
    # val/acc; proxies, the zero-cost ensemble of `members` on its untrained network; both, the
    # mean of the two quantiles; quantiles are among `reference` random samples scored up front.
    # proxies: chosen on NAS-Bench-201 cells the benchmark does not report (benchmarks/README.md,
    # "One-shot NAS"), where a CPU-sized supernet ranks cells backwards
    rank: Literal["supernet", "proxies", "both"] = "proxies"
    reference: int = 100
    members: list[str] = field(default_factory=lambda: default_members())


def default_members() -> list[str]:
    """The zero-cost ensemble's default proxies: `strategies.proxy_prior.DEFAULT_MEMBERS`, the one
    list (chosen on held-out NAS-Bench-201 cells), read when a config is made."""
    from nasforge.platform.strategies.proxy_prior import DEFAULT_MEMBERS

    return list(DEFAULT_MEMBERS)


@dataclass
class ZeroCostConfig:
    """``mode: zero_cost``: score ``samples`` random samples with ``proxies`` (no training), record
    them as trials of study ``<name>.zero_cost``, retrain the ``top_k`` best by ``rank_by``."""

    samples: int = 100
    top_k: int = 2
    proxies: list[str] = field(default_factory=lambda: ["params", "synflow", "jacob_cov", "naswot"])
    members: list[str] = field(default_factory=lambda: default_members())  # the ensemble's
    rank_by: str = "ensemble"  # a proxy's name, or ensemble


@dataclass
class CheckpointConfig:
    # the best k COMPLETE trials by each objective keep their best.ckpt; null keeps every one's
    keep_top: int | None = 3


@dataclass
class SweepConfig:
    name: str = "sweep"
    seed: int = 0
    task: TaskConfig = field(default_factory=TaskConfig)
    space: list[SpacePart] = field(default_factory=lambda: [SpacePart()])
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    pruner: PrunerConfig = field(default_factory=PrunerConfig)
    objectives: list[Objective] = field(default_factory=lambda: [Objective()])
    constraints: list[Constraint] = field(default_factory=list)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    checkpoints: CheckpointConfig = field(default_factory=CheckpointConfig)
    storage: str | None = None  # default: an embedded file in the run folder
    mode: Literal["multi_trial", "one_shot", "zero_cost"] = "multi_trial"
    oneshot: OneShotConfig = field(default_factory=OneShotConfig)
    zero_cost: ZeroCostConfig = field(default_factory=ZeroCostConfig)
    proxies: list[str] = field(default_factory=list)  # logged as proxy/* before training (engine/proxies.py)
    # put first on sys.path by every process of the sweep (default: the sweep file's folder and the
    # working directory it was started from), so that the user's classes import everywhere
    import_paths: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]
