"""Leaderboards: a sweep's trials as rows, ranked by the objectives, printed as a table.

`leaderboard_rows(study, cfg)` gives plain dicts (used by the CLI, the HTML report and the W&B
summary table); `render_leaderboard` prints them with rich. Single-objective sweeps rank by
the objective; multi-objective sweeps list the Pareto front first (rank 1), then the rest by
non-domination rank.
"""
from __future__ import annotations

from typing import Any, Sequence

STATE_ORDER = {"COMPLETE": 0, "PRUNED": 1, "RUNNING": 2, "WAITING": 3, "FAIL": 4}


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def short_label(label: str) -> str:
    """``convnet/stage1/depth`` -> ``stage1/depth``; ``hp/lr`` -> ``lr``."""
    parts = label.split("/")
    return "/".join(parts[-2:]) if len(parts) > 2 else parts[-1]


def sample_text(sample: dict[str, Any], max_len: int = 80) -> str:
    parts = [f"{short_label(k)}={_short(v)}" for k, v in sample.items()]
    text = " ".join(parts)
    return text if len(text) <= max_len else text[: max_len - 1] + "…"


def _pareto_ranks(trials, directions: list[str]) -> dict[int, int]:
    signs = [1 if d == "maximize" else -1 for d in directions]
    pts = {t.number: [s * v for s, v in zip(signs, t.values)] for t in trials}
    ranks, remaining, r = {}, set(pts), 1
    while remaining:
        front = {a for a in remaining
                 if not any(all(x >= y for x, y in zip(pts[b], pts[a])) and pts[b] != pts[a] for b in remaining)}
        for a in front:
            ranks[a] = r
        remaining -= front
        r += 1
    return ranks


def leaderboard_rows(study, cfg, limit: int | None = None, include_unfinished: bool = True,
                     columns: Sequence[str] = ()) -> list[dict[str, Any]]:
    """One row per trial, best first; ``columns``: more metrics read from each trial's ``metrics``."""
    trials = study.get_trials(deepcopy=False)
    metrics = [o.metric for o in cfg.objectives]
    complete = [t for t in trials if t.state.name == "COMPLETE" and t.values is not None]
    if cfg.multi_objective:
        ranks = _pareto_ranks(complete, cfg.directions)
        key_complete = lambda t: (ranks[t.number], t.number)  # noqa: E731
    else:
        sign = -1 if cfg.directions[0] == "maximize" else 1
        ranks = {t.number: i + 1 for i, t in enumerate(sorted(complete, key=lambda t: sign * t.value))}
        key_complete = lambda t: (ranks[t.number],)  # noqa: E731
    rest = [t for t in trials if t not in complete] if include_unfinished else []
    by_state = sorted(rest, key=lambda t: (STATE_ORDER.get(t.state.name, 9), t.number))
    ordered = sorted(complete, key=key_complete) + by_state
    rows = []
    for t in ordered[: limit or None]:
        m = t.user_attrs.get("metrics") or {}
        row = {
            "rank": ranks.get(t.number) if t.number in ranks else None,
            "trial": t.number,
            "state": t.state.name,
            **{name: (t.values[i] if t.values is not None and t.state.name == "COMPLETE" else m.get(name))
               for i, name in enumerate(metrics)},
            **{c: m.get(c) for c in columns},
            "cost/params": m.get("cost/params"),
            "cost/flops": m.get("cost/flops"),
            "seconds": (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start else None,
            "sample": t.user_attrs.get("sample") or dict(t.params),
            "note": t.user_attrs.get("fail_reason") or (f"pruned after epoch {t.user_attrs['pruned_epoch']}"
                                                         if "pruned_epoch" in t.user_attrs else "")
            or t.user_attrs.get("note", ""),
            # a child of a trained trial (strategy morphism): its ancestors, first to parent, then itself
            "lineage": " > ".join(map(str, [*t.user_attrs["lineage"], t.number]))
            if t.user_attrs.get("lineage") else "",
        }
        rows.append(row)
    return rows


def render_leaderboard(study, cfg, console=None, limit: int = 10, title: str | None = None,
                       columns: Sequence[str] = ()) -> None:
    from nasforge.platform.console import terminal_console
    from rich.table import Table

    console = console or terminal_console()
    metrics = [o.metric for o in cfg.objectives]
    table = Table(title=title or f"leaderboard: {cfg.name}", header_style="bold")
    table.add_column("rank" if not cfg.multi_objective else "front", justify="right")
    table.add_column("trial", justify="right")
    table.add_column("state")
    for m, o in zip(metrics, cfg.objectives):
        table.add_column(f"{m} {'↑' if o.direction == 'maximize' else '↓'}", justify="right")
    for c in columns:
        table.add_column(c, justify="right")
    table.add_column("params", justify="right")
    table.add_column("MFLOPs", justify="right")
    table.add_column("time s", justify="right")
    rows = leaderboard_rows(study, cfg, limit=limit, columns=columns)
    lineage = any(r["lineage"] for r in rows)
    if lineage:
        table.add_column("lineage")
    table.add_column("sample / note")
    for r in rows:
        colour = {"COMPLETE": "green", "PRUNED": "yellow", "FAIL": "red"}.get(r["state"], "cyan")
        table.add_row(
            str(r["rank"] or ""), str(r["trial"]), f"[{colour}]{r['state']}[/]",
            *[_short(r[m]) if r[m] is not None else "" for m in metrics],
            *[_short(r[c]) if r[c] is not None else "" for c in columns],
            f"{int(r['cost/params']):,}" if r["cost/params"] is not None else "",
            f"{r['cost/flops'] / 1e6:.2f}" if r["cost/flops"] is not None else "",
            f"{r['seconds']:.1f}" if r["seconds"] is not None else "",
            *([r["lineage"]] if lineage else []),
            r["note"] if r["state"] == "FAIL" else sample_text(r["sample"]) + (f"  ({r['note']})" if r["note"] else ""),
        )
    console.print(table)
