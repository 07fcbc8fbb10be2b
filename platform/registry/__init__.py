"""The model registry: versions of named models on disk, their W&B link and their export.

The door: ``from nasforge.platform.registry import load`` returns a promoted network (README).
`versions` is the layout on disk (versions, aliases, manifest); `promote` turns a trial into a
version and a version back into a network; `wandb_link` links versions to the W&B Registry;
`export` writes ONNX/TorchScript. Heavy imports (torch, optuna) stay inside the functions, so
importing this package is cheap.
"""
from nasforge.platform.registry.promote import (
    Promotion, create_datamodule, evaluate, load, load_version, pick_trial, promote,
)
from nasforge.platform.registry.versions import IntegrityError, Registry, Version, parse_ref

__all__ = ["IntegrityError", "Promotion", "Registry", "Version", "create_datamodule", "evaluate", "load",
           "load_version", "parse_ref", "pick_trial", "promote"]
