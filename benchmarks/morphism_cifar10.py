"""Network morphism against training from scratch at equal total training epochs or equal wall time,
on CIFAR-10.

Three strategies search the same `morphable` space (2 stages of up to ``--max-depth`` conv layers,
widths 8 to ``--max-width``)
on a subset of the shared CIFAR-10 (``--train`` training and ``--val`` validation images; test
accuracy on a seeded sample of ``--test`` test images):

* ``morphism`` - the seed network trains ``--epochs`` epochs, every child ``--child-epochs`` from
  its parent's transformed checkpoint;
* ``evolution`` (population 3, tournament 2) and ``tpe`` (Optuna's default) - every trial trains
  ``--epochs`` epochs from scratch.

Each run stops at the first trial that brings its cumulative training epochs to ``--budget``. One
JSON line per (strategy, seed): the best validation accuracy after each trial against cumulative
epochs and seconds (each trial's wall time, start to finish, summed), and the test accuracy of the
final best-validation trial; then one summary line per strategy (mean and standard error over
seeds) and the difference morphism - evolution in standard errors. ``--plot`` writes best
validation accuracy against cumulative epochs.

At equal wall time (``--budget-seconds T``) every strategy runs trials until its cumulative trial
wall time reaches T (the sweep's ``budget.timeout``; the trial running at T finishes but does not
count). At each of ``--at`` seconds (default T/4, T/2, 3T/4, T) the run line has the best
validation trial among those finished by then and its test accuracy; the summary lines and the
morphism - evolution (and - tpe) differences are per checkpoint, and ``--plot`` draws best
validation accuracy against cumulative seconds. Every strategy of a seed runs in one process, one
after the other, so they share that process's load.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/morphism_cifar10.py --seeds 0 1 2 \\
        --plot benchmarks/results/morphism_cifar10.png

or one process per seed (``--seeds 0 > s0.log`` ...), then ``--summarize s0.log s1.log s2.log
--plot ...`` for the summary lines and the plot.

At full scale (45,000 training images, tens of epochs per seed network, a budget of hundreds of
epochs) the seed network and every from-scratch trial train much longer, which is where
inheriting weights saves the most; this CPU-sized run measures the mechanism, not that regime.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from nasforge.platform.views.compare_stats import mean_se  # noqa: E402 - the comparison's mean and standard error

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "cifar10-jpeg.zip"


def sweep_config(strategy: str, seed: int, a) -> dict:
    options = {"morphism": {"child_epochs": a.child_epochs}, "evolution": {"population": 3, "sample_size": 2},
               "tpe": {}}[strategy]
    trials = 1 + math.ceil((a.budget - a.epochs) / a.child_epochs) if strategy == "morphism" else \
        math.ceil(a.budget / a.epochs)
    budget = {"trials": 100_000, "timeout": a.budget_seconds} if a.budget_seconds else {"trials": trials}
    return {
        "name": f"{strategy}-{seed}", "seed": seed,
        "task": {"name": "classification",
                 "data": {"name": "cifar10", "path": str(a.data), "subset": a.train, "val_subset": a.val},
                 "options": {"batch_size": a.batch_size, "warmup_epochs": 0}},
        "space": [{"name": "morphable", "options": {"stages": 2, "max_depth": a.max_depth, "max_width": a.max_width,
                                                    "seed_width": 8}}],
        "strategy": {"name": strategy, "options": options},
        "budget": budget, "pruner": {"name": "none"},
        "objectives": [{"metric": "val/acc", "direction": "maximize"}],
        "checkpoints": {"keep_top": None},
        "trainer": {"accelerator": "cpu", "devices": 1, "max_epochs": a.epochs, "cpu_threads": 1},
        "tracking": {"mode": "disabled"},
    }


def test_accuracy(run_dir: str, cfg, trial, n_test: int) -> float:
    from torch.utils.data import Subset

    from nasforge.platform.engine.assembly import TrialAssembly, create_trainer
    from nasforge.platform.engine.inheritance import network_state
    from nasforge.platform.engine.trial import TrialContext

    ctx = TrialContext.create(cfg, run_dir)
    build = TrialAssembly(ctx, ctx.space.validate(trial.user_attrs["sample"]))
    dm = build.datamodule()
    net = build.network(dm)
    net.load_state_dict(network_state(trial.user_attrs["checkpoint"], ctx.resolved.network_arg))
    module = build.module(net, dm)
    dm.prepare_data()
    dm.setup("test")
    # a seeded sample of the test images (they are stored class by class)
    n = len(dm.test_set)
    dm.test_set = Subset(dm.test_set, random.Random(0).sample(range(n), min(n_test, n)))
    dm.setup = lambda stage=None: None  # keep the subset
    return float(create_trainer().test(module, datamodule=dm, verbose=False)[0]["test/acc"])


def one_run(strategy: str, seed: int, a, root: str) -> dict:
    import yaml

    from nasforge.platform.engine.config import load_sweep
    from nasforge.platform.engine.sweep import run_sweep

    path = os.path.join(root, f"{strategy}-{seed}.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(sweep_config(strategy, seed, a), f)
    cfg = load_sweep(path)
    start = time.perf_counter()
    study = run_sweep(cfg, root=root, show_progress=False)
    seconds = time.perf_counter() - start
    epochs, elapsed, best, curve, best_trial = 0, 0.0, -1.0, [], None
    t_elapsed = 0.0
    limit = a.budget_seconds or math.inf
    for t in sorted((t for t in study.trials if t.datetime_complete), key=lambda t: t.number):
        elapsed += (t.datetime_complete - t.datetime_start).total_seconds()
        if elapsed > limit:  # the trial running at the deadline does not count
            break
        epochs += int(t.user_attrs.get("epochs_run", 0))
        t_elapsed += t.user_attrs.get("fit_seconds", 0.0)
        if t.state.name == "COMPLETE" and t.value > best:
            best, best_trial = t.value, t
        curve.append({"trial": t.number, "epochs": epochs, "seconds": round(elapsed, 1),
                      "fit_seconds": round(t_elapsed, 1), "best_val": round(best, 4),
                      "best_trial": best_trial and best_trial.number,
                      "params": (t.user_attrs.get("metrics") or {}).get("cost/params")})
    run_dir = os.path.join(root, cfg.name)
    tests: dict[int, float] = {}

    def test_of(trial) -> float:
        if trial.number not in tests:
            tests[trial.number] = round(test_accuracy(run_dir, cfg, trial, a.test), 4)
        return tests[trial.number]

    at = []
    for s in checkpoints(a):
        done = [c for c in curve if c["seconds"] <= s]
        if done and done[-1]["best_trial"] is not None:
            trial = study.trials[done[-1]["best_trial"]]
            at.append({"seconds": s, "epochs": done[-1]["epochs"], "trials": len(done),
                       "best_val": done[-1]["best_val"], "trial": trial.number, "test_acc": test_of(trial)})
    inherited = [abs(t.user_attrs["inherited_metrics"]["val/acc"] - study.trials[t.user_attrs["parent"]].value)
                 for t in study.trials if "inherited_metrics" in t.user_attrs]
    return {"what": "morphism_cifar10", "strategy": strategy, "seed": seed, "trials": len(curve),
            "epochs": epochs, "seconds": round(seconds, 1), "best_val": round(best, 4),
            "test_acc": test_of(best_trial), "best_trial": best_trial.number,
            "lineage": best_trial.user_attrs.get("lineage"),
            "max_inherited_gap": round(max(inherited), 4) if inherited else None,
            "budget_seconds": a.budget_seconds, "at": at, "curve": curve}


def checkpoints(a) -> list[float]:
    """The wall-time budgets a ``--budget-seconds`` run is compared at (none for an epoch budget)."""
    if not a.budget_seconds:
        return []
    return sorted(a.at or [round(a.budget_seconds * k / 4, 1) for k in (1, 2, 3, 4)])


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    colours = {"morphism": "tab:blue", "evolution": "tab:orange", "tpe": "tab:green"}
    budget = results[0].get("budget_seconds")
    x = "seconds" if budget else "epochs"
    for r in results:
        label = r["strategy"] if r["seed"] == results[0]["seed"] else None
        xs, ys = [c[x] for c in r["curve"]], [c["best_val"] for c in r["curve"]]
        if budget and xs:  # the best so far holds until the budget
            xs, ys = xs + [budget], ys + [ys[-1]]
        ax.step(xs, ys, where="post", color=colours[r["strategy"]], alpha=0.7, label=label)
    for c in results[0].get("at") or []:
        ax.axvline(c["seconds"], color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlabel("cumulative trial wall time (s)" if x == "seconds" else "cumulative training epochs")
    ax.set_ylabel("best validation accuracy")
    ax.set_title(f"morphism vs from scratch, CIFAR-10 subset{', equal wall time' if budget else ''}")
    ax.legend()
    fig.savefig(path, dpi=130, bbox_inches="tight")


def run_all(a) -> list[dict]:
    if not a.data.is_file():
        sys.exit(f"CIFAR-10 not found at {a.data}")
    results = []
    with tempfile.TemporaryDirectory() as root:
        for seed in a.seeds:
            for strategy in a.strategies:
                r = one_run(strategy, seed, a, root)
                results.append(r)
                print(json.dumps(r), flush=True)
    return results


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--strategies", nargs="+", default=["morphism", "evolution", "tpe"])
    p.add_argument("--budget", type=int, default=12, help="total training epochs per run")
    p.add_argument("--budget-seconds", type=float, default=None,
                   help="instead of --budget: each run's cumulative trial wall time (the same for every strategy)")
    p.add_argument("--at", type=float, nargs="+", default=None,
                   help="with --budget-seconds: the seconds to compare at (default T/4, T/2, 3T/4, T)")
    p.add_argument("--epochs", type=int, default=3, help="epochs of a from-scratch trial and of the seed network")
    p.add_argument("--child-epochs", type=int, default=1)
    p.add_argument("--train", type=int, default=1000)
    p.add_argument("--val", type=int, default=500)
    p.add_argument("--test", type=int, default=1000)
    p.add_argument("--plot", default=None)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--max-depth", type=int, default=3)
    p.add_argument("--max-width", type=int, default=32)
    p.add_argument("--summarize", nargs="+", default=None, metavar="LOG",
                   help="no runs: the summary and plot of the per-run JSON lines in these files")
    a = p.parse_args(argv)
    if a.budget_seconds is not None and a.budget_seconds <= 0:
        p.error(f"--budget-seconds must be > 0, got {a.budget_seconds}")
    if a.summarize:
        results = [json.loads(line) for f in a.summarize for line in open(f)
                   if line.startswith("{") and '"what": "morphism_cifar10"' in line]
        a.strategies = list(dict.fromkeys(r["strategy"] for r in results))
        a.budget, a.budget_seconds = results[0]["epochs"], results[0].get("budget_seconds")
        a.at = [c["seconds"] for c in results[0].get("at") or []] or None
    else:
        results = run_all(a)
    if a.budget_seconds:
        for s in checkpoints(a):
            summarize(results, a.strategies, {"budget_seconds": s},
                      lambda r: next((c for c in r["at"] if c["seconds"] == s), None))
    else:
        summarize(results, a.strategies, {"budget_epochs": a.budget}, lambda r: r)
    if a.plot:
        plot(results, a.plot)


def summarize(results, strategies, budget: dict, point) -> None:
    """One summary line per strategy at ``budget`` (``point(run)``: the run's figures there, None when
    it had no finished trial by then) and the differences morphism - the others in standard errors."""
    summary = {}
    for strategy in strategies:
        rs = [r for r in results if r["strategy"] == strategy]
        ps = [p for p in map(point, rs) if p is not None]
        if not ps:
            continue
        (tm, tse), (vm, vse) = mean_se([p["test_acc"] for p in ps]), mean_se([p["best_val"] for p in ps])
        summary[strategy] = (tm, tse)
        extra = {"epochs_mean": round(statistics.mean(p["epochs"] for p in ps), 1),
                 "trials_mean": round(statistics.mean(p["trials"] for p in ps), 1)} if "budget_seconds" in budget else \
            {"seconds_mean": round(statistics.mean(r["seconds"] for r in rs), 1)}
        print(json.dumps({"what": "morphism_cifar10_summary", "strategy": strategy, "seeds": len(ps), **budget,
                          "test_acc_mean": round(tm, 4), "test_acc_se": round(tse, 4),
                          "best_val_mean": round(vm, 4), "best_val_se": round(vse, 4), **extra}))
    for other in ("evolution", "tpe"):
        if "morphism" in summary and other in summary and (other == "evolution" or "budget_seconds" in budget):
            (m, mse), (e, ese) = summary["morphism"], summary[other]
            se = math.sqrt(mse ** 2 + ese ** 2)
            print(json.dumps({"what": f"morphism_minus_{other}", **budget, "test_acc_diff": round(m - e, 4),
                              "in_standard_errors": round((m - e) / se, 2) if se > 0 else None}))


if __name__ == "__main__":
    main()
