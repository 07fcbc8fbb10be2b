"""What every trial of a sweep shares, and how its outcome is judged.

`TrialContext` holds the sweep's config, space, task and data specs and run folder, and rebuilds
the pieces a trial needs (options split, data module); `TrialFailed` is a trial's one-line
failure; `objective_values`/`record_constraints` turn logged metrics into what Optuna is told.
Used by the in-process trial (`trial_runner`), each DDP rank (`ddp_child`) and the registry.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

from nasforge.platform.engine.config import SweepConfig
from nasforge.platform.errors import NasforgeError


class TrialFailed(NasforgeError):
    """A trial ended without a usable result; the message is the recorded reason."""


@dataclass
class TrialContext:
    cfg: SweepConfig
    run_dir: str
    space: Any = None
    task: Any = None  # TaskSpec
    dataset: Any = None  # DatasetSpec
    data_path: str | None = None
    _bench: Any = field(default=None, repr=False)

    resolved: Any = None  # ResolvedTask (platform/engine/resolve.py); None for a tabular task
    keys: dict[str, tuple[str, ...]] = field(default_factory=dict)  # label -> key path in the resolved config

    @classmethod
    def create(cls, cfg: SweepConfig, run_dir: str) -> "TrialContext":
        from nasforge.platform.engine.resolve import (add_import_paths, import_class, is_tabular, resolve_task,
                                                      space_parts, value_keys)
        from nasforge.search_spaces import create_composite

        from nasforge.tasks.task_factory import DATASETS, TASKS

        add_import_paths(cfg.import_paths)  # a user's space imports as in the sweep that ran
        for i, part in enumerate(cfg.space):  # one line naming it when it does not (promote elsewhere)
            if part.class_path:
                import_class(part.class_path, f"space[{i}].class_path")
        space = create_composite(space_parts(cfg))
        if is_tabular(cfg):
            dataset = DATASETS[cfg.task.data.name]
            return cls(cfg=cfg, run_dir=run_dir, space=space, task=TASKS[cfg.task.name], dataset=dataset,
                       data_path=cfg.task.data.path or dataset.default_path())
        resolved = resolve_task(cfg)
        if resolved.network_arg and not space.builds_network:
            raise NasforgeError(
                f"task {resolved.name!r} takes a network ({resolved.network_arg}=), but none of the spaces "
                f"({', '.join(p.name for p in cfg.space)}) builds one; add an architecture space"
            )
        if space.builds_network and not resolved.network_arg:
            raise NasforgeError(f"task {resolved.name!r} takes no network argument, so the architecture space "
                                f"{space.name!r} has nothing to build for; search params only")
        return cls(cfg=cfg, run_dir=run_dir, space=space, resolved=resolved,
                   data_path=resolved.data.init_args.get("path"), keys=value_keys(resolved, space))

    @property
    def kind(self) -> str:
        """How a trial is scored: ``lightning`` (trained) or ``tabular`` (looked up)."""
        return "tabular" if self.resolved is None else "lightning"

    def trial_dir(self, number: int) -> str:
        d = os.path.join(self.run_dir, "trials", str(number))
        os.makedirs(d, exist_ok=True)
        return d

    @property
    def bench(self):
        if self._bench is None:
            self._bench = self.dataset.load()(path=self.data_path, **self.cfg.task.data.options)
        return self._bench

    # -- pieces a trial (or a DDP rank, or the registry) rebuilds ----------------------
    def split_options(self, sample: dict[str, Any]) -> tuple[dict, dict, Any]:
        """(module init args, data init args, trainer config) with the sample's config values set."""
        values = {self.keys[label]: v for label, v in sample.items() if label in self.keys}
        return self.resolved.with_values(values, where="sample")


def objective_values(cfg: SweepConfig, metrics: dict[str, float]) -> list[float]:
    values = []
    for o in cfg.objectives:
        if o.metric not in metrics:
            raise TrialFailed(
                f"objective metric {o.metric!r} was never logged; logged: {', '.join(sorted(metrics)) or 'nothing'}"
            )
        v = float(metrics[o.metric])
        if not math.isfinite(v):
            raise TrialFailed(f"objective metric {o.metric!r} is {v}")
        values.append(v)
    return values


def constraint_values(cfg: SweepConfig, metrics: dict[str, float]) -> dict[str, float]:
    """Optuna's convention: one value per bound, feasible when <= 0, named like ``cost/params<=3e+06``."""
    out = {}
    for c in cfg.constraints:
        v = metrics.get(c.metric)
        if v is None:
            raise TrialFailed(f"constraint metric {c.metric!r} was never logged")
        if c.max is not None:
            out[f"{c.metric}<={c.max:g}"] = float(v) - c.max
        if c.min is not None:
            out[f"{c.metric}>={c.min:g}"] = c.min - float(v)
    return out


def record_constraints(cfg: SweepConfig, trial, metrics: dict[str, float]) -> None:
    """Hand the constraint values to Optuna (``Trial.set_constraint``, read by TPE, NSGA-II and GP
    for feasibility) and keep them as a user attr for tables."""
    values = constraint_values(cfg, metrics)
    for key, value in values.items():
        trial.set_constraint(key, value)
    trial.set_user_attr("constraints", values)


def set_cpu_threads(configured: int | None = None, share: int = 1, default: int | None = None) -> None:
    """torch's intra-op threads for this process: ``trainer.cpu_threads`` when the sweep sets it,
    else what the worker launcher gave the process (``NASFORGE_CPU_THREADS``), else ``default``
    (None: leave torch's own); divided by ``share`` (the ranks of a DDP trial on one machine)."""
    threads = configured or int(os.environ.get("NASFORGE_CPU_THREADS", "0")) or default
    if threads:
        import torch

        torch.set_num_threads(max(1, threads // share))


def quiet_libraries() -> None:
    """Keep a sweep's terminal readable: Lightning's per-fit banners, W&B's and Optuna's
    notices and known third-party deprecation warnings go away; errors still show."""
    import logging
    import warnings

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("WANDB_SILENT", "true")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*anonymous setting.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*is experimental.*")
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")


def sample_of(trial) -> dict[str, Any]:
    """The sample a finished trial ran (from its user attrs)."""
    s = trial.user_attrs.get("sample")
    if s is None and "genotype" in trial.user_attrs:
        s = json.loads(trial.user_attrs["genotype"])["sample"]
    return s or {}
