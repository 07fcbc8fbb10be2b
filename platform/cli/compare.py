"""`nasforge compare A B ...`: sweeps side by side (see `views.compare`), as a page and a table."""
from __future__ import annotations

from nasforge.platform.cli.common import add_json, add_root


HELP = "compare sweeps (names, globs or replicate groups): one HTML page and a table"


def register(subparsers) -> None:
    configure(subparsers.add_parser("compare", help=f"{HELP} (same as `nasforge sweep compare`)"))


def configure(p) -> None:
    """``compare NAME [NAME ...] [-o FILE] [--threshold X] [--format table|json] [--json] [--wandb]``."""
    p.description = ("Compare sweeps side by side: best so far against trials and wall time (mean and a "
                     "standard-error band over seeds), final best mean +/- SE per group, trials to a "
                     "threshold, the differences between groups with a paired or rank test, Pareto fronts, "
                     "parameter importances and the top architectures. Reads only the studies.")
    p.add_argument("names", nargs="+", metavar="NAME",
                   help="sweep names, globs over the sweeps under --root (quote them: 'nb201-*-s*'), or the "
                        "group name of replicated sweeps (`sweep run FILE --seeds 0-4`)")
    p.add_argument("-o", "--output", default=None, metavar="FILE",
                   help="the HTML page to write (default: <root>/compare.html)")
    add_root(p)
    p.add_argument("--storage", default=None, metavar="URL",
                   help="one storage URL for every sweep, if not the ones recorded in their run folders")
    p.add_argument("--threshold", type=float, default=None,
                   help="the objective level for 'trials to reach' (default: the median final best)")
    p.add_argument("--format", choices=("table", "json"), default="table",
                   help="terminal output: a table (default) or JSON")
    add_json(p)
    p.add_argument("--no-page", action="store_true", help="print only; write no HTML page")
    p.add_argument("--wandb", action="store_true",
                   help="also log the comparison as one W&B run (its tables and plots), grouped with the sweeps")
    p.set_defaults(func=_compare)


def _compare(args) -> int:
    import json
    import os
    import sys

    from nasforge.platform.views.compare import compare, members, open_sweeps

    runs = open_sweeps(args.names, args.root, args.storage)
    data = compare(runs, args.threshold)
    if not args.no_page:
        from nasforge.platform.views.compare_page import render_page

        out = os.path.abspath(args.output or os.path.join(args.root, "compare.html"))
        os.makedirs(os.path.dirname(out), exist_ok=True)
        page = render_page(data, members(runs))
        with open(out + ".tmp", "w", encoding="utf-8") as f:
            f.write(page)
        os.replace(out + ".tmp", out)
        data["page"] = out
    if args.wandb:
        from nasforge.platform.views.wandb_summary import log_comparison

        folder = os.path.dirname(os.path.abspath(args.output)) if args.output else os.path.abspath(args.root)
        data["wandb"] = log_comparison(data, members(runs), folder)
    if args.json or args.format == "json":
        json.dump(data, sys.stdout, indent=2, default=str)
        print()
        return 0
    from nasforge.platform.views.compare_table import print_comparison

    print_comparison(data)
    return 0
