"""Registered models named where a task takes a weights file: ``base: cifar10_resnet:latest``.

A task class lists in ``registry_weights`` the init args that hold a state-dict file (the
`adaptive` task's ``base``, the backbone every trial starts from). A task never reads the registry
(tasks import no platform), so a sweep file's reference there, ``MODEL[:VERSION|:ALIAS]``, is
resolved here, by the command line, before anything is written: `resolve_weight_refs(cfg, root)`
names each reference's version and its ``weights.pt`` (checked against the version's manifest);
the CLI loads the sweep file again with those paths as overrides. A value that is an existing file
is left as it is. The path, ``<registry>/<model>/versions/vN/weights.pt``, is what the run folder's
``sweep.yaml`` records: every worker, DDP rank, promotion and report of the sweep reads that one
version. Resuming keeps the version the sweep started with while the reference names it by a tag
that moves (``latest``, an alias); a pinned ``MODEL:vN`` that differs is a different experiment,
refused like any changed task. Every mistake is a one-line `ConfigError` (exit 2).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from nasforge.platform.errors import ConfigError, NasforgeError
from nasforge.platform.registry.versions import VERSION_RE, WEIGHTS, Registry, Version, parse_ref


@dataclass(frozen=True)
class WeightRef:
    """One reference of a sweep file, resolved."""

    key: str  # the dotted key of the sweep file (task.options.base)
    ref: str  # as written: MODEL[:VERSION|:ALIAS]
    version: str  # MODEL:vN
    path: str  # that version's weights file
    kept: bool = False  # the version the sweep recorded when it started (a resume)

    def line(self) -> str:
        why = ", the version this sweep started with" if self.kept else ""
        return f"nasforge: {self.key} {self.ref} is {self.version}{why} ({self.path})"


def _task_args(cfg) -> tuple[str, dict[str, Any]]:
    """(dotted prefix, mapping) where the sweep file gives the task's init args."""
    if cfg.task.model is not None:
        return "task.model.init_args", cfg.task.model.init_args
    return "task.options", cfg.task.options


def _recorded(cfg, root) -> dict[str, Any]:
    """The task's args as the sweep's ``sweep.yaml`` recorded them ({} for a new sweep)."""
    from nasforge.platform.engine.config import read_resolved
    from nasforge.platform.engine.storage import CONFIG_FILE, run_dir

    path = os.path.join(run_dir(cfg.name, root), CONFIG_FILE)
    if not os.path.isfile(path):
        return {}
    try:
        return _task_args(read_resolved(path))[1]
    except ConfigError:  # not ours to judge here: starting the sweep reports it
        return {}


def _version(key: str, ref: str, reg: Registry, recorded: Any) -> tuple[Version, bool]:
    try:
        model, tag = parse_ref(ref)
    except NasforgeError:
        raise ConfigError(f"{key}: {ref!r} is neither a file nor a registered model "
                          "(MODEL, MODEL:VERSION or MODEL:ALIAS)") from None
    if isinstance(recorded, str) and not (tag and VERSION_RE.match(tag)):
        by_path = {v.path: v for v in reg.versions(model)}
        if os.path.dirname(recorded) in by_path:
            return by_path[os.path.dirname(recorded)], True
    try:
        return reg.resolve(ref), False
    except NasforgeError as e:
        raise ConfigError(f"{key}: {e}") from None


def resolve_weight_refs(cfg, root: str | os.PathLike = "runs",
                        registry: str | os.PathLike | None = None) -> list[WeightRef]:
    """The registry references among the weights files ``cfg``'s task takes, resolved (none for
    a task without ``registry_weights``)."""
    from nasforge.platform.engine.resolve import is_tabular, resolve_task

    if is_tabular(cfg):
        return []
    names = getattr(resolve_task(cfg).model.load(), "registry_weights", ())
    prefix, args = _task_args(cfg)
    refs = {n: args[n] for n in names if isinstance(args.get(n), str) and args[n]
            and not os.path.isfile(os.path.expanduser(args[n]))}
    if not refs:
        return []
    reg = Registry(registry)
    recorded = _recorded(cfg, root)
    out = []
    for name, ref in refs.items():
        key = f"{prefix}.{name}"
        v, kept = _version(key, ref, reg, recorded.get(name))
        try:
            v.verify()
        except NasforgeError as e:
            raise ConfigError(f"{key}: {e}") from None
        adaptive = v.meta().get("adaptive")
        if adaptive:
            raise ConfigError(f"{key}: {v.ref} is an adaptive version (its weights include a decider); "
                              f"name its base {adaptive['base']} instead")
        out.append(WeightRef(key, ref, v.ref, os.path.join(v.path, WEIGHTS), kept))
    return out
