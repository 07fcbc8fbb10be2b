"""Optuna pruners by name, with their options checked like the rest of the sweep file.

``none``, ``median`` (MedianPruner), ``percentile``, ``successive_halving`` (ASHA) and
``hyperband``. Pruners act on the first objective, reported after every validation epoch by
the `OptunaPruning` callback; for Hyperband the resource is the epoch, so ``max_resource``
defaults to the trainer's ``max_epochs``.
"""
from __future__ import annotations

import inspect

from nasforge.platform.errors import ConfigError


# The one list of pruner names (config validation, errors, docs): name -> optuna.pruners class.
PRUNER_CLASSES = {
    "none": "NopPruner",
    "median": "MedianPruner",
    "percentile": "PercentilePruner",
    "successive_halving": "SuccessiveHalvingPruner",
    "hyperband": "HyperbandPruner",
}
PRUNERS = tuple(PRUNER_CLASSES)


def create_pruner(pruner_cfg, max_epochs: int):
    import optuna.pruners

    name, options = pruner_cfg.name, dict(pruner_cfg.options)
    if name not in PRUNER_CLASSES:
        raise ConfigError(f"pruner.name: unknown pruner {name!r}; valid: {', '.join(PRUNERS)}")
    cls = getattr(optuna.pruners, PRUNER_CLASSES[name])
    valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    for key in options:
        if key not in valid:
            raise ConfigError(f"pruner.options.{key}: unknown option for {name}; valid: {', '.join(valid) or 'none'}")
    if name == "hyperband":
        options.setdefault("min_resource", 1)
        options.setdefault("max_resource", max_epochs)
    if name in ("median", "percentile"):
        options.setdefault("n_startup_trials", 3)
        options.setdefault("n_warmup_steps", min(2, max(0, max_epochs - 1)))  # epochs 0-1 are noise
    try:
        return cls(**options)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"pruner.options: {e}") from None
