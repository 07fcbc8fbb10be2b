"""`nasforge report NAME`: write a sweep's self-contained HTML report (see `report`)."""
from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="write one self-contained HTML page: leaderboard, plots, top architectures",
        description="Write a sweep's report: leaderboard, optimization history, parameter importances, "
                    "parallel coordinates, intermediate values, Pareto front (multi-objective) and the top "
                    "architectures' diagrams, in one HTML file that opens with no network.",
    )
    p.add_argument("name", help="sweep name")
    p.add_argument("-o", "--output", default=None, metavar="FILE",
                   help="the HTML file to write (default: <run folder>/report.html)")
    p.add_argument("--root", default="runs", help="folder holding the sweeps' run folders (default: runs)")
    p.add_argument("--storage", default=None, metavar="URL", help="the study's storage URL, if not the recorded one")
    p.add_argument("--wandb", action="store_true",
                   help="also log the sweep-level W&B summary run (leaderboard table and plots)")
    p.set_defaults(func=_report)


def _report(args) -> int:
    import os

    from nasforge.platform.views.report import write_report

    path = write_report(args.name, args.output, args.root, args.storage)
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB, self-contained)")
    if args.wandb:
        from nasforge.platform.engine.run_folder import open_run
        from nasforge.platform.views.wandb_summary import log_sweep_summary

        run = open_run(args.name, args.root, args.storage)
        folder = log_sweep_summary(run.study, run.cfg, run.run_dir)
        print(f"W&B sweep summary run: {folder}" if folder else "W&B tracking is disabled for this sweep")
    return 0
