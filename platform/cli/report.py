"""`nasforge sweep report NAME`: write a sweep's self-contained HTML report (see `views.report`);
`nasforge report` is its alias."""
from __future__ import annotations

from nasforge.platform.cli.common import add_alias, add_json, add_sweep_ref


HELP = "write one self-contained HTML page: leaderboard, plots, top architectures"


def register(subparsers) -> None:
    add_alias(subparsers, "report", configure, HELP)


def configure(p) -> None:
    """``sweep report NAME [-o FILE] [--wandb] [--json]``."""
    p.description = ("Write a sweep's report: leaderboard, optimization history, parameter importances, "
                     "parallel coordinates, intermediate values, Pareto front (multi-objective) and the top "
                     "architectures' diagrams, in one HTML file that opens with no network.")
    add_sweep_ref(p)
    p.add_argument("-o", "--output", default=None, metavar="FILE",
                   help="the HTML file to write (default: <run folder>/report.html)")
    p.add_argument("--wandb", action="store_true",
                   help="also log the sweep-level W&B summary run (leaderboard table and plots)")
    add_json(p)
    p.set_defaults(func=_report)


def _report(args) -> int:
    import os

    from nasforge.platform.views.report import write_report

    path = write_report(args.name, args.output, args.root, args.storage)
    if not args.json:
        print(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB, self-contained)")
    out = {"report": path, "bytes": os.path.getsize(path)}
    if args.wandb:
        from nasforge.platform.engine.run_folder import open_run
        from nasforge.platform.views.wandb_summary import log_sweep_summary

        run = open_run(args.name, args.root, args.storage)
        folder = log_sweep_summary(run.study, run.cfg, run.run_dir)
        out["wandb_run_dir"] = folder
        if not args.json:
            print(f"W&B sweep summary run: {folder}" if folder else "W&B tracking is disabled for this sweep")
    if args.json:
        import json

        print(json.dumps(out))
    return 0
