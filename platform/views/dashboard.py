"""The live dashboard: optuna-dashboard over a sweep's storage, with trial files as artifacts.

`listen(host, port)` binds the server's socket first (port 0: one the system picks), so the command
knows its address before it opens any storage; `serve(run, server)` then serves optuna-dashboard's
WSGI app (`optuna_dashboard.wsgi`) over the same storage the workers write, so it is live while a
sweep runs, with the artifact store of `nasforge.platform.engine.artifacts` (each trial's diagrams
and checkpoint), and tells its caller (``ready``) once it answers, which is when the command prints
its address. The server is the standard library's wsgiref one, as optuna-dashboard's own
``run_server`` uses.
"""
from __future__ import annotations

import socket
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from nasforge.platform.engine.artifacts import artifact_store
from nasforge.platform.optuna_adapter import storage_of


class _Server6(WSGIServer):
    address_family = socket.AF_INET6


def listen(host: str = "127.0.0.1", port: int = 8080) -> WSGIServer:
    """A server bound and listening on ``host:port`` (``OSError`` when it cannot); its
    ``server_port`` is the port, also when ``port`` is 0."""
    return (_Server6 if ":" in host else WSGIServer)((host, port), WSGIRequestHandler)


def _serve(server: WSGIServer, app, ready) -> None:
    """Serve ``app`` until Ctrl-C, calling ``ready()`` once from inside the serving loop (after
    its first wait for a request), so whoever it tells finds the app built and requests answered;
    closing ``server`` is its owner's (the command's)."""
    server.set_app(app)

    def service_actions() -> None:  # socketserver calls it on every turn of serve_forever's loop
        del server.service_actions  # once: later turns find the class's own (a no-op)
        ready()

    server.service_actions = service_actions
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # Ctrl-C stops it, as optuna-dashboard's run_server does
        pass


def serve(run, server: WSGIServer, ready=lambda: None) -> None:
    """Serve optuna-dashboard for ``run`` on ``server`` (from `listen`) until interrupted (blocks);
    ``ready()`` is called once it answers requests."""
    from optuna_dashboard import wsgi

    # private: wsgi takes a storage or an RDB URL, and our journal:// URL is not one Optuna parses
    _serve(server, wsgi(storage_of(run.study), artifact_store=artifact_store(run.artifact_dir)), ready)


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


def serve_many(store, server: WSGIServer, ready=lambda: None) -> None:
    """Serve optuna-dashboard over ``store`` (from `shared_storage`) on ``server`` until
    interrupted (blocks); ``ready()`` is called once it answers requests."""
    from optuna_dashboard import wsgi

    _serve(server, wsgi(store), ready)
