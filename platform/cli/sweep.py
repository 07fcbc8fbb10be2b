"""`nasforge sweep run | status | best`: launch, watch and query sweeps.

``run FILE`` validates the sweep file (one-line error and exit 2 on anything wrong, before
anything is written), then runs or resumes the sweep and ends with its leaderboard. ``status
NAME`` shows trial counts by state, the best so far and the leaderboard; ``best NAME`` the best
trial(s) with params, sample, metrics and checkpoint path (``--json`` for scripts). Heavy
libraries are imported inside the handlers only.
"""
from __future__ import annotations

import json
import os
import sys

from nasforge.platform.cli.common import add_json, add_root, add_set, add_sweep_ref, parse_key_values
from nasforge.platform.optuna_adapter import storage_of

SET_EXAMPLE = "strategy.name=evolution"


def register(sub) -> None:
    from nasforge.platform.cli import compare, dashboard, registry, report

    p = sub.add_parser("sweep", help="every command on a sweep: run, check, status, best, report, compare, dashboard, "
                                           "promote")
    p.set_defaults(print_group_help=p.print_help)
    s = p.add_subparsers(dest="sweep_command", metavar="SUBCOMMAND")

    run = s.add_parser("run", help="run (or resume) the sweep of a YAML file")
    _file_arguments(run)
    run.add_argument("--trials", type=int, help="total number of finished trials to reach (overrides budget.trials)")
    run.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    run.add_argument("--devices-per-trial", type=int, default=None,
                     help="devices each worker owns (GPUs pinned with CUDA_VISIBLE_DEVICES)")
    run.add_argument("--workers", type=int, default=1, help="worker processes on this machine sharing the study")
    run.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    run.add_argument("--no-preflight", action="store_true",
                     help="skip the one-step preflight before the first trial (not recommended)")
    run.add_argument("--seeds", metavar="SEEDS",
                     help="replicate the sweep over seeds (e.g. 0-4 or 0,2,7): one sweep per seed, named "
                          "NAME-s<seed>, grouped under NAME for `nasforge compare NAME`; with "
                          "--set strategy.name=a,b, every strategy x seed")
    run.set_defaults(func=cmd_run)

    check = s.add_parser("check", help="check a sweep file end to end (one training step), writing nothing")
    _file_arguments(check)
    add_json(check)
    check.set_defaults(func=cmd_check)

    st = s.add_parser("status", help="trial counts, best so far and the leaderboard of a sweep")
    add_sweep_ref(st)
    st.add_argument("--top", type=int, default=10, help="leaderboard rows (default 10)")
    add_json(st)
    st.set_defaults(func=cmd_status)

    b = s.add_parser("best", help="the best trial(s): params, sample, metrics, checkpoint")
    add_sweep_ref(b)
    add_json(b)
    b.set_defaults(func=cmd_best)

    report.configure(s.add_parser("report", help=report.HELP))
    compare.configure(s.add_parser("compare", help=compare.HELP))
    dashboard.configure(s.add_parser("dashboard", help=dashboard.HELP))
    registry.configure_promote(s.add_parser("promote", help=registry.PROMOTE_HELP))


def _file_arguments(p) -> None:
    """What ``run`` and ``check`` both read: the file and what says where and what it runs."""
    p.add_argument("file", help="sweep file (YAML)")
    p.add_argument("--name", help="sweep name (overrides the file's name)")
    add_root(p)
    p.add_argument("--storage", metavar="URL",
                   help="Optuna storage URL (journal://PATH, sqlite:///PATH, postgresql://...)")
    add_set(p, "override any sweep-file key", SET_EXAMPLE)


def _overrides(args) -> dict:
    out = parse_key_values(args.set_values, SET_EXAMPLE)
    if getattr(args, "trials", None) is not None:
        out["budget.trials"] = args.trials
    if getattr(args, "timeout", None) is not None:
        out["budget.timeout"] = args.timeout
    if args.storage:
        out["storage"] = args.storage
    if args.name:
        out["name"] = args.name
    if getattr(args, "devices_per_trial", None):
        out["trainer.devices"] = args.devices_per_trial
    return out


def _load(file: str, overrides: dict, root: str):
    """The checked config of ``file``, a registered model named where the task takes a weights file
    (``base: MODEL:ALIAS``) resolved to that version's file (`registry.weight_refs`; one line each
    on stderr), so that the run folder, its workers and a resume all read the same version."""
    from nasforge.platform.engine.config import load_sweep
    from nasforge.platform.registry.weight_refs import resolve_weight_refs

    cfg = load_sweep(file, overrides)
    refs = resolve_weight_refs(cfg, root)
    for r in refs:
        print(r.line(), file=sys.stderr)
    return load_sweep(file, {**overrides, **{r.key: r.path for r in refs}}) if refs else cfg


def cmd_run(args) -> int:
    from nasforge.platform.engine.replicates import parse_seeds, plan, split_strategies

    overrides = _overrides(args)
    strategies = split_strategies(overrides)
    seeds = parse_seeds(args.seeds) if args.seeds else None
    cfg = _load(args.file, overrides, args.root)
    if strategies is None and seeds is None:
        return _run_one(cfg, args)
    from nasforge.platform.engine.replicates import record_replicate
    from nasforge.platform.engine.storage import load_study

    reps = plan(cfg.name, seeds, strategies)
    cfgs = [_load(args.file, {**overrides, **r.overrides()}, args.root) for r in reps]  # all checked before any runs
    for i, (rep, rep_cfg) in enumerate(zip(reps, cfgs)):
        print(f"nasforge: replicate {i + 1}/{len(reps)} of {cfg.name}: {rep.name}", flush=True)
        code = _run_one(rep_cfg, args, preflight=i == 0 or rep_cfg.strategy.name != cfgs[i - 1].strategy.name)
        record_replicate(load_study(rep.name, args.root, rep_cfg.storage), rep)
        if code:
            return code
    print(f"nasforge: {len(reps)} replicates of {cfg.name}; compare them with `nasforge compare {cfg.name}`")
    return 0


def _run_one(cfg, args, preflight: bool = True) -> int:
    from nasforge.platform.errors import ConfigError

    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    if cfg.mode in ("one_shot", "zero_cost") and args.workers > 1:
        raise ConfigError(f"--workers: a {cfg.mode} sweep searches in one process (a supernet, or proxy scores); "
                          "run it with one worker (trainer.devices > 1 spreads the supernet over devices)")
    if preflight and not args.no_preflight:
        from nasforge.platform.engine.preflight import preflight as check

        check(cfg, args.root)  # one training step: a mistake is one line, exit 2, nothing written
    if cfg.mode == "one_shot":
        from nasforge.platform.cli.oneshot import run_oneshot_command

        return run_oneshot_command(cfg, args.root, show_progress=not args.no_progress)
    if cfg.mode == "zero_cost":
        from nasforge.platform.cli.zero_cost import run_zero_cost_command

        return run_zero_cost_command(cfg, args.root, show_progress=not args.no_progress)
    if args.workers > 1:
        from nasforge.platform.engine.workers import run_workers  # several processes sharing the study

        from nasforge.platform.engine.storage import run_dir
        from nasforge.platform.views.leaderboard import render_leaderboard
        from nasforge.platform.views.wandb_summary import log_summary_safely

        def finish(study, console) -> None:  # as one process ends: the W&B sweep summary, the leaderboard
            log_summary_safely(study, cfg, run_dir(cfg.name, args.root))
            render_leaderboard(study, cfg, console=console)

        return run_workers(cfg, root=args.root, workers=args.workers, devices_per_trial=args.devices_per_trial,
                           show_progress=not args.no_progress, on_finish=finish)
    from nasforge.platform.console import terminal_console

    from nasforge.platform.engine.lifeline import stop_signals_interrupt
    from nasforge.platform.engine.sweep import run_sweep
    from nasforge.platform.views.leaderboard import render_leaderboard
    from nasforge.platform.views.wandb_summary import log_summary_safely

    console = terminal_console()
    console.print(f"[bold]nasforge[/] sweep [cyan]{cfg.name}[/]: task {cfg.task.label}, "
                  f"space {'+'.join(p.name for p in cfg.space)}, strategy {cfg.strategy.name}, "
                  f"budget {cfg.budget.trials} trials → {os.path.join(args.root, cfg.name)}")
    with stop_signals_interrupt():
        study = run_sweep(cfg, root=args.root, show_progress=not args.no_progress, console=console,
                          on_finish=log_summary_safely)
    render_leaderboard(study, cfg, console=console)
    return 0


def cmd_check(args) -> int:
    """The preflight alone: every step a trial takes, on one sample, writing nothing."""
    from nasforge.platform.engine.preflight import preflight

    cfg = _load(args.file, _overrides(args), args.root)
    report = preflight(cfg, args.root)
    if args.json:
        print(json.dumps({"sweep": cfg.name, "ok": True, "seconds": report.seconds, "steps": report.steps,
                          "metrics": sorted(report.metrics), "sample": report.sample}, default=str))
        return 0
    steps = ", ".join(f"{k} {v:.2f}s" for k, v in report.steps.items())
    print(f"sweep {cfg.name!r}: ok in {report.seconds:.1f}s ({steps}); metrics logged: {', '.join(report.metrics)}")
    return 0


def _open(args):
    from nasforge.platform.engine.run_folder import open_run

    return open_run(args.name, root=args.root, storage=args.storage)


def cmd_status(args) -> int:
    from nasforge.platform.console import terminal_console

    from nasforge.platform.views.leaderboard import render_leaderboard
    from nasforge.platform.engine.sweep import best_value_text, state_counts

    run = _open(args)
    console = terminal_console()
    counts = state_counts(run.study)
    dead = dead_running_trials(run.study)
    if dead:  # their workers are gone: not running, whatever the storage still says
        counts["RUNNING"] -= len(dead)
        counts = {k: v for k, v in counts.items() if v}
        counts["stale"] = len(dead)
    total = run.cfg.budget.trials
    finished = counts.get("COMPLETE", 0) + counts.get("PRUNED", 0)
    if args.json:
        json.dump({"sweep": run.name, "storage": run.storage_url, "trials": counts, "finished": finished,
                   "budget": total, "best": best_trials_info(run.study, run.cfg),
                   "stale": [{"trial": n, "reason": r} for n, r in dead]}, sys.stdout, indent=2, default=str)
        print()
        return 0
    console.print(f"sweep [cyan]{run.name}[/]  ({run.storage_url})")
    console.print("trials: " + ", ".join(f"{k.lower()} {v}" for k, v in sorted(counts.items())) +
                  f"  |  finished {finished}/{total if total is not None else '∞'}")
    console.print(f"best so far: {best_value_text(run.study, run.cfg)}")
    for number, reason in dead:
        console.print(f"trial {number}: {reason}; the next `sweep run` fails and retries it", markup=False)
    render_leaderboard(run.study, run.cfg, console=console, limit=args.top)
    if run.cfg.mode in ("one_shot", "zero_cost"):  # the supernet search / proxy scores: beside it
        from nasforge.platform.cli.oneshot import render_search

        render_search(run, console, limit=args.top)
    return 0


def dead_running_trials(study) -> list[tuple[int, str]]:
    """(number, why) of the RUNNING trials whose worker is gone (read only: recovery is the
    sweep loop's, under its budget lock)."""
    from optuna.trial import TrialState

    from nasforge.platform.engine.heartbeat import grace_period, stale_reason

    grace = grace_period(storage_of(study))  # the grace depends on the storage kind
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = stale_reason(t, grace)
        if reason is not None:
            out.append((t.number, reason))
    return out


def best_trials_info(study, cfg) -> list[dict]:
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return []
    trials = study.best_trials if cfg.multi_objective else [study.best_trial]
    return [{
        "trial": t.number,
        "values": dict(zip([o.metric for o in cfg.objectives], t.values)),
        "params": t.params,
        "sample": t.user_attrs.get("sample"),
        "metrics": t.user_attrs.get("metrics"),
        "checkpoint": t.user_attrs.get("checkpoint"),
        "trial_dir": t.user_attrs.get("trial_dir"),
    } for t in trials]


def cmd_best(args) -> int:
    from nasforge.platform.errors import UsageError

    run = _open(args)
    info = best_trials_info(run.study, run.cfg)
    if not info:
        raise UsageError(f"sweep {run.name!r} has no completed trial yet")
    if args.json:
        json.dump(info, sys.stdout, indent=2, default=str)
        print()
        return 0
    from nasforge.platform.console import terminal_console
    from rich.table import Table

    console = terminal_console()
    for b in info:
        t = Table(title=f"{run.name}: best trial {b['trial']}", show_header=False)
        t.add_column(style="bold")
        t.add_column()
        for k, v in b["values"].items():
            t.add_row(k, f"{v:.6g}")
        for k, v in (b["metrics"] or {}).items():
            if k not in b["values"]:
                t.add_row(k, f"{v:.6g}" if isinstance(v, float) else str(v))
        for k, v in (b["sample"] or b["params"]).items():
            t.add_row(k, f"{v:.6g}" if isinstance(v, float) else str(v))
        t.add_row("checkpoint", str(b["checkpoint"]))
        console.print(t)
    return 0
