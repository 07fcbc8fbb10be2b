"""`nasforge sweep dashboard NAME`: optuna-dashboard over a sweep's storage (see `views.dashboard`);
`nasforge dashboard` is its alias."""
from __future__ import annotations

from nasforge.platform.cli.common import add_alias, add_sweep_ref


HELP = "serve optuna-dashboard over a sweep's study (live while it runs)"


def register(subparsers) -> None:
    add_alias(subparsers, "dashboard", configure, HELP)


def configure(p) -> None:
    """``sweep dashboard NAME [--host H] [--port P] [--no-attach]``."""
    p.description = ("Serve optuna-dashboard over the sweep's storage, with each trial's architecture "
                     "diagram and checkpoint attached as Optuna artifacts. Stops with Ctrl-C.")
    add_sweep_ref(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    p.add_argument("--no-attach", action="store_true",
                   help="do not attach finished trials' diagrams and checkpoints that are not attached yet")
    p.set_defaults(func=_dashboard)


def _dashboard(args) -> int:
    import socket

    from nasforge.platform.engine.artifacts import attach_missing_artifacts
    from nasforge.platform.views.dashboard import serve
    from nasforge.platform.errors import UsageError
    from nasforge.platform.engine.run_folder import open_run

    if not 0 < args.port < 65536:
        raise UsageError(f"--port: {args.port} is not a TCP port (1-65535)")
    with socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET) as s:
        try:
            s.bind((args.host, args.port))
        except OSError as e:
            raise UsageError(f"cannot listen on {args.host}:{args.port}: {e.strerror} "
                             "(choose another --port)") from None
    run = open_run(args.name, args.root, args.storage)
    attached = 0 if args.no_attach else attach_missing_artifacts(run)
    n = len(run.study.get_trials(deepcopy=False))
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"dashboard for sweep {args.name!r} ({n} trials, storage {run.storage_url})"
          + (f"; attached {attached} trial files as artifacts" if attached else ""))
    print(f"serving on http://{host}:{args.port}/dashboard/ (Ctrl-C stops it)", flush=True)
    serve(run, args.host, args.port)
    return 0
