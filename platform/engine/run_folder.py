"""A sweep read back from its run folder: config, study and trial folders, in one object.

What the trial runner leaves behind: ``<root>/<name>/sweep.yaml`` (the resolved config), the
Optuna study (``study.journal`` by default, or the storage URL of the config / ``--storage``)
and ``trials/<number>/`` per trial (see `nasforge.platform.engine.storage`). The report, the dashboard
and the registry all start from `open_run(name, root, storage)`; it reads, never writes, and
raises `UsageError` naming what is missing when the sweep does not exist. Only Optuna is
imported (0.3 s); nothing here imports torch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from nasforge.platform.errors import UsageError
from nasforge.platform.engine.storage import DEFAULT_ROOT, create_storage, default_storage_url, read_config, run_dir


@dataclass
class SweepRun:
    name: str
    run_dir: str  # absolute
    storage_url: str
    study: Any  # optuna.Study
    cfg: Any  # nasforge.platform.config.SweepConfig

    def trial_dir(self, number: int) -> str:
        return os.path.join(self.run_dir, "trials", str(number))

    @property
    def artifact_dir(self) -> str:
        """Where the dashboard's Optuna artifacts live (a FileSystemArtifactStore)."""
        return os.path.join(self.run_dir, "artifacts")


def open_run(name: str, root: str | os.PathLike = DEFAULT_ROOT, storage: str | None = None,
             stores: dict | None = None) -> SweepRun:
    """Open sweep ``name`` under ``root``; ``storage`` overrides the recorded storage URL. ``stores``
    (URL -> opened storage) lets several sweeps of one storage share it: a journal is read once."""
    import optuna

    cfg = read_config(name, root)  # UsageError listing the sweeps there when absent
    url = storage or cfg.storage or default_storage_url(name, root)
    if url.startswith("journal://") and not os.path.exists(url[len("journal://"):]):
        raise UsageError(f"sweep {name!r} has no study yet: {url[len('journal://'):]} does not exist")
    store = stores.get(url) if stores is not None else None
    if store is None:
        store = create_storage(url)
        if stores is not None:
            stores[url] = store
    try:
        study = optuna.load_study(study_name=name, storage=store)
    except KeyError:
        names = optuna.get_all_study_names(store)
        raise UsageError(
            f"no study named {name!r} in {url}; studies there: {', '.join(names) or 'none'}"
        ) from None
    return SweepRun(name=name, run_dir=run_dir(name, root), storage_url=url, study=study, cfg=cfg)
