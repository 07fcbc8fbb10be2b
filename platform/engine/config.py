"""The sweep file: typed, validated, defaults in code, unknown keys fail loudly.

A sweep file is YAML (read with a safe loader that refuses duplicate keys) that maps onto the
dataclasses below.
`load_sweep(path)` returns a `SweepConfig` or raises `ConfigError` whose message is one line
naming the key at fault and the valid choices (the CLI prints it and exits 2). Names of tasks,
data sets, spaces, strategies and pruners are checked against their registries here, before
anything is written, so a typo never leaves a half-made run folder behind.

The resolved config (every default filled in) is what `SweepConfig.to_dict()` returns; the
platform writes it beside the study as ``sweep.yaml``.

Why this file is over 350 lines: it is the whole sweep-file schema (one dataclass per section,
with the checks of each key beside its declaration), and the checks a section needs (names
against their registries, strategy and pruner options, objectives and constraints) read
better next to the section than in a second module that would import every dataclass back.
"""
from __future__ import annotations

import dataclasses
import math
import os
import typing
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from nasforge.platform.engine.zero_cost_config import ZeroCostConfig, check_proxy_keys
from nasforge.platform.errors import ConfigError
from nasforge.platform.options import coerce

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


# ----------------------------------------------------------------------------- parsing
def _from_mapping(cls: type, data: Any, prefix: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'sweep file'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            where = f"{prefix}.{key}" if prefix else str(key)
            raise ConfigError(f"unknown key {where!r}; valid keys: {', '.join(names)}")
    kwargs = {}
    for name in names:
        if name in data:
            kwargs[name] = coerce(data[name], hints[name], f"{prefix}.{name}" if prefix else name,
                                  from_mapping=_from_mapping)
    return cls(**kwargs)


def _check_names(cfg: SweepConfig) -> None:
    """Check every name against its registry, the data path on this machine, and resolve the
    task's classes (`resolve`)."""
    from nasforge.platform.engine.pruners import PRUNERS
    from nasforge.platform.engine.resolve import add_import_paths, import_class, is_tabular, resolve_task
    from nasforge.platform.strategies import STRATEGIES
    from nasforge.search_spaces import Space, get_space_class, register_space

    from nasforge.tasks.task_factory import DATASETS, TASKS

    add_import_paths(cfg.import_paths)
    short = cfg.task.model is None and cfg.task.data.class_path is None
    if cfg.task.model is None and cfg.task.name not in TASKS:
        raise ConfigError(f"task.name: unknown task {cfg.task.name!r}; valid: {', '.join(sorted(TASKS))} "
                          "(or give task.model.class_path)")
    if short:
        valid_data = TASKS[cfg.task.name].datasets
        if cfg.task.data.name not in valid_data:
            raise ConfigError(
                f"task.data.name: unknown data set {cfg.task.data.name!r} for task {cfg.task.name!r}; "
                f"valid: {', '.join(valid_data)} (or give task.data.class_path)"
            )
    if cfg.task.data.class_path is None:
        if cfg.task.data.name not in DATASETS:
            raise ConfigError(f"task.data.name: unknown data set {cfg.task.data.name!r}; valid: {', '.join(DATASETS)}")
        data = DATASETS[cfg.task.data.name]
        if cfg.task.data.path is not None:
            path = os.path.expandvars(os.path.expanduser(cfg.task.data.path))
            if not os.path.exists(path):
                raise ConfigError(f"task.data.path: {cfg.task.data.path!r} does not exist")
            cfg.task.data.path = path
        elif data.needs_path and not data.can_download():
            raise ConfigError(
                f"task.data.path: data set {cfg.task.data.name!r} needs a local folder or zip "
                f"(no default was found: {data.default_hint})"
            )
        path = cfg.task.data.path or data.default_path()
        if path is not None:
            try:
                data.check(path, dict(cfg.task.data.options))
            except ValueError as e:  # a malformed data set, e.g. an annotation outside its image
                raise ConfigError(f"task.data: {e}") from None
    if not cfg.space:
        raise ConfigError("space: list at least one space")
    for i, part in enumerate(cfg.space):
        if part.class_path is not None:
            cls = import_class(part.class_path, f"space[{i}].class_path")
            if not issubclass(cls, Space):
                raise ConfigError(f"space[{i}].class_path: {part.class_path!r} is not a nasforge Space subclass")
            try:
                register_space(cls)
            except ValueError as e:
                raise ConfigError(f"space[{i}].class_path: {e}") from None
            part.name = cls.name
        try:
            get_space_class(part.name)
        except ValueError as e:
            raise ConfigError(f"space[{i}].name: {e}") from None
    if cfg.strategy.name not in STRATEGIES:
        raise ConfigError(f"strategy.name: unknown strategy {cfg.strategy.name!r}; valid: {', '.join(STRATEGIES)}")
    if cfg.pruner.name not in PRUNERS:
        raise ConfigError(f"pruner.name: unknown pruner {cfg.pruner.name!r}; valid: {', '.join(PRUNERS)}")
    if not is_tabular(cfg):
        resolve_task(cfg)


def _check_search(cfg: SweepConfig) -> None:
    """Build the space, the sampler and the pruner once, so that a bad ``space[].options``,
    ``strategy.options`` or ``pruner.options`` is a ConfigError here, before anything is written
    (optuna and the space declarations only: about 0.3 s, no torch)."""
    from nasforge.platform.engine.pruners import create_pruner
    from nasforge.platform.strategies import create_sampler
    from nasforge.search_spaces import create_composite

    from nasforge.platform.engine.resolve import check_space_paths, is_tabular, resolve_task, space_parts

    try:
        space = create_composite(space_parts(cfg))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"space: {e}".splitlines()[0]) from None
    if not is_tabular(cfg):
        check_space_paths(resolve_task(cfg), space)
    with warnings.catch_warnings():  # Optuna's ExperimentalWarning belongs to the run, not the check
        warnings.simplefilter("ignore")
        create_sampler(cfg.strategy, space, cfg.seed, cfg.directions)
        create_pruner(cfg.pruner, cfg.trainer.max_epochs)


def validate(cfg: SweepConfig) -> SweepConfig:
    if not cfg.name or any(c in cfg.name for c in "/\\ ") or cfg.name.startswith("."):
        raise ConfigError(f"name: {cfg.name!r} must be non-empty, with no spaces or slashes")
    if not cfg.objectives:
        raise ConfigError("objectives: list at least one objective (metric + direction)")
    metrics = [o.metric for o in cfg.objectives]
    if len(set(metrics)) != len(metrics):
        raise ConfigError(f"objectives: metrics repeat: {metrics}")
    b = cfg.budget
    if b.trials is None and b.timeout is None:
        raise ConfigError("budget: give trials, timeout or both")
    if b.trials is not None and b.trials < 1:
        raise ConfigError(f"budget.trials: must be >= 1, got {b.trials}")
    if b.timeout is not None and not (b.timeout > 0 and math.isfinite(b.timeout)):
        raise ConfigError(f"budget.timeout: must be a positive number of seconds, got {b.timeout}")
    if cfg.trainer.devices < 1:
        raise ConfigError(f"trainer.devices: must be >= 1, got {cfg.trainer.devices}")
    if cfg.trainer.cpu_threads is not None and cfg.trainer.cpu_threads < 1:
        raise ConfigError(f"trainer.cpu_threads: must be >= 1, got {cfg.trainer.cpu_threads}")
    if cfg.trainer.max_epochs < 1:
        raise ConfigError(f"trainer.max_epochs: must be >= 1, got {cfg.trainer.max_epochs}")
    if cfg.multi_objective and cfg.pruner.name != "none":
        raise ConfigError(
            f"pruner.name: Optuna cannot prune multi-objective sweeps; set pruner.name to none "
            f"(got {cfg.pruner.name!r})"
        )
    if cfg.checkpoints.keep_top is not None and cfg.checkpoints.keep_top < 0:
        raise ConfigError(f"checkpoints.keep_top: must be >= 0 (or null: keep all), got {cfg.checkpoints.keep_top}")
    for i, c in enumerate(cfg.constraints):
        if c.max is None and c.min is None:
            raise ConfigError(f"constraints[{i}]: give max, min or both for {c.metric!r}")
    _check_names(cfg)
    _check_search(cfg)
    if cfg.mode == "one_shot":
        _check_oneshot(cfg)
    check_proxy_keys(cfg)
    return cfg


def _check_oneshot(cfg: SweepConfig) -> None:
    """What weight sharing needs: a space with a supernet (alone: nothing else to search), one
    accuracy objective, positive sizes."""
    from nasforge.search_spaces import Space, get_space_class, list_spaces

    o = cfg.oneshot
    for key in ("epochs", "search_trials", "calib_batches", "top_k", "controller_every"):
        if getattr(o, key) < 1:
            raise ConfigError(f"oneshot.{key}: must be >= 1, got {getattr(o, key)}")
    if o.val_batches is not None and o.val_batches < 1:
        raise ConfigError(f"oneshot.val_batches: must be >= 1 or null, got {o.val_batches}")

    def has_supernet(name: str) -> bool:
        return get_space_class(name).build_supernet is not Space.build_supernet

    if len(cfg.space) != 1 or not has_supernet(cfg.space[0].name):
        raise ConfigError(f"space: mode one_shot needs one space that builds a supernet; got "
                          f"{', '.join(p.name for p in cfg.space)}; valid: "
                          f"{', '.join(n for n in list_spaces() if has_supernet(n))}")
    if cfg.task.name != "classification" or [ob.metric for ob in cfg.objectives] != ["val/acc"]:
        raise ConfigError("objectives: mode one_shot scores classification samples by val/acc with "
                          "inherited weights; set task.name: classification and one objective val/acc "
                          f"(got {cfg.task.name}, {', '.join(ob.metric for ob in cfg.objectives)})")


def parse_sweep(data: Any, source: str = "<sweep>") -> SweepConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a sweep file is a YAML mapping, got {type(data).__name__}")
    return validate(_from_mapping(SweepConfig, data, ""))


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses a key given twice in one mapping (PyYAML keeps the last
    one silently, so a sweep would run with a value its author did not mean)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, typing.Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (PyYAML would keep the last one silently)",
                    key_node.start_mark)
            if isinstance(key, typing.Hashable):
                seen.add(key)
        return super().construct_mapping(node, deep)


def _read_yaml(path: str) -> Any:
    if not os.path.isfile(path):
        raise ConfigError(f"sweep file {path!r} does not exist")
    try:
        with open(path) as f:
            data = yaml.load(f, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    return data


def read_resolved(path: str | os.PathLike) -> SweepConfig:
    """The resolved config a sweep left in its run folder (``sweep.yaml``), typed but not
    validated again: it was checked when the sweep started, and reading results back (status,
    best, report, dashboard, promote) must not import Lightning or the user's classes, which may
    not be importable on the machine that reads (another machine reading a PostgreSQL study).
    Classes are resolved where they are used (`TrialContext.create`)."""
    path = os.fspath(path)
    return _from_mapping(SweepConfig, _read_yaml(path), "")


def load_sweep(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> SweepConfig:
    """Read, apply dotted overrides (``{"budget.trials": 20}``) and validate a sweep file."""
    path = os.fspath(path)
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a sweep file is a YAML mapping, got {type(data).__name__}")
    if "import_paths" not in data:  # the user's classes import from the sweep file's folder and the cwd
        data["import_paths"] = list(dict.fromkeys([os.path.dirname(os.path.abspath(path)), os.getcwd()]))
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{dotted}: {p} is not a mapping in {path}")
        node[leaf] = value
    return parse_sweep(data, path)
