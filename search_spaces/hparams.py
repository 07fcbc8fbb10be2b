"""`hparams`: the training hyperparameters a sweep can search.

Sugar over `params` for the common training settings: labels are ``hp/<name>`` and each sets
the value ``<name>`` of whichever part of the resolved config takes it (``hp/lr`` -> the
module's ``lr``, ``hp/batch_size`` -> the data module's), so a task never knows whether a value
was searched or fixed. Any other value is searched with ``params`` by dotted path.
Options choose what is searched and over which range, e.g. ``{"lr": [1e-4, 1e-1],
"optimizer": ["sgd", "adamw"]}`` for the names of the table below (their kinds and defaults), or
any other setting in the ``params`` syntax (``warmup_epochs: {float: [0, 2]}``); with no options
the default set below is searched.
Fixed values belong in the sweep file's ``task.options``, not here. `hp/momentum` is
conditional: it exists only when the optimizer is SGD.
"""
from __future__ import annotations

from typing import Any

from .params import create_dim
from .registry import register_space
from .space import Categorical, Dim, Float, Int, Space

# name -> (kind, default range or choices, log scale)
HPARAMS: dict[str, tuple[str, Any, bool]] = {
    "optimizer": ("cat", ["sgd", "adamw"], False),
    "lr": ("float", [1e-4, 1e-1], True),
    "momentum": ("float", [0.8, 0.99], False),
    "weight_decay": ("float", [1e-6, 1e-2], True),
    "batch_size": ("cat", [32, 64, 128], False),
    "epochs": ("int", [1, 10], False),
    "label_smoothing": ("float", [0.0, 0.2], False),
    "augment": ("float", [0.0, 1.0], False),
}
DEFAULT_SEARCH = ("optimizer", "lr", "momentum", "weight_decay", "label_smoothing")


@register_space
class HParamsSpace(Space):
    name = "hparams"
    builds_network = False

    def __init__(self, **options: Any):
        for key, value in options.items():
            if isinstance(value, dict):  # any other setting, in the params syntax
                create_dim(f"hp/{key}", value)
                continue
            if key not in HPARAMS:
                raise ValueError(f"hparams.{key}: the short [low, high]/[choices] form is for {', '.join(HPARAMS)}; "
                                 f"give any other setting as a spec, e.g. {key}: {{float: [low, high]}}")
            if not isinstance(value, list) or not value:
                raise ValueError(
                    f"hparams.{key}: give a list (a [low, high] range or the choices); "
                    "fixed values go under task.options"
                )
        super().__init__(**options)

    def dimensions(self) -> list[Dim]:
        names = list(self.options) if self.options else list(DEFAULT_SEARCH)
        if "momentum" in names and "optimizer" not in names:
            names.remove("momentum")  # momentum only means something next to a searched optimizer
        dims: list[Dim] = [create_dim(f"hp/{k}", v) for k, v in sorted(self.options.items()) if isinstance(v, dict)]
        for name in HPARAMS:  # declaration order is the table's, not the options'
            if name not in names:
                continue
            kind, default, log = HPARAMS[name]
            spec = self.options.get(name, default)
            label = f"hp/{name}"
            when = {"hp/optimizer": "sgd"} if name == "momentum" else None
            if kind == "cat":
                dims.append(Categorical(label, choices=tuple(spec), when=when))
            else:
                if len(spec) != 2:
                    raise ValueError(f"hparams.{name}: a range is [low, high], got {spec}")
                lo, hi = spec
                if kind == "int":
                    dims.append(Int(label, low=int(lo), high=int(hi), when=when))
                else:
                    if log and not float(lo) > 0:  # a log scale cannot start at 0; never drop it silently
                        raise ValueError(f"hparams.{name}: searched on a log scale, so the range needs "
                                         f"0 < low <= high, got {spec}")
                    dims.append(Float(label, low=float(lo), high=float(hi), log=log, when=when))
        return dims

    def paths(self) -> dict[str, str]:
        """``hp/lr`` sets ``lr`` of whichever part takes it (the module, else the data module);
        ``hp/epochs`` is the trainer's ``max_epochs``."""
        return {d.label: "trainer.max_epochs" if d.label == "hp/epochs" else d.label[3:] for d in self.dims}

