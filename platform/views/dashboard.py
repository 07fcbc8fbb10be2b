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
