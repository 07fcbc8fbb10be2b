"""`nasforge sweep run FILE` for a ``mode: zero_cost`` sweep file: the phases of
`engine.zero_cost.run_zero_cost` with progress bars, then two leaderboards: the proxy-scored
samples (no training) and the trained top-k (promote from this one)."""
from __future__ import annotations

import os


def run_zero_cost_command(cfg, root: str, show_progress: bool = True) -> int:
    from nasforge.platform.console import terminal_console
    from nasforge.platform.engine.zero_cost import run_zero_cost
    from nasforge.platform.views.leaderboard import render_leaderboard

    console = terminal_console()
    z = cfg.zero_cost
    console.print(f"[bold]nasforge[/] zero-cost sweep [cyan]{cfg.name}[/]: score {z.samples} samples with "
                  f"{', '.join(z.proxies)}, train the top {z.top_k} by {z.rank_by} → {os.path.join(root, cfg.name)}")
    out = run_zero_cost(cfg, root, show_progress=show_progress, console=console)
    render_scores(out["scores"], cfg, console, z.top_k + 3)
    render_leaderboard(out["retrain"], cfg, console=console,
                       title=f"trained: {cfg.name} (promote with `nasforge promote {cfg.name} --best`)")
    return 0


def render_scores(study, cfg, console, limit: int) -> None:
    from nasforge.platform.views.leaderboard import render_leaderboard

    render_leaderboard(study, cfg, console=console, limit=limit,
                       title=f"zero-cost scores: {study.study_name} (untrained networks)")
