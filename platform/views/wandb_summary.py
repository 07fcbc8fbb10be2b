"""The W&B sweep-level summary run: the leaderboard as a W&B Table, plus the report's plots.

Besides one W&B run per trial, `log_sweep_summary(study, cfg, run_dir)` creates one run per
sweep invocation (``job_type="sweep-summary"``, ``group`` = the sweep name or ``tracking.group``, like the trials'
runs, so W&B groups them together) holding:

* ``leaderboard``: a ``wandb.Table`` of every trial (rank, state, objectives, parameters,
  FLOPs, time, the other validation metrics, the sample as JSON, the note);
* ``plots/<name>``: the report's Optuna figures (`report.sweep_figures`) as ``wandb.Plotly``;
* ``architectures/trial<N>``: the top trials' diagrams as ``wandb.Image``;
* the summary: best trial number and objective values, trial counts by state.

The mode follows the sweep's tracking config (`tracking.resolve_mode`): offline writes a real
run folder under ``<run folder>/wandb/`` (read it back with ``wandb leet inspect --json``);
disabled logs nothing and returns None.
"""
from __future__ import annotations

import json
import os
from typing import Any

TOP_IMAGES = 3


def leaderboard_table(study, cfg) -> tuple[list[str], list[list[Any]]]:
    """(columns, rows) of the leaderboard, with plain JSON-able cells."""
    from nasforge.platform.views.leaderboard import leaderboard_rows

    rows = leaderboard_rows(study, cfg)
    names = [o.metric for o in cfg.objectives]
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    extra = sorted({k for r in rows for k in (by_number[r["trial"]].user_attrs.get("metrics") or {})
                    if k.startswith("val/") and k not in names})
    columns = ["rank", "trial", "state", *names, "cost/params", "cost/flops", "seconds", *extra, "sample", "note"]
    data = []
    for r in rows:
        m = by_number[r["trial"]].user_attrs.get("metrics") or {}
        cells = [r["rank"], r["trial"], r["state"], *[r[n] for n in names], r["cost/params"], r["cost/flops"],
                 r["seconds"], *[m.get(k) for k in extra], json.dumps(r["sample"], sort_keys=True, default=str),
                 str(r["note"] or "")]
        data.append([float(c) if isinstance(c, float) else c for c in cells])
    return columns, data


def log_sweep_summary(study, cfg, run_dir: str) -> str | None:
    """Log the sweep-level summary run; returns its W&B run folder (None when disabled)."""
    from nasforge.platform.engine.tracking import resolve_mode

    mode = resolve_mode(cfg.tracking.mode)
    if mode == "disabled":
        return None
    import wandb

    from nasforge.platform.views.leaderboard import leaderboard_rows
    from nasforge.platform.views.report import sweep_figures, trial_images

    os.makedirs(run_dir, exist_ok=True)
    run = wandb.init(
        project=cfg.tracking.project, entity=cfg.tracking.entity, group=cfg.tracking.group or cfg.name,
        job_type="sweep-summary",
        name=f"{cfg.name}-summary", dir=run_dir, mode=mode, config=cfg.to_dict(), reinit="finish_previous",
        settings=wandb.Settings(silent=True, console="off", disable_git=True, disable_code=True,
                                x_disable_stats=True),
    )
    try:
        columns, data = leaderboard_table(study, cfg)
        payload: dict[str, Any] = {"leaderboard": wandb.Table(columns=columns, data=data)}
        for f in sweep_figures(study, cfg):
            if f.fig is not None:
                payload[f"plots/{f.key}"] = wandb.Plotly(f.fig)
        by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
        for r in leaderboard_rows(study, cfg, include_unfinished=False)[:TOP_IMAGES]:
            imgs = trial_images(by_number[r["trial"]])
            if imgs:
                images = [wandb.Image(p, caption=os.path.basename(p)) for p in imgs]
                payload[f"architectures/trial{r['trial']}"] = images
        run.log(payload)
        counts: dict[str, int] = {}
        for t in study.get_trials(deepcopy=False):
            counts[t.state.name] = counts.get(t.state.name, 0) + 1
        summary: dict[str, Any] = {f"trials/{s.lower()}": n for s, n in counts.items()}
        complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
        if complete:
            best = study.best_trials if cfg.multi_objective else [study.best_trial]
            summary["best/trials"] = [t.number for t in best]
            if not cfg.multi_objective:
                summary[f"best/{cfg.objectives[0].metric}"] = best[0].value
        run.summary.update(summary)
        folder = os.path.dirname(run.dir) if getattr(run, "dir", None) else None
    finally:
        run.finish()
    return folder


def log_summary_safely(study, cfg, run_dir: str) -> None:
    """`log_sweep_summary` at the end of a sweep; a failure is a warning, never the sweep's."""
    try:
        log_sweep_summary(study, cfg, run_dir)
    except Exception as e:  # noqa: BLE001
        import sys

        print(f"nasforge: warning: the W&B sweep summary was not logged: {type(e).__name__}: {e}", file=sys.stderr)


def comparison_tables(data: dict) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """(columns, rows) of a comparison (`compare.compare`): one row per objective and group, and one
    per difference between two groups."""
    groups, diffs = [], []
    for metric, o in data["objectives"].items():
        for g, r in o["groups"].items():
            groups.append([metric, g, r["n"], r["mean"], r["se"], o["threshold"], r["trials_to_threshold"],
                           r["reached"], r["trials"], r["pruned"], r["failed"], r["compute_seconds"]])
        for d in o["differences"]:
            diffs.append([metric, d["a"], d["b"], d["difference"], d["se"], d["paired"], d["n"], d["wins"],
                          d["test"], d["p"], d["words"]])
    return {"groups": (["objective", "group", "sweeps", "mean", "se", "threshold", "trials_to_threshold",
                        "reached", "trials", "pruned", "failed", "compute_seconds"], groups),
            "differences": (["objective", "a", "b", "difference", "se", "paired", "seeds", "wins", "test", "p",
                             "words"], diffs)}


def log_comparison(data: dict, members: list, folder: str) -> str | None:
    """Log a comparison as one W&B run (``job_type="comparison"``, grouped with the first group's name),
    holding its tables and plots; returns the run folder (None when W&B is disabled by WANDB_MODE)."""
    from nasforge.platform.engine.tracking import resolve_mode

    mode = resolve_mode("auto")  # asked for on the command line: on unless the environment says disabled
    if mode == "disabled":
        return None
    import wandb

    from nasforge.platform.engine.replicates import GROUP_ATTR
    from nasforge.platform.views.compare_page import figures

    tracking = members[0].run.cfg.tracking
    families = {(m.run.study.user_attrs.get(GROUP_ATTR) or {}).get("group") for m in members}
    group = families.pop() if len(families) == 1 and None not in families else "+".join(data["groups"])
    os.makedirs(folder, exist_ok=True)
    run = wandb.init(
        project=tracking.project, entity=tracking.entity, group=group, job_type="comparison",
        name=f"compare-{group}"[:120], dir=folder, mode=mode, reinit="finish_previous",
        config={"groups": data["groups"], "objectives": list(data["objectives"]), "notes": data["notes"]},
        settings=wandb.Settings(silent=True, console="off", disable_git=True, disable_code=True,
                                x_disable_stats=True),
    )
    try:
        payload: dict[str, Any] = {k: wandb.Table(columns=c, data=[[float(x) if isinstance(x, float) else x
                                                                     for x in r] for r in rows])
                                   for k, (c, rows) in comparison_tables(data).items()}
        figs, _, _ = figures(data, members)
        payload.update({f"plots/{k}": wandb.Plotly(f) for k, f in figs.items() if f is not None})
        run.log(payload)
        run.summary.update({f"{m}/{g}/mean": r["mean"] for m, o in data["objectives"].items()
                            for g, r in o["groups"].items()})
        out = os.path.dirname(run.dir) if getattr(run, "dir", None) else None
    finally:
        run.finish()
    return out
