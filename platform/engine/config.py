"""The sweep file: typed, validated, defaults in code, unknown keys fail loudly.

A sweep file is YAML (read with a safe loader that refuses duplicate keys) that maps onto the
dataclasses of `config_schema`.
`load_sweep(path)` returns a `SweepConfig` or raises `ConfigError` whose message is one line
naming the key at fault and the valid choices (the CLI prints it and exits 2). Names of tasks,
data sets, spaces, strategies and pruners are checked against their registries here, before
anything is written, so a typo never leaves a half-made run folder behind.

The resolved config (every default filled in) is what `SweepConfig.to_dict()` returns; the
platform writes it beside the study as ``sweep.yaml``.

The dataclasses are in `config_schema` (re-exported here: import them from this module).
"""
from __future__ import annotations

import dataclasses
import math
import os
import typing
import warnings
from typing import Any

import yaml

from nasforge.platform.engine.config_schema import (
    DataConfig, ModelConfig, TaskConfig, SpacePart, StrategyConfig, BudgetConfig, PrunerConfig, Objective,
    Constraint, TrainerConfig, TrackingConfig, OneShotConfig, ZeroCostConfig, CheckpointConfig, SweepConfig,
)
from nasforge.platform.engine.zero_cost_config import check_proxy_keys
from nasforge.platform.errors import ConfigError
from nasforge.platform.options import coerce

__all__ = [
    "DataConfig", "ModelConfig", "TaskConfig", "SpacePart", "StrategyConfig", "BudgetConfig", "PrunerConfig",
    "Objective", "Constraint", "TrainerConfig", "TrackingConfig", "OneShotConfig", "ZeroCostConfig", "CheckpointConfig",
    "SweepConfig", "load_sweep", "parse_sweep", "read_resolved", "validate",
]


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
    if o.reference < 2:
        raise ConfigError(f"oneshot.reference: quantiles need >= 2 reference samples, got {o.reference}")
    from nasforge.platform.engine.proxies import PROXIES, check_proxies

    try:
        check_proxies(o.members)
    except ValueError as e:
        raise ConfigError(f"oneshot.members: {e}") from None
    if not o.members or "ensemble" in o.members:
        raise ConfigError(f"oneshot.members: list the ensemble's proxies; valid: {', '.join(PROXIES)}")

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
