"""The comparison page: one self-contained HTML file drawing `compare.compare`'s numbers.

Per shared objective: best so far against trials and against wall time (each group's mean over its
replicates, with a band of one standard error), the group table (final best mean +/- SE, trials to
the threshold, trial counts, compute time) and the differences between groups in words. Then the
Pareto fronts overlaid (two shared objectives or more), parameter importances side by side and each
group's best architectures with their diagrams. The page is a jinja2 template; plotly.js is inlined
once and images are data URIs (as in `report`), so it opens with no network. A manifest
(``<script id="nasforge-compare">``) names each figure's groups, for tests and scripts.
"""
from __future__ import annotations

import datetime as _dt
import html
import json
import os
import warnings

from nasforge.platform.views.compare import Member, curves, groups_of
from nasforge.platform.views.report import CSS, _data_uri, _fmt, trial_images
from nasforge.platform.views.templates import render, safe

TOP_ARCHITECTURES = 2
IMPORTANCE_TRIALS = 300  # a group's importances are fitted on this many of its last trials (pooled)

TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>nasforge comparison: {{ title }}</title>
<style>{{ css }}
table.cmp td:first-child{text-align:left} .diff li{margin:2px 0}</style>
<script type="text/javascript">{{ plotlyjs }}</script>
<script type="application/json" id="nasforge-compare">{{ manifest }}</script>
</head><body>
<h1>Comparison: {{ title }}</h1>
<p class="note">nasforge compare, {{ now }}; {{ sweeps|length }} sweeps in {{ groups|length }} groups.
Self-contained: opens with no network.</p>
<dl class="summary">{% for g, names in groups.items() %}<dt>{{ g }}</dt><dd>{{ names|join(", ") }}</dd>{% endfor %}</dl>
{% if notes %}<h2>Not compared</h2><ul id="notes">{% for n in notes %}<li>{{ n }}</li>{% endfor %}</ul>{% endif %}
{% for metric, o in objectives.items() %}
<h2>{{ metric }} ({{ o.direction }})</h2>
<table class="lb cmp" id="table-{{ loop.index0 }}"><thead><tr><th>group</th><th>sweeps</th><th>final best</th>
<th>per seed</th><th>trials to {{ fmt(o.threshold) }}</th><th>trials</th><th>pruned</th>
<th>failed</th><th>compute s</th></tr></thead><tbody>
{% for g, r in o.groups.items() %}<tr data-group="{{ g }}" data-mean="{{ r.mean }}" data-se="{{ r.se }}">
<td>{{ g }}</td><td>{{ r.n }}</td><td>{{ fmt(r.mean) }} ± {{ fmt(r.se) }}</td>
<td>{% for s, v in r.final_best.items() %}{{ fmt(v) }} {% endfor %}</td>
<td>{{ fmt(r.trials_to_threshold) if r.trials_to_threshold is not none else "-" }}
({{ r.reached }} of {{ r.sweeps|length }})</td><td>{{ r.trials }}</td><td>{{ r.pruned }}</td><td>{{ r.failed }}</td>
<td>{{ "%.1f"|format(r.compute_seconds) }}</td></tr>
{% endfor %}</tbody></table>
{% if o.differences %}<ul class="diff">{% for d in o.differences %}<li>{{ d.words }}</li>{% endfor %}</ul>{% endif %}
{% for key in o.figures %}<div class="plot">{{ plots[key] }}</div>{% endfor %}
{% endfor %}
{% for key in extra %}<h2>{{ titles[key] }}</h2>{% if plots[key] %}<div class="plot">{{ plots[key] }}</div>
{% else %}<p class="note">{{ notes_by_key[key] }}</p>{% endif %}{% endfor %}
<h2>Top architectures</h2>
{% for g, blocks in architectures.items() %}<h3>{{ g }}</h3>{{ blocks }}{% endfor %}
</body></html>
"""


def _band_figure(title: str, xtitle: str, ytitle: str, series: dict[str, tuple]) -> object:
    """Lines of each group's mean with a filled band of +/- one standard error."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative

    fig = go.Figure()
    for i, (g, (x, mid, se)) in enumerate(series.items()):
        colour = qualitative.Plotly[i % len(qualitative.Plotly)]
        keep = [k for k, m in enumerate(mid) if m is not None]
        xs, ms = [x[k] for k in keep], [mid[k] for k in keep]
        es = [se[k] or 0.0 for k in keep]
        upper, lower = [m + e for m, e in zip(ms, es)], [m - e for m, e in zip(ms, es)]
        fig.add_trace(go.Scatter(x=xs + xs[::-1], y=upper + lower[::-1],
                                 fill="toself", fillcolor=colour, opacity=0.2, line=dict(width=0), hoverinfo="skip",
                                 legendgroup=g, showlegend=False, name=f"{g} ± SE"))
        fig.add_trace(go.Scatter(x=xs, y=ms, mode="lines", name=g, legendgroup=g, line=dict(color=colour)))
    fig.update_layout(title=title, xaxis_title=xtitle, yaxis_title=ytitle, margin=dict(t=40))
    return fig


def _pareto_figure(groups: dict[str, list[Member]], metrics: list[str]) -> object:
    import plotly.graph_objects as go

    fig = go.Figure()
    for g, gm in groups.items():
        pts = []
        for m in gm:
            idx = [[o.metric for o in m.run.cfg.objectives].index(k) for k in metrics[:2]]
            pts += [(t.values[idx[0]], t.values[idx[1]], m.name, t.number) for t in m.run.study.best_trials]
        pts.sort()
        fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="markers", name=g,
                                 text=[f"{p[2]} trial {p[3]}" for p in pts]))
    fig.update_layout(title="Pareto fronts", xaxis_title=metrics[0], yaxis_title=metrics[1])
    return fig


def _importances(groups: dict[str, list[Member]], metric: str) -> tuple[object | None, str]:
    """Grouped bars: each group's mean importance of each parameter for ``metric``."""
    import optuna
    import plotly.graph_objects as go

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    per: dict[str, dict[str, float]] = {}
    for g, gm in groups.items():  # one fit per group, on its replicates' last trials pooled
        i = [o.metric for o in gm[0].run.cfg.objectives].index(metric)
        done = [t for m in gm for t in [t for t in m.trials if t.state.name == "COMPLETE" and t.values is not None]
                [-max(2, IMPORTANCE_TRIALS // len(gm)):]]
        if len(done) < 2:
            continue
        study = optuna.create_study(directions=gm[0].run.study.directions)
        study.add_trials([t for t in done if len(t.values) == len(study.directions)])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                per[g] = optuna.importance.get_param_importances(study, target=lambda t, i=i: t.values[i])
        except (RuntimeError, ValueError):
            continue
    if not per:
        return None, "needs at least two completed trials with searched parameters in a group"
    params = sorted({k for d in per.values() for k in d}, key=lambda k: -max(d.get(k, 0) for d in per.values()))
    fig = go.Figure([go.Bar(x=params, y=[d.get(k, 0.0) for k in params], name=g) for g, d in per.items()])
    fig.update_layout(barmode="group", title=f"Parameter importances for {metric}", yaxis_title="importance")
    return fig, ""


def _diagrams(m: Member, t) -> list[str]:
    """The trial's own pictures, else (a table look-up draws none) its sample drawn by the sweep's
    space, when that space is a built-in one (a user's space class is not imported to read results)."""
    files = trial_images(t)
    if files or any(p.class_path for p in m.run.cfg.space):
        return [_data_uri(p) for p in files]
    import tempfile

    from nasforge.platform.engine.resolve import space_parts
    from nasforge.search_spaces import create_composite

    try:
        with tempfile.TemporaryDirectory() as tmp:
            space = create_composite(space_parts(m.run.cfg))
            return [_data_uri(p) for p in space.draw(t.user_attrs.get("sample") or t.params,
                                                     os.path.join(tmp, "architecture")) if p.endswith(".png")]
    except Exception:  # noqa: BLE001 - a picture must never cost the page
        return []


def _architectures(gm: list[Member], metric: str, maximize: bool) -> str:
    done = [(t.values[[o.metric for o in m.run.cfg.objectives].index(metric)], m, t) for m in gm
            for t in m.trials if t.state.name == "COMPLETE" and t.values is not None]
    done.sort(key=lambda x: -x[0] if maximize else x[0])
    out, seen = [], set()
    for v, m, t in done:  # the best distinct architectures (replicates often find the same one)
        key = json.dumps(t.user_attrs.get("sample") or t.params, sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        if len(seen) > TOP_ARCHITECTURES:
            break
        imgs = "".join(f"<figure><img alt='architecture of {html.escape(m.name)} trial {t.number}' src='{uri}'>"
                       "</figure>" for uri in _diagrams(m, t))
        sample = t.user_attrs.get("sample") or t.params
        text = " ".join(f"<span>{html.escape(str(k))}={html.escape(_fmt(x))}</span>" for k, x in sample.items())
        out.append(f"<div class='arch'><h4>{html.escape(m.name)} trial {t.number}: {html.escape(metric)} = "
                   f"{_fmt(v)}</h4>{imgs or ''}<p class='sample'>{text}</p></div>")
    return "".join(out) or "<p class='note'>no completed trial</p>"


def figures(data: dict, ms: list[Member]) -> tuple[dict, dict, dict]:
    """(plotly figures by key, the groups each shows, notes for figures that could not be drawn)."""
    groups = groups_of(ms)
    figs, notes = {}, {}
    for i, (metric, o) in enumerate(data["objectives"].items()):
        maximize = o["direction"] == "maximize"
        cs = {g: curves(gm, metric, maximize) for g, gm in groups.items()}
        figs[f"best{i}-trials"] = _band_figure(f"Best {metric} so far against trials", "trials", metric,
                                               {g: (c["trial"], c["mean"], c["se"]) for g, c in cs.items()})
        figs[f"best{i}-time"] = _band_figure(f"Best {metric} so far against wall time", "seconds", metric,
                                             {g: (c["time"], c["time_mean"], c["time_se"]) for g, c in cs.items()})
        o["figures"] = [f"best{i}-trials", f"best{i}-time"]
    metrics = list(data["objectives"])
    if len(metrics) >= 2:
        figs["pareto"] = _pareto_figure(groups, metrics)
    fig, note = _importances(groups, metrics[0])
    figs["importance"] = fig
    if fig is None:
        notes["importance"] = note
    shown = {k: [t.name for t in f.data if t.showlegend is not False] for k, f in figs.items() if f is not None}
    return figs, shown, notes


def render_page(data: dict, ms: list[Member]) -> str:
    from plotly.offline import get_plotlyjs

    figs, shown, notes = figures(data, ms)
    plots = {k: (f.to_html(full_html=False, include_plotlyjs=False, div_id=f"plot-{k}", default_width="100%",
                           default_height="440px", config={"displaylogo": False, "responsive": True})
                 if f is not None else "") for k, f in figs.items()}
    metric = list(data["objectives"])[0]
    maximize = data["objectives"][metric]["direction"] == "maximize"
    extra = [k for k in ("pareto", "importance") if k in figs]
    manifest = json.dumps({"groups": list(data["groups"]), "figures": shown, "notes": notes}).replace("</", "<\\/")
    page = render(
        TEMPLATE, fmt=_fmt, title=", ".join(data["groups"]), css=CSS, plotlyjs=safe(get_plotlyjs()),
        manifest=safe(manifest), sweeps=data["sweeps"], groups=data["groups"],
        notes=data["notes"], objectives=data["objectives"], now=_dt.datetime.now(_dt.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"),
        plots={k: safe(v) for k, v in plots.items()}, extra=extra,
        titles={"pareto": "Pareto fronts", "importance": f"Parameter importances for {metric}"},
        notes_by_key=notes,
        architectures={g: safe(_architectures(gm, metric, maximize))
                       for g, gm in groups_of(ms).items()})
    return page
