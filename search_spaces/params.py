"""`params`: a declarative space over any value of a sweep's resolved config, by dotted path.

Options map a dotted path to a spec; the path is the dimension's label, so a sample reads
``{"model.init_args.lr": 0.01, "trainer.max_epochs": 7}`` and a genotype round-trips it:

    model.init_args.lr:        {float: [1e-4, 1e-1], log: true}
    model.init_args.optimizer: {choice: [sgd, adamw]}
    model.init_args.momentum:  {float: [0.8, 0.99], when: {model.init_args.optimizer: sgd}}
    data.init_args.batch_size: {choice: [32, 64, 128]}
    trainer.max_epochs:        {int: [5, 20], step: 1}

Exactly one of ``float``/``int``/``choice`` per spec; ``log`` and ``step`` as in Optuna; ``when``
makes the dimension conditional on other paths (the `Dim` rule). The dimensions are ordered by
path, each after the ones its condition names, whatever the order of the options. This module knows nothing of
configs: the platform checks that each path exists and that the class signatures accept every
value (``platform/engine/resolve.py``) before anything is written.
"""
from __future__ import annotations

from typing import Any

from .registry import register_space
from .space import Categorical, Dim, Float, Int, Space

KINDS = ("float", "int", "choice")
EXTRA = ("log", "step", "when")


def create_dim(label: str, spec: Any) -> Dim:
    """One dimension from a spec; a bad spec is a ValueError naming the path."""
    if not isinstance(spec, dict):
        raise ValueError(f"params.{label}: a spec is a mapping like {{float: [low, high]}}, got {spec!r}")
    kinds = [k for k in spec if k in KINDS]
    unknown = [k for k in spec if k not in KINDS + EXTRA]
    if unknown or len(kinds) != 1:
        raise ValueError(f"params.{label}: give exactly one of {', '.join(KINDS)} (plus {', '.join(EXTRA)}); "
                         f"got keys {', '.join(map(str, spec))}")
    kind, value, when = kinds[0], spec[kinds[0]], spec.get("when")
    if when is not None and not isinstance(when, dict):
        raise ValueError(f"params.{label}: when is a mapping of path to value(s), got {when!r}")
    if kind == "choice":
        if not isinstance(value, list) or not value:
            raise ValueError(f"params.{label}: choice takes a non-empty list, got {value!r}")
        return Categorical(label, choices=tuple(value), when=when)
    if not isinstance(value, list) or len(value) != 2 or not all(isinstance(v, (int, float)) for v in value):
        raise ValueError(f"params.{label}: {kind} takes a range [low, high], got {value!r}")
    low, high = value
    if low > high:
        raise ValueError(f"params.{label}: low {low} > high {high}")
    log = bool(spec.get("log", False))
    if log and low <= 0:
        raise ValueError(f"params.{label}: a log scale needs low > 0, got {low}")
    if kind == "int":
        if int(low) != low or int(high) != high:
            raise ValueError(f"params.{label}: int takes integer ends, got {value!r}")
        return Int(label, low=int(low), high=int(high), step=int(spec.get("step", 1)), log=log, when=when)
    if "step" in spec:
        raise ValueError(f"params.{label}: step is for int ranges")
    return Float(label, low=float(low), high=float(high), log=log, when=when)


@register_space
class ParamsSpace(Space):
    name = "params"
    builds_network = False

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.dims  # noqa: B018 - a bad spec fails here, when the sweep is loaded

    def dimensions(self) -> list[Dim]:
        """In a canonical order that does not depend on the options' order (a genotype stored as JSON
        with sorted keys rebuilds the same space): by path, each after the paths its ``when`` names."""
        pending = sorted((create_dim(label, spec) for label, spec in self.options.items()), key=lambda d: d.label)
        for d in pending:
            unknown = [k for k in (d.when or {}) if k not in self.options or k == d.label]
            if unknown:
                raise ValueError(f"params.{d.label}: when names {unknown[0]!r}, which is not another declared path")
        dims: list[Dim] = []
        while pending:
            ready = next((d for d in pending if all(k in {x.label for x in dims} for k in (d.when or {}))), None)
            if ready is None:
                raise ValueError(f"params: the when conditions of {', '.join(d.label for d in pending)} form a cycle")
            dims.append(ready)
            pending.remove(ready)
        return dims

    def paths(self) -> dict[str, str]:
        return {label: label for label in self.options}
