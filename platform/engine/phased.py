"""The start shared by sweeps that run phases before their trials (``mode: one_shot``,
``mode: zero_cost``): the config checked against the space and written to the run folder, and
the trial context and storage URL their phases use. The phases themselves are in oneshot.py
and zero_cost.py."""
from __future__ import annotations

from nasforge.platform.engine.config import SweepConfig
from nasforge.platform.errors import ConfigError


def start_run(cfg: SweepConfig, root: str, mode: str):
    """The trial context and storage URL of a sweep of ``mode`` whose config is checked and
    written to its run folder (bad space options fail before anything is written)."""
    from nasforge.platform.engine.storage import resolve_storage_url, run_dir
    from nasforge.platform.engine.sweep import write_config
    from nasforge.platform.engine.trial import TrialContext

    if cfg.mode != mode:
        raise ConfigError(f"mode: this runs mode {mode} sweeps, got {cfg.mode!r}")
    rundir = run_dir(cfg.name, root)
    try:
        ctx = TrialContext.create(cfg, rundir)
        ctx.space.dims  # noqa: B018
    except (ValueError, TypeError) as e:
        raise ConfigError(f"space: {e}") from None
    write_config(cfg, rundir)
    return ctx, resolve_storage_url(cfg, root)
