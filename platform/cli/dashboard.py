"""`nasforge sweep dashboard NAME [NAME ...]`: optuna-dashboard over a sweep's storage (see
`views.dashboard`); several sweeps (names, globs, a replicate group) are served together, landing on
optuna-dashboard's compare-studies page. `nasforge dashboard` is its alias."""
from __future__ import annotations

from nasforge.platform.cli.common import add_alias, add_root, add_storage


HELP = "serve optuna-dashboard over a sweep's study (live while it runs)"


def register(subparsers) -> None:
    add_alias(subparsers, "dashboard", configure, HELP)


def configure(p) -> None:
    """``sweep dashboard NAME [NAME ...] [--host H] [--port P] [--no-attach]``."""
    p.description = ("Serve optuna-dashboard over the sweep's storage, with each trial's architecture "
                     "diagram and checkpoint attached as Optuna artifacts. Stops with Ctrl-C.")
    p.add_argument("names", nargs="+", metavar="NAME",
                   help="sweep name (its run folder is <root>/NAME); several names, globs or a replicate group "
                        "serve the sweeps together, landing on optuna-dashboard's page comparing them")
    add_root(p)
    add_storage(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080,
                   help="port (default: 8080; 0: any free port, the one chosen is printed)")
    p.add_argument("--no-attach", action="store_true",
                   help="do not attach finished trials' diagrams and checkpoints that are not attached yet")
    p.set_defaults(func=_dashboard)


def _dashboard(args) -> int:
    from nasforge.platform.engine.artifacts import attach_missing_artifacts
    from nasforge.platform.views.dashboard import listen, serve
    from nasforge.platform.errors import UsageError
    from nasforge.platform.engine.run_folder import open_run

    if not 0 <= args.port < 65536:
        raise UsageError(f"--port: {args.port} is not a TCP port (1-65535, or 0 for any free one)")
    try:
        server = listen(args.host, args.port)  # bound once, before anything is read: no other can take it
    except OSError as e:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {e.strerror} "
                         "(choose another --port, or --port 0 for any free one)") from None
    try:
        if len(args.names) > 1 or any(c in args.names[0] for c in "*?[") or _is_group(args):
            return _dashboard_many(args, server)
        args.name = args.names[0]
        run = open_run(args.name, args.root, args.storage)
        attached = 0 if args.no_attach else attach_missing_artifacts(run)
        n = len(run.study.get_trials(deepcopy=False))
        print(f"dashboard for sweep {args.name!r} ({n} trials, storage {run.storage_url})"
              + (f"; attached {attached} trial files as artifacts" if attached else ""))
        serve(run, server, _say_serving(f"{_address(args.host, server)}/dashboard/"))
    finally:
        server.server_close()
    return 0


def _address(host: str, server) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{server.server_port}"


def _say_serving(url: str):
    """What the server calls once it answers: the line a user (or a test) opens the URL from."""
    return lambda: print(f"serving on {url} (Ctrl-C stops it)", flush=True)


def _is_group(args) -> bool:
    """A name that is not a sweep under --root (a replicate group, or a typo `open_sweeps` names)."""
    import os

    from nasforge.platform.engine.storage import CONFIG_FILE

    return not os.path.exists(os.path.join(args.root, args.names[0], CONFIG_FILE))


def _dashboard_many(args, server) -> int:
    from nasforge.platform.views.compare import open_sweeps
    from nasforge.platform.views.dashboard import compare_path, serve_many, shared_storage

    runs = open_sweeps(args.names, args.root, args.storage)
    store, ids, copied = shared_storage(runs)
    print(f"dashboard for {len(runs)} sweeps ({', '.join(r.name for r in runs)})"
          + ("; their storages differ, so they were copied into one (a snapshot: restart to refresh)" if copied
             else f", storage {runs[0].storage_url}"))
    serve_many(store, server, _say_serving(f"{_address(args.host, server)}{compare_path(ids)}"))
    return 0
