"""The sweep report: one self-contained HTML page that opens with no network.

`write_report(name, out, root, storage)` reads a sweep back (`run_folder.open_run`) and writes
a single file holding: a summary (task, space, strategy, objectives, trial counts, best trial),
the leaderboard (`leaderboard.leaderboard_rows`: rank, state, objectives, parameters, FLOPs,
time, the sample, the other validation metrics), and Optuna's plotly figures
(`optuna.visualization`): optimization history, parameter importances, parallel coordinates,
intermediate values (or, when the trials reported none, the per-epoch ``history`` the runner
recorded), for multi-objective sweeps the Pareto front, for a morphism sweep its family tree
(`lineage.py`); last, the architecture diagrams
(every ``*.png`` in the top trials' folders). plotly.js is inlined once and images are data
URIs, so the page needs nothing but the file. A one-shot sweep's report also holds its search on
the supernet (the best samples by inherited-weight score, and that search's history). A figure
that cannot be drawn (too few trials, importances with one completed trial) leaves a one-line
note instead of failing the report.

`sweep_figures(study, cfg)` is shared with the W&B sweep summary (`sweep_summary`).
"""
from __future__ import annotations

import base64
import datetime as _dt
import glob
import json
import os
import warnings
from dataclasses import dataclass
from typing import Any

TOP_DIAGRAMS = 3
SEARCH_ROWS = 20  # a one-shot sweep's search: its best samples shown


@dataclass
class Figure:
    key: str  # stable id, e.g. "history"
    title: str
    fig: Any = None  # a plotly Figure, or None with a note
    note: str = ""


def _complete(study):
    return [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE" and t.values is not None]


def _history_figure(study, cfg):
    """Per-epoch curves of the first objective from the ``history`` user attr (the runner's
    MetricHistory), for sweeps whose trials reported nothing to Optuna."""
    import plotly.graph_objects as go

    metric = cfg.objectives[0].metric
    fig = go.Figure()
    for t in study.get_trials(deepcopy=False):
        hist = t.user_attrs.get("history") or []
        pts = [(r.get("epoch", i), r[metric]) for i, r in enumerate(hist) if isinstance(r, dict) and metric in r]
        if pts:
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers",
                                     name=f"trial {t.number}"))
    if not fig.data:
        return None
    fig.update_layout(title=f"{metric} per epoch", xaxis_title="epoch", yaxis_title=metric)
    return fig


def sweep_figures(study, cfg) -> list[Figure]:
    """The report's plots, each a plotly figure or a note saying why it is absent."""
    import optuna.visualization as vis

    names = [o.metric for o in cfg.objectives]
    complete = _complete(study)
    multi = len(names) > 1
    out: list[Figure] = []

    def attempt(key, title, make, need=1):
        if len(complete) < need:
            out.append(Figure(key, title, None, f"needs at least {need} completed trial{'s' * (need > 1)}; "
                                                f"this sweep has {len(complete)}"))
            return
        try:
            with warnings.catch_warnings():
                # optuna warns on every importance call with a target (we negate maximised ones)
                warnings.filterwarnings("ignore", message=".*(PedAnova|quantiles select).*")
                fig = make()
            fig.update_layout(title=title)
            out.append(Figure(key, title, fig))
        except Exception as e:  # a plot must never cost the report
            first = str(e).splitlines()[0] if str(e) else ""
            out.append(Figure(key, title, None, f"could not be drawn: {type(e).__name__}: {first}"))

    if multi:
        for i, m in enumerate(names):
            attempt(f"history{i}", f"Optimization history: {m}",
                    lambda i=i, m=m: vis.plot_optimization_history(study, target=lambda t: t.values[i], target_name=m))
        if len(names) <= 3:
            attempt("pareto", "Pareto front", lambda: vis.plot_pareto_front(study, target_names=names))
        # importance evaluators look for what makes the target *low*: negate a maximised one
        sign0 = -1.0 if cfg.objectives[0].direction == "maximize" else 1.0
        attempt("importance", f"Parameter importances for {names[0]}",
                lambda: vis.plot_param_importances(study, target=lambda t: sign0 * t.values[0],
                                                   target_name=names[0]), need=2)
        attempt("parallel", f"Parallel coordinates: {names[0]}",
                lambda: vis.plot_parallel_coordinate(study, target=lambda t: t.values[0], target_name=names[0]))
    else:
        attempt("history", f"Optimization history: {names[0]}",
                lambda: vis.plot_optimization_history(study, target_name=names[0]))
        attempt("importance", f"Parameter importances for {names[0]}",
                lambda: vis.plot_param_importances(study, target_name=names[0]), need=2)
        attempt("parallel", f"Parallel coordinates: {names[0]}",
                lambda: vis.plot_parallel_coordinate(study, target_name=names[0]))
    has_intermediate = any(t.intermediate_values for t in study.get_trials(deepcopy=False))
    if has_intermediate:
        attempt("intermediate", f"Intermediate values: {names[0]} per epoch",
                lambda: vis.plot_intermediate_values(study), need=0)
    else:
        fig = _history_figure(study, cfg)
        if fig is not None:
            fig.update_layout(title=f"Learning curves: {names[0]} per epoch")
            out.append(Figure("intermediate", f"Learning curves: {names[0]} per epoch", fig))
        else:
            out.append(Figure("intermediate", "Intermediate values", None,
                              "no trial has reported per-epoch values (Optuna receives them when a pruner is on) "
                              "or recorded a per-epoch history"))
    from nasforge.platform.views.lineage import family_tree_figure

    tree = None if multi else family_tree_figure(study, names[0])
    if tree is not None:  # a morphism sweep: children of trained trials
        out.append(Figure("lineage", "Family tree: each child beside its parent", tree))
    return out


def trial_images(trial) -> list[str]:
    """PNG files a trial left in its folder (architecture diagrams, overlays)."""
    files = [f for f in trial.user_attrs.get("diagrams") or [] if f.endswith(".png") and os.path.exists(f)]
    d = trial.user_attrs.get("trial_dir")
    if d and os.path.isdir(d):
        files += [f for f in sorted(glob.glob(os.path.join(d, "*.png"))) if f not in files]
    return files


def _data_uri(path: str) -> str:
    with open(path, "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode("ascii")


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _board(study, cfg, limit: int | None = None) -> dict[str, Any]:
    """The leaderboard as the template draws it: the header and, per row, its cells."""
    from nasforge.platform.views.leaderboard import leaderboard_rows

    rows = leaderboard_rows(study, cfg, limit=limit)
    names = [o.metric for o in cfg.objectives]
    arrows = {o.metric: "↑" if o.direction == "maximize" else "↓" for o in cfg.objectives}
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    extra = sorted({k for r in rows for k in (by_number[r["trial"]].user_attrs.get("metrics") or {})
                    if k.startswith(("val/", "supernet/", "proxy/")) and k not in names})
    lineage = ["lineage"] if any(r["lineage"] for r in rows) else []
    head = (["front" if cfg.multi_objective else "rank", "trial", "state"]
            + [f"{m} {arrows[m]}" for m in names] + ["params", "MFLOPs", "time s"] + extra + lineage
            + ["sample", "note"])
    out = []
    for r in rows:
        m = by_number[r["trial"]].user_attrs.get("metrics") or {}
        cells = ([_fmt(r[n]) for n in names]
                 + [_fmt(int(r["cost/params"])) if r["cost/params"] is not None else "",
                    f"{r['cost/flops'] / 1e6:.3g}" if r["cost/flops"] is not None else "",
                    f"{r['seconds']:.1f}" if r["seconds"] is not None else ""]
                 + [_fmt(m.get(k)) for k in extra] + [r["lineage"] for _ in lineage])
        out.append({"rank": _fmt(r["rank"]), "trial": r["trial"], "state": r["state"], "cells": cells,
                    "sample": [f"{k}={_fmt(v)}" for k, v in (r["sample"] or {}).items()],
                    "note": str(r["note"] or "")})
    return {"head": head, "rows": out}


def _summary(run, study) -> list[tuple[str, str]]:
    cfg = run.cfg
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    objectives = ", ".join(f"{o.direction} {o.metric}" for o in cfg.objectives)
    items = [
        ("task", cfg.task.label),
        ("space", " + ".join(p.name for p in cfg.space)),
        ("strategy", cfg.strategy.name), ("pruner", cfg.pruner.name), ("objectives", objectives),
        ("trials", ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) or "none"),
        ("storage", run.storage_url), ("run folder", run.run_dir),
    ]
    complete = _complete(study)
    if complete and not cfg.multi_objective:
        b = study.best_trial
        items.append(("best", f"trial {b.number}: {cfg.objectives[0].metric} = {b.value:.4g}"))
    elif complete:
        items.append(("Pareto front", ", ".join(f"trial {t.number}" for t in study.best_trials)))
    return [(k, str(v)) for k, v in items]


def _search(run) -> tuple[dict[str, Any], list[Figure]]:
    """A one-shot sweep's search on the supernet (a zero-cost sweep's proxy scores): its best
    ``SEARCH_ROWS`` samples by inherited-weight score (by proxy score; the leaderboard above holds
    the trained ones) and its optimization history."""
    import optuna.visualization as vis

    from nasforge.platform.engine.oneshot import load_search_study
    from nasforge.platform.engine.zero_cost import load_zero_cost_study

    zero_cost = run.cfg.mode == "zero_cost"
    title = "Zero-cost scores (untrained networks)" if zero_cost else "Search on the supernet (inherited weights)"
    study = (load_zero_cost_study if zero_cost else load_search_study)(run.name, run.storage_url)
    if study is None:
        return {"title": title, "note": "the search has not started", "board": None}, []
    scored = _complete(study)
    view = run.cfg
    if zero_cost:
        how = (f"proxy/{run.cfg.zero_cost.rank_by} of the untrained network on one training batch",
               run.cfg.zero_cost.top_k)
    else:
        from nasforge.platform.engine.oneshot_rank import search_view

        view, _, what = search_view(run.cfg)
        how = (what, run.cfg.oneshot.top_k)
    note = (f"{len(scored)} samples of study {study.study_name} scored by {how[0]}; the best {how[1]} were "
            f"trained as the trials of the leaderboard above. Best {min(SEARCH_ROWS, len(scored))} shown.")
    search = {"title": title, "note": note, "board": _board(study, view, limit=SEARCH_ROWS)}
    if not scored:
        return search, []
    fig = vis.plot_optimization_history(study, target_name=study.metric_names[0] if zero_cost else
                                        f"{view.objectives[0].metric} (search score)")
    return search, [Figure("search_history", "Search on the supernet: optimization history", fig)]


def _architectures(study, cfg) -> list[dict[str, Any]]:
    """The top trials' diagrams (data URIs), with their place and scores."""
    from nasforge.platform.views.leaderboard import leaderboard_rows

    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    out = []
    for r in leaderboard_rows(study, cfg, include_unfinished=False)[:TOP_DIAGRAMS]:
        t = by_number[r["trial"]]
        out.append({"number": t.number,
                    "place": f"Pareto front {r['rank']}" if cfg.multi_objective else f"rank {r['rank']}",
                    "score": ", ".join(f"{o.metric} = {_fmt(r[o.metric])}" for o in cfg.objectives),
                    "images": [{"name": os.path.basename(p), "uri": _data_uri(p)} for p in trial_images(t)]})
    return out


CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#222;max-width:1320px}
h1{margin-bottom:4px} h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
.summary{display:grid;grid-template-columns:max-content auto;gap:2px 16px}
.summary dt{font-weight:600} .summary dd{margin:0}
table.lb{border-collapse:collapse;font-size:13px}
.lb th,.lb td{border:1px solid #ddd;padding:3px 6px;text-align:right;vertical-align:top}
.lb th{background:#f3f3f3} .lb td.sample{text-align:left;font-family:monospace;font-size:12px;max-width:560px}
.lb td.sample span{display:inline-block;margin-right:12px;white-space:nowrap}
.st.COMPLETE{color:#1a7f37}.st.PRUNED{color:#9a6700}.st.FAIL{color:#cf222e}.st.RUNNING{color:#0969da}
.note{color:#666;font-style:italic} .plot{margin:8px 0 24px}
.arch figure{display:inline-block;margin:8px} .arch img{max-width:620px;border:1px solid #eee}
"""


def render_report(run) -> str:
    import plotly
    from plotly.offline import get_plotlyjs

    from nasforge.platform.views.templates import REPORT, render, safe

    study, cfg = run.study, run.cfg
    figures = sweep_figures(study, cfg)
    search = None
    if cfg.mode in ("one_shot", "zero_cost"):
        search, search_figures = _search(run)
        figures += search_figures
    plots = []
    for f in figures:
        div = None
        if f.fig is not None:
            f.fig.update_layout(title=None, margin=dict(t=30))  # the section heading names it
            div = safe(f.fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"plot-{f.key}",
                                     default_width="100%", default_height="480px",
                                     config={"displaylogo": False, "responsive": True}))
        plots.append({"key": f.key, "title": f.title, "note": f.note, "div": div})
    manifest = {"sweep": cfg.name, "figures": [f.key for f in figures if f.fig is not None],
                "notes": {f.key: f.note for f in figures if f.fig is None}}
    return render(REPORT, name=cfg.name, css=CSS, plotlyjs=safe(get_plotlyjs()),
                  manifest=safe(json.dumps(manifest).replace("</", "<\\/")),  # safe inside <script>
                  now=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                  plotly_version=plotly.__version__, summary=_summary(run, study), board=_board(study, cfg),
                  search=search, plots=plots, archs=_architectures(study, cfg))


def write_report(name: str, out: str | None = None, root: str = "runs", storage: str | None = None) -> str:
    """Write the report of sweep ``name`` to ``out`` (default ``<run folder>/report.html``)."""
    from nasforge.platform.engine.run_folder import open_run

    run = open_run(name, root, storage)
    page = render_report(run)
    out = out or os.path.join(run.run_dir, "report.html")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(page)
    os.replace(tmp, out)
    return os.path.abspath(out)
