"""Weights & Biases tracking: one W&B run per trial, through Lightning's `WandbLogger`.

Runs are grouped by sweep name (``group``; ``tracking.group`` overrides it: replicated sweeps put an
arm's seeds in one group), named ``<sweep>-<trial number>``, and carry the
trial's params and sample as config and its objective values in the summary. Modes:

* ``auto``: online when credentials exist (``WANDB_API_KEY`` or a ``~/.netrc`` entry for the
  W&B host), otherwise offline; a ``WANDB_MODE`` in the environment wins;
* ``offline``: real run files under ``<run folder>/wandb/`` (``wandb sync`` uploads them later;
  ``wandb leet inspect --json RUN_DIR`` reads them back);
* ``online``; ``disabled``: no W&B at all.

W&B is where runs are looked at, not where state lives (DESIGN contract 5): nothing here is
read back by the search.
"""
from __future__ import annotations

import netrc
import os
from typing import Any

from nasforge.platform.errors import ConfigError

MODES = ("auto", "online", "offline", "disabled")
# the values of WANDB_MODE that W&B accepts, and the mode each one means here
ENV_MODES = {"online": "online", "run": "online", "offline": "offline", "dryrun": "offline", "disabled": "disabled"}


def has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].split("/")[0]
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def env_mode() -> str | None:
    """``WANDB_MODE`` from the environment, checked. Empty counts as unset (and is removed: W&B
    itself refuses it, failing the first run of a process); anything W&B does not know is a
    ConfigError (one line, exit 2), raised before any run starts."""
    env = os.environ.get("WANDB_MODE")
    if env is None:
        return None
    if not env.strip():
        del os.environ["WANDB_MODE"]
        return None
    if env not in ENV_MODES:
        raise ConfigError(f"WANDB_MODE={env!r} is not a W&B mode; valid: {', '.join(ENV_MODES)} (or unset it)")
    return ENV_MODES[env]


def resolve_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown tracking mode {mode!r}; valid: {', '.join(MODES)}")
    if mode == "disabled":
        return mode
    env = env_mode()  # checked even when the sweep names a mode: W&B reads the variable anyway
    if mode != "auto":
        return mode
    if env is not None:
        return env
    return "online" if has_credentials() else "offline"


def create_logger(tracking, sweep_name: str, trial_number: int, save_dir: str,
                  config: dict[str, Any], job_type: str = "trial"):
    """A `WandbLogger` for one trial, or None when tracking is disabled."""
    mode = resolve_mode(tracking.mode)
    if mode == "disabled":
        return None
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    os.makedirs(save_dir, exist_ok=True)
    logger = WandbLogger(
        project=tracking.project,
        entity=tracking.entity,
        group=tracking.group or sweep_name,
        job_type=job_type,
        name=f"{sweep_name}-{trial_number}",
        save_dir=save_dir,
        mode=mode,
        config=config,
        reinit="finish_previous",
        # per trial: no system-metrics sampler, no git/code capture, and no scan of the installed
        # packages (0.5 s a run here); the sweep's summary run records the environment once
        settings=wandb.Settings(silent=True, console="off", disable_git=True, x_disable_stats=True,
                                disable_code=True, x_save_requirements=job_type != "trial"),
    )
    # WandbLogger always forwards `anonymous` (None by default), which wandb 0.31 answers with a
    # deprecation notice on every run; drop the key so a sweep's terminal stays readable.
    getattr(logger, "_wandb_init", {}).pop("anonymous", None)
    return logger


def run_folder(logger) -> str | None:
    """The W&B run's own folder (``.../wandb/offline-run-*``), for reading it back."""
    if logger is None:
        return None
    exp = logger.experiment
    d = getattr(exp, "dir", None)  # .../wandb/<run>/files
    return os.path.dirname(d) if d else None


def finish(logger, summary: dict[str, Any] | None = None, exit_code: int = 0) -> None:
    if logger is None:
        return
    exp = logger.experiment
    if summary:
        exp.summary.update(summary)
    exp.finish(exit_code=exit_code)
