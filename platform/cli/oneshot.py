"""`nasforge sweep run FILE` for a ``mode: one_shot`` sweep file: the three phases of
`engine.oneshot.run_oneshot` with progress bars, then two leaderboards: the search on the supernet
(inherited weights) and the retrained top-k (full training; promote from this one)."""

from __future__ import annotations

import os


def run_oneshot_command(cfg, root: str, show_progress: bool = True) -> int:
    from nasforge.platform.console import terminal_console

    from nasforge.platform.views.leaderboard import render_leaderboard
    from nasforge.platform.engine.oneshot import run_oneshot

    console = terminal_console()
    o = cfg.oneshot
    console.print(
        f"[bold]nasforge[/] one-shot sweep [cyan]{cfg.name}[/]: task {cfg.task.name} on "
        f"{cfg.task.data.name}, supernet of {cfg.space[0].name} "
        f"({o.epochs} epochs, {o.sampling} paths), "
        f"search {o.search_trials} samples with {cfg.strategy.name} ranked by {o.rank}, retrain top {o.top_k} "
        f"→ {os.path.join(root, cfg.name)}"
    )
    out = run_oneshot(cfg, root, show_progress=show_progress, console=console)
    _render_search(out["search"], cfg, console, o.top_k + 3)
    render_leaderboard(
        out["retrain"],
        cfg,
        console=console,
        title=f"retrained: {cfg.name} (promote with `nasforge promote {cfg.name} --best`)",
    )
    return 0


def _render_search(study, cfg, console, limit: int) -> None:
    from nasforge.platform.engine.oneshot_rank import search_view
    from nasforge.platform.views.leaderboard import render_leaderboard

    view, columns, _ = search_view(cfg)
    how = "inherited weights" if cfg.oneshot.rank == "supernet" else f"ranked by {cfg.oneshot.rank}"
    render_leaderboard(study, view, console=console, limit=limit, columns=columns,
                       title=f"search on the supernet: {study.study_name} ({how})")


def render_search(run, console, limit: int = 10) -> None:
    """For `nasforge sweep status`: the leaderboard of the study a one-shot sweep searched
    (inherited weights) or a zero-cost sweep scored (untrained networks) before its trials."""
    from nasforge.platform.engine.oneshot import load_search_study

    if run.cfg.mode == "zero_cost":
        from nasforge.platform.cli.zero_cost import render_scores
        from nasforge.platform.engine.zero_cost import load_zero_cost_study

        study, render, what = load_zero_cost_study(run.name, run.storage_url), render_scores, "zero-cost scores"
    else:
        study, render, what = load_search_study(run.name, run.storage_url), _render_search, "search on the supernet"
    if study is None:
        console.print(f"{what}: not started")
        return
    render(study, run.cfg, console, limit)
