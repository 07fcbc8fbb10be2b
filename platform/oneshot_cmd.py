"""`nasforge sweep run FILE` for a ``mode: one_shot`` sweep file: the three phases of
`oneshot.run_oneshot` with progress bars, then two leaderboards: the search on the supernet
(inherited weights) and the retrained top-k (full training; promote from this one)."""
from __future__ import annotations

import os


def run_oneshot_command(cfg, root: str, show_progress: bool = True) -> int:
    from rich.console import Console

    from .leaderboard import render_leaderboard
    from .oneshot import run_oneshot, search_study_name

    console = Console(width=None if Console().is_terminal else 160)
    o = cfg.oneshot
    console.print(f"[bold]nasforge[/] one-shot sweep [cyan]{cfg.name}[/]: task {cfg.task.name} on "
                  f"{cfg.task.data.name}, supernet of {cfg.space[0].name} ({o.epochs} epochs, {o.sampling} paths), "
                  f"search {o.search_trials} samples with {cfg.strategy.name}, retrain top {o.top_k} "
                  f"→ {os.path.join(root, cfg.name)}")
    out = run_oneshot(cfg, root, show_progress=show_progress, console=console)
    render_leaderboard(out["search"], cfg, console=console, limit=o.top_k + 3,
                       title=f"search on the supernet: {search_study_name(cfg.name)} (inherited weights)")
    render_leaderboard(out["retrain"], cfg, console=console,
                       title=f"retrained: {cfg.name} (promote with `nasforge promote {cfg.name} --best`)")
    return 0
