"""The sweep engine. The door for Python users: `run` (a sweep from a path or a dict -> the Optuna
study) and `load_config` (the checked config); see `api.py`. Everything else is the CLI's business."""
from nasforge.platform.engine.api import load_config, run

__all__ = ["load_config", "run"]
