"""The Python entry point: run a sweep from a notebook or a script and get the Optuna study back.

    import nasforge.platform.engine as nf
    study = nf.run("sweep.yaml", trials=20)                  # a sweep file, like `nasforge sweep run`
    study = nf.run({"name": "hp", "task": {...}, ...})       # or the same content as a dict
    study.best_trial.params, study.trials_dataframe()

The config is checked exactly as the CLI checks it (a `ConfigError` with one line, before anything
is written); a dict's classes import from the working directory (a file's from its folder too).
``workers > 1`` runs that many processes sharing the study, as ``--workers`` does. Running the same
call again resumes the sweep up to its (new) budget.
"""
from __future__ import annotations

import os
from typing import Any, Mapping


def load_config(sweep: Any, overrides: Mapping[str, Any] | None = None):
    """A checked `SweepConfig` from a path, a mapping or a SweepConfig; ``overrides`` are dotted keys."""
    import copy

    from nasforge.platform.engine.config import SweepConfig, load_sweep, parse_sweep

    if isinstance(sweep, SweepConfig):
        sweep = sweep.to_dict()
    if isinstance(sweep, (str, os.PathLike)):
        return load_sweep(sweep, dict(overrides or {}))
    data = copy.deepcopy(dict(sweep))
    data.setdefault("import_paths", [os.getcwd()])
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return parse_sweep(data, "<dict>")


def run(sweep: Any, *, trials: int | None = None, root: str | os.PathLike = "runs", workers: int = 1,
        show_progress: bool = True, overrides: Mapping[str, Any] | None = None):
    """Run (or resume) ``sweep`` (a path, a dict or a SweepConfig) and return its `optuna.Study`."""
    from nasforge.platform.engine.run_folder import open_run
    from nasforge.platform.errors import NasforgeError

    overrides = dict(overrides or {})
    if trials is not None:
        overrides["budget.trials"] = trials
    cfg = load_config(sweep, overrides)
    if workers > 1:
        from nasforge.platform.engine.workers import run_workers

        code = run_workers(cfg, root=root, workers=workers, show_progress=show_progress)
        if code != 0:
            raise NasforgeError(f"sweep {cfg.name!r}: the workers exited with {code} (logs: "
                                f"{os.path.join(root, cfg.name, 'workers')})")
        return open_run(cfg.name, root, cfg.storage).study
    from nasforge.platform.engine.sweep import run_sweep

    return run_sweep(cfg, root=root, show_progress=show_progress)
