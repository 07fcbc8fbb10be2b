"""The comparison in the terminal: one rich table per shared objective, the differences in words,
and one line for each thing the sweeps do not share (works over SSH and in logs)."""
from __future__ import annotations

from nasforge.platform.views.report import _fmt


def print_comparison(data: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=None if Console().is_terminal else 160)
    for metric, o in data["objectives"].items():
        arrow = "↑" if o["direction"] == "maximize" else "↓"
        t = Table(title=f"{metric} {arrow}: final best per group", header_style="bold")
        for col in ("group", "sweeps", "mean ± SE", "per seed", f"trials to {_fmt(o['threshold'])}",
                    "trials", "pruned", "failed", "compute s"):
            t.add_column(col, justify="left" if col in ("group", "per seed") else "right")
        for g, r in o["groups"].items():
            reach = f"{_fmt(r['trials_to_threshold'])}" if r["trials_to_threshold"] is not None else "-"
            t.add_row(g, str(r["n"]), f"{_fmt(r['mean'])} ± {_fmt(r['se'])}",
                      " ".join(_fmt(v) for v in r["final_best"].values()),
                      f"{reach} ({r['reached']}/{len(r['sweeps'])})", str(r["trials"]), str(r["pruned"]),
                      str(r["failed"]), f"{r['compute_seconds']:.1f}")
        console.print(t)
        for d in o["differences"]:
            console.print(f"  {d['words']}", markup=False)
    for note in data["notes"]:
        console.print(f"not compared: {note}", markup=False)
    if data.get("page"):
        console.print(f"wrote {data['page']}", markup=False)
    if data.get("wandb"):
        console.print(f"W&B comparison run: {data['wandb']}", markup=False)
