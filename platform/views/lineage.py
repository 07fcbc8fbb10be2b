"""The family tree of a morphism sweep: each trial a node at (trial number, objective value), a
line from each parent to each child (`engine/inheritance.py` records ``parent`` on a child), so a
reader sees which trained networks the search grew from. A plotly figure for the report; None
when no trial has a parent.
"""
from __future__ import annotations

from typing import Any


def family_tree_figure(study, metric: str) -> Any:
    import plotly.graph_objects as go

    trials = {t.number: t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"}
    edges = [(t.user_attrs["parent"], n) for n, t in trials.items()
             if t.user_attrs.get("parent") is not None and t.user_attrs["parent"] in trials]
    if not edges:
        return None
    xs: list = []
    ys: list = []
    for parent, child in edges:
        xs += [parent, child, None]
        ys += [trials[parent].value, trials[child].value, None]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="#999", width=1), hoverinfo="skip",
                             name="parent -> child"))
    numbers = sorted(trials)
    text = [f"trial {n}" + (f", child of {trials[n].user_attrs['parent']}" if trials[n].user_attrs.get("parent")
                            is not None else ", trained from scratch")
            + ("" if "inherited_metrics" in trials[n].user_attrs or trials[n].user_attrs.get("parent") is None
               else " (parent checkpoint missing)") for n in numbers]
    fig.add_trace(go.Scatter(x=numbers, y=[trials[n].value for n in numbers], mode="markers+text",
                             text=[str(n) for n in numbers], textposition="top center", hovertext=text,
                             hoverinfo="text", name="trial"))
    fig.update_layout(xaxis_title="trial", yaxis_title=metric, showlegend=False)
    return fig
