"""Class resolution: a sweep file's ``task.model`` / ``task.data`` become classes and checked init args.

LightningCLI's conventions: a part is ``{class_path: pkg.mod.Class, init_args: {...}}``; built-in
names (``classification``, ``cifar10``, ...) and the names installed plugins declare under the
``nasforge.tasks`` entry-point group are short aliases of class paths. Classes are imported here
and nowhere else, the same way in every process that reads a sweep's config (the sweep, its
``--workers``, each DDP rank, promote, the registry, report and dashboard): the config's
``import_paths`` (the sweep file's folder and the working directory it was started from) go on
``sys.path`` first. ``init_args`` are checked against the class's signature by jsonargparse (what
LightningCLI uses), which also fills every default in, so the *resolved config* is complete:

    {"model": {"class_path", "init_args"}, "data": {"class_path", "init_args"}, "trainer": {...}}

A searched value is addressed in it by dotted path (``model.init_args.lr``, ``trainer.max_epochs``);
a bare name (``lr``, from ``hparams`` or ``task.options``) goes to the first part whose signature
takes it: model, data, then trainer. Arguments the platform passes itself are *injected*: the
network (``network_arg``), ``num_classes`` from the data module and the sweep's ``seed``, each only
when the constructor takes it and ``init_args`` does not set it. Every mistake is a `ConfigError`
(one line, exit 2) raised before anything is written; `preflight` code may call `resolve_task`.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import importlib
import os
import sys
import typing
from dataclasses import dataclass
from typing import Any, Iterable

from nasforge.platform.errors import ConfigError
from nasforge.platform.options import coerce
from nasforge.search_spaces.registry import installed_entry_points

TASK_GROUP = "nasforge.tasks"  # entry points: alias -> "module:Class" of a LightningModule or DataModule


def add_import_paths(paths: Iterable[str]) -> None:
    """Put ``paths`` first on ``sys.path`` (in order), once each."""
    for p in reversed([os.path.abspath(p) for p in paths if p]):
        if p in sys.path:
            sys.path.remove(p)
        sys.path.insert(0, p)


def aliases() -> dict[str, str]:
    """Short name -> class path: the built-in tasks and data sets, then installed plugins."""
    from nasforge.tasks.task_factory import DATASETS, TASKS

    out = {name: spec.module for name, spec in TASKS.items()}
    out.update({name: spec.datamodule for name, spec in DATASETS.items()})
    for ep in installed_entry_points(TASK_GROUP):
        out.setdefault(ep.name, ep.value)
    return out


def import_class(class_path: str, where: str) -> type:
    """The class ``class_path`` names (``pkg.mod.Class``, ``pkg.mod:Class`` or an alias); a class
    that does not import is one line naming it and the import error."""
    path = aliases().get(class_path, class_path)
    mod, sep, attr = path.partition(":") if ":" in path else path.rpartition(".")
    if not sep or not mod or not attr:
        raise ConfigError(f"{where}: {class_path!r} is neither a class path (pkg.module.Class) nor a known "
                          f"name ({', '.join(sorted(aliases()))})")
    try:
        obj = getattr(importlib.import_module(mod), attr)
    except Exception as e:  # noqa: BLE001 - any error while importing the user's module is reported
        text = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ConfigError(f"{where}: cannot import {class_path!r}: {type(e).__name__}: {text}".rstrip(": ")) from None
    if not isinstance(obj, type):
        raise ConfigError(f"{where}: {class_path!r} is not a class")
    return obj


def _parser(cls: type, skip: Iterable[str] = ()):
    return _class_parser(cls, tuple(sorted(set(skip))))


@functools.lru_cache(maxsize=128)
def _class_parser(cls: type, skip: tuple[str, ...]):
    """One jsonargparse parser per class and skipped set: reading a signature costs ~45 ms, and a
    sweep resolves the same classes several times (preflight, every trial); parsing leaves it unchanged."""
    from jsonargparse import ArgumentParser

    p = ArgumentParser(exit_on_error=False)
    p.add_class_arguments(cls, skip=set(skip))
    return p


def parameters(cls: type) -> dict[str, Any]:
    """The constructor's parameters with their defaults (None for required ones), as jsonargparse
    reads them (following ``**kwargs`` into base classes)."""
    return _parser(cls).get_defaults().as_dict()


def check_init_args(cls: type, init_args: dict[str, Any], skip: Iterable[str], where: str) -> dict[str, Any]:
    """``init_args`` checked against ``cls``'s signature, every default filled in."""
    if not isinstance(init_args, dict):
        raise ConfigError(f"{where}: init_args must be a mapping, got {init_args!r}")
    try:
        return _parser(cls, skip).parse_object(init_args).as_dict()
    except Exception as e:  # jsonargparse's ArgumentError: several lines, made one
        text = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
        raise ConfigError(f"{where}: {cls.__name__}: {text}") from None


@dataclass
class ClassSpec:
    """One resolved part: its class path, complete init args and the arguments the platform injects."""

    class_path: str
    init_args: dict[str, Any]
    injected: tuple[str, ...] = ()
    where: str = ""

    def load(self) -> type:
        return import_class(self.class_path, self.where)

    def check(self, init_args: dict[str, Any]) -> dict[str, Any]:
        return check_init_args(self.load(), init_args, self.injected, self.where)


@dataclass
class ResolvedTask:
    """A Lightning task of a sweep: module and data classes, resolved; see the module docstring."""

    model: ClassSpec
    data: ClassSpec
    network_arg: str | None  # None: the module takes no network (a pure hyperparameter search)
    trainer: Any  # TrainerConfig

    @property
    def name(self) -> str:
        return self.model.class_path.rpartition(".")[2] or self.model.class_path

    def tree(self) -> dict[str, Any]:
        return {"model": {"class_path": self.model.class_path, "init_args": self.model.init_args},
                "data": {"class_path": self.data.class_path, "init_args": self.data.init_args},
                "trainer": dataclasses.asdict(self.trainer)}

    # -- dotted paths ----------------------------------------------------------------------
    def locate(self, path: str, where: str) -> tuple[str, ...]:
        """The full key path of ``path`` in the resolved config (a bare name: the first part that
        takes it); a path that is not there is a ConfigError."""
        tree = self.tree()
        if "." not in path:
            for keys in (("model", "init_args", path), ("data", "init_args", path), ("trainer", path)):
                if _has(tree, keys):
                    return keys
            raise ConfigError(f"{where}: {path!r} is taken by none of model.init_args ({_names(tree['model'])}), "
                              f"data.init_args ({_names(tree['data'])}) or trainer")
        keys = tuple(path.split("."))
        if not _has(tree, keys) or keys[-1] in ("class_path", "init_args"):
            raise ConfigError(f"{where}: {path!r} is not in the resolved config; model.init_args has "
                              f"{_names(tree['model'])}, data.init_args has {_names(tree['data'])}, trainer has "
                              f"{', '.join(tree['trainer'])}")
        return keys

    def with_values(self, values: dict[tuple[str, ...], Any], where: str = "params"):
        """(model init args, data init args, trainer config) with ``values`` set at their key paths,
        each part checked again by its signature (or the trainer's types)."""
        tree = copy.deepcopy(self.tree())
        for keys, value in values.items():
            node = tree
            for k in keys[:-1]:
                node = node[k]
            node[keys[-1]] = value
        touched = {keys[0] for keys in values}
        try:
            model = self.model.check(tree["model"]["init_args"]) if "model" in touched else tree["model"]["init_args"]
            data = self.data.check(tree["data"]["init_args"]) if "data" in touched else tree["data"]["init_args"]
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
        trainer = self.trainer
        if "trainer" in touched:
            hints = typing.get_type_hints(type(self.trainer))
            trainer = dataclasses.replace(self.trainer, **{
                k[1]: coerce(v, hints[k[1]], f"{where} {'.'.join(k)}") for k, v in values.items() if k[0] == "trainer"})
        return model, data, trainer


def _has(tree: Any, keys: tuple[str, ...]) -> bool:
    for k in keys:
        if not isinstance(tree, dict) or k not in tree:
            return False
        tree = tree[k]
    return True


def _names(part: dict[str, Any]) -> str:
    return ", ".join(part["init_args"]) or "nothing"


# ----------------------------------------------------------------------------- the task
def _short_data_args(d) -> dict[str, Any]:
    """The init args of the short form ``task.data: {name, path, val_fraction, ..., options}``."""
    args = {"path": d.path, "val_fraction": d.val_fraction, "subset": d.subset, "val_subset": d.val_subset,
            "num_workers": d.num_workers, **d.options}
    if d.path is None:
        from nasforge.tasks.task_factory import DATASETS

        if d.name in DATASETS:
            args["path"] = DATASETS[d.name].default_path()
    return args


def _route_options(options: dict[str, Any], model: tuple, data: tuple, trainer):
    """``task.options`` (the short form): each key into the init args of the part whose signature
    takes it, ``epochs`` to the trainer's ``max_epochs``; returns the trainer config."""
    for key, value in options.items():
        for cls, params, args in (model, data):
            if key in params:
                args[key] = value
                break
        else:
            if key != "epochs":
                raise ConfigError(f"task.options.{key}: taken by neither {model[0].__name__} ({', '.join(model[1])}) "
                                  f"nor {data[0].__name__} ({', '.join(data[1])})")
            trainer = dataclasses.replace(trainer, max_epochs=value)
    return trainer


def resolve_task(cfg) -> ResolvedTask:
    """The Lightning task of ``cfg`` (a SweepConfig), resolved and checked; see the module docstring."""
    add_import_paths(cfg.import_paths)
    t, d = cfg.task, cfg.task.data
    if t.model is not None:
        if t.options:
            raise ConfigError("task.options: with task.model, fixed values go in task.model.init_args")
        model_path, model_args, network_arg = t.model.class_path, dict(t.model.init_args), t.model.network_arg
    else:
        model_path, model_args, network_arg = t.name, {}, "network"
    model_cls = import_class(model_path, "task.model.class_path")
    model_params = parameters(model_cls)
    if d.class_path is not None:
        if d.path is not None or d.options:
            raise ConfigError("task.data: with class_path, give path and options in task.data.init_args")
        data_path, data_args = d.class_path, dict(d.init_args)
    elif d.init_args:
        raise ConfigError("task.data.init_args: give task.data.class_path with it (or use options with name)")
    else:  # the short form: name, path, split and options
        data_path, data_args = d.name, _short_data_args(d)
    data_cls = import_class(data_path, "task.data.class_path")
    data_params = parameters(data_cls)
    trainer = cfg.trainer
    if t.model is None and t.options:  # task.options: each key to the part that takes it
        trainer = _route_options(t.options, (model_cls, model_params, model_args), (data_cls, data_params, data_args),
                                 trainer)
    net_arg = network_arg if network_arg in model_params else None
    if t.model is not None and t.model.network_arg != "network" and net_arg is None:
        raise ConfigError(f"task.model.network_arg: {model_cls.__name__} takes no argument "
                          f"{t.model.network_arg!r} ({', '.join(model_params)})")
    model_inject = tuple(n for n in (net_arg, "num_classes") if n and n in model_params and n not in model_args)
    data_inject = ("seed",) if "seed" in data_params and "seed" not in data_args else ()
    model = ClassSpec(model_path, {}, model_inject, "task.model.init_args")
    model.init_args = check_init_args(model_cls, model_args, model_inject, model.where)
    data = ClassSpec(data_path, {}, data_inject, "task.data.init_args")
    data.init_args = check_init_args(data_cls, data_args, data_inject, data.where)
    return ResolvedTask(model=model, data=data, network_arg=net_arg, trainer=trainer)



def is_tabular(cfg) -> bool:
    """A built-in tabular task (a table look-up, no Lightning classes to resolve)."""
    from nasforge.tasks.task_factory import TASKS

    spec = TASKS.get(cfg.task.name)
    return cfg.task.model is None and spec is not None and not spec.trains_weights


def space_parts(cfg) -> list[dict[str, Any]]:
    """The sweep's ``space:`` list as `create_composite` takes it (a class path travels along, so a
    user's space imports in every process that rebuilds it)."""
    return [{"name": p.name, "options": dict(p.options), **({"class_path": p.class_path} if p.class_path else {})}
            for p in cfg.space]


def value_keys(task: ResolvedTask, space) -> dict[str, tuple[str, ...]]:
    """Label -> key path in the resolved config, for every dimension that sets a config value."""
    return {label: task.locate(path, f"space {label}") for label, path in space.paths().items()}


def check_space_paths(task: ResolvedTask, space) -> None:
    """Every searched path exists in the resolved config and every value a dimension can take (the
    choices, a range's ends) is accepted by the class's signature; else a ConfigError."""
    keys = value_keys(task, space)
    dims = {d.label: d for d in space.dims}
    for label, k in keys.items():
        d = dims[label]
        for value in getattr(d, "choices", None) or (d.low, d.high):
            task.with_values({k: value}, where=f"space {label}={value!r}")
