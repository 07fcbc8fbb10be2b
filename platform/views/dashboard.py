"""The live dashboard: optuna-dashboard over a sweep's storage, with trial files as artifacts.

`serve(run, host, port)` runs optuna-dashboard's server (``run_server``) over the same storage
the workers write, so it is live while a sweep runs, with the artifact store of
`nasforge.platform.engine.artifacts` (each trial's diagrams and checkpoint).
"""
from __future__ import annotations

from nasforge.platform.engine.artifacts import artifact_store
from nasforge.platform.optuna_adapter import storage_of


def serve(run, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve optuna-dashboard for ``run`` until interrupted (blocks)."""
    from optuna_dashboard import run_server

    # private: run_server takes a storage or an RDB URL, and our journal:// URL is not one Optuna parses
    run_server(storage_of(run.study), host=host, port=port, artifact_store=artifact_store(run.artifact_dir))


def shared_storage(runs) -> tuple[object, list[int], bool]:
    """One storage holding every sweep of ``runs``, the studies' ids in it, and whether it is a copy.

    Sweeps in one storage are served from it (live); sweeps in several storages (a journal file
    each, or journal files and PostgreSQL) are copied into one in-memory storage: a snapshot,
    taken when the dashboard starts."""
    import optuna

    urls = {run.storage_url for run in runs}
    if len(urls) == 1:
        store = storage_of(runs[0].study)
        return store, [store.get_study_id_from_name(r.name) for r in runs], False
    store = optuna.storages.InMemoryStorage()
    for r in runs:
        optuna.copy_study(from_study_name=r.name, from_storage=storage_of(r.study), to_storage=store)
    return store, [store.get_study_id_from_name(r.name) for r in runs], True


def compare_path(study_ids: list[int]) -> str:
    """optuna-dashboard's page comparing studies, for these ids."""
    return "/dashboard/compare-studies?ids=" + ",".join(str(i) for i in study_ids)


def serve_many(store, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve optuna-dashboard over ``store`` (from `shared_storage`) until interrupted (blocks)."""
    from optuna_dashboard import run_server

    run_server(store, host=host, port=port)
