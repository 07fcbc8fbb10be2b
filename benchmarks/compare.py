"""How long `nasforge compare` takes, and how big its page is, at 10 sweeps x 1,000 trials.

The sweeps are written directly with Optuna (no training, no table look-up): each is the nb201
sweep file renamed, its resolved config in ``<root>/<name>/sweep.yaml`` and its study in one shared
journal file, holding ``--trials`` trials asked from a random sampler over the nb201 space
(`space.suggest`) with a made-up score (a seeded draw per trial), 5% of them failed and 5% pruned,
as five seeds of two arms (recorded as replicate groups, as `sweep run --seeds` records them).
Then ``nasforge compare GROUP_A GROUP_B`` runs in this process, as the command line runs it, and
is timed end to end (opening the studies, the numbers, the page with its figures and diagrams).
Prints one JSON line: sweeps, trials each, seconds, page MB, and the targets (< 10 s, < 10 MB).

    .venv/bin/python benchmarks/compare.py [--sweeps 10] [--trials 1000] [--out DIR]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def write_sweep(root: str, name: str, overrides: dict, trials: int, seed: int, storage: str,
                file: str | os.PathLike = REPO / "sweeps" / "nb201_cifar10.yaml", group: dict | None = None,
                offset: float = 0.0) -> None:
    """A finished sweep ``name`` under ``root`` as the sweep loop leaves one (config + study), with
    ``trials`` random trials scored by a seeded draw (+ ``offset``), written straight with Optuna."""
    import optuna
    from optuna.trial import TrialState

    from nasforge.platform.engine.config import load_sweep
    from nasforge.platform.engine.replicates import GROUP_ATTR
    from nasforge.platform.engine.resolve import space_parts
    from nasforge.platform.engine.storage import create_storage, run_dir
    from nasforge.platform.engine.sweep import write_config
    from nasforge.search_spaces import create_composite

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cfg = load_sweep(file, {**overrides, "name": name, "storage": storage, "seed": seed})
    rundir = run_dir(name, root)
    os.makedirs(rundir, exist_ok=True)
    write_config(cfg, rundir)
    space = create_composite(space_parts(cfg))
    scratch = optuna.create_study(directions=cfg.directions, sampler=optuna.samplers.RandomSampler(seed=seed))
    rng = random.Random(seed)
    for _ in range(trials):
        t = scratch.ask()
        sample = space.suggest(t)
        t.set_user_attr("sample", sample)
        u = rng.random()
        if u < 0.05:
            scratch.tell(t, state=TrialState.FAIL)
        elif u < 0.10:
            scratch.tell(t, state=TrialState.PRUNED)
        else:
            scratch.tell(t, [70 + offset + 15 * rng.random() for _ in cfg.directions])
    study = optuna.create_study(study_name=name, storage=create_storage(storage), directions=cfg.directions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # set_metric_names is experimental
        study.set_metric_names([o.metric for o in cfg.objectives])
    if group:
        study.set_user_attr(GROUP_ATTR, group)
    study.add_trials(scratch.get_trials(deepcopy=False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweeps", type=int, default=10, help="sweeps in the comparison (two arms, seeds each)")
    ap.add_argument("--trials", type=int, default=1000, help="trials per sweep")
    ap.add_argument("--out", default=None, help="folder for the runs and the page (default: a temporary one)")
    args = ap.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="nasforge-compare-bench-")
    root = os.path.join(out, "runs")
    storage = "journal://" + os.path.join(out, "studies.journal")
    t0 = time.perf_counter()
    for i in range(args.sweeps):
        arm, seed = ("bench-a", "bench-b")[i % 2], i // 2
        write_sweep(root, f"{arm}-s{seed}", {}, args.trials, seed, storage, offset=0.5 * (i % 2),
                    group={"group": arm, "arm": arm, "seed": seed, "strategy": None})
    setup = time.perf_counter() - t0

    from nasforge.platform.cli import main as cli

    page = os.path.join(out, "compare.html")
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the comparison's JSON: not this benchmark's line
        code = cli(["compare", "bench-a", "bench-b", "--root", root, "-o", page, "--json"])
    seconds = time.perf_counter() - t0
    mb = os.path.getsize(page) / 1e6
    print(json.dumps({"benchmark": "compare", "sweeps": args.sweeps, "trials_per_sweep": args.trials,
                      "exit_code": code, "compare_seconds": round(seconds, 2), "page_mb": round(mb, 2),
                      "target_seconds": 10, "target_mb": 10, "within_targets": seconds < 10 and mb < 10,
                      "setup_seconds": round(setup, 1), "page": page}))


if __name__ == "__main__":
    main()
