"""Search strategies on NAS-Bench-201, side by side, against the published results.

For each strategy: R runs (seeds seed..seed+R-1), each an Optuna study (in-memory storage) whose
sampler is ``create_sampler(strategy, nb201 space, seed)`` and whose objective is what a tabular
trial does: ``space.suggest(trial)`` -> ``TabularBenchmark.evaluate(space.key(sample))``. B trials
per run. The architecture a run returns is its best by the search signal (``val_acc_12ep``);
its reported metric (``test_acc_200ep``) is what counts. The strategies see the signal only.

Prints one JSON line per strategy (strategy, mean, std, runs, budget, table, the published
anchors, vs_tpe = mean - TPE's mean in this same run with ``vs_tpe_se``, the standard error of
that difference, and ``vs_tpe_z`` = their ratio) and the search itself, judged on the signal it
sees rather than on the luck of the test split: ``best_signal`` (mean best signal found),
``regret`` (mean of the table's best signal minus the best found) and ``found_best`` (the
fraction of runs that evaluated the table's best-signal cell within the budget). It saves a
plot under benchmarks/results/: the best-so-far reported metric against evaluations, and the
regret on the signal (symmetric log scale, so 0 shows), each a mean with a +/- 1 standard-error band.
``tpe`` and ``random`` always run beside the strategies asked for.

This drives the sampler, the space and the tabular task directly through ``optuna.create_study``
rather than the lead's ``run_sweep``: with no training, a run folder, tracking and progress bars
per study would dominate 20,000 table look-ups, and the part being measured (sampler + space +
task + Optuna storage) is the same.

    python benchmarks/nb201_search.py --runs 50 --budget 100 --jobs 2
    python benchmarks/nb201_search.py --runs 200 --seed 1000 --strategies local_search \
        --options '{"local_search": {"init": 5}}'     # tuning: seeds apart from the reported ones

``--proxy-scores FILE`` (a zero-cost scores CSV keyed by ``arch``, `benchmarks/zero_cost_nb201.py
--scores-out`) also runs ``<strategy>+proxy`` for each of local_search, evolution and controller
asked for: the same strategy with ``--proxy-options`` (default `PROXY_OPTIONS`: a warm start from
the best k of M proxy-scored random samples, `strategies.proxy_prior`). The M samples are drawn from the
file's rows (itself a seeded uniform sample of the space: scoring all 15,625 cells is not
affordable here); the warm-start samples count among the B evaluations, and ``proxy_seconds``
is M times the file's mean seconds per cell (what scoring them costs on this machine; with
``proxy_feature`` every row of the file, since a cell's quantile is taken among all of them).
Settings are tuned on other seeds with `nb201_proxy_tune.py`.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

# Published reference points (Dong & Yang, ICLR 2020, 12-epoch signal) for the
# NAS-Bench-201 CIFAR-10 table (../shared/data/README.md); they only apply to that table at B=100.
ANCHORS = {
    "random": {"published": "93.70 +/- 0.36 (random search)"},
    "evolution": {"published": "93.92 +/- 0.30 (REA)"},
    "controller": {"published": "93.85 +/- 0.37 (REINFORCE)"},
}
BEST_CELL = 94.37
# warm starts: the first look of each strategy (local search's first climb, evolution's population,
# the controller's first batch) from the best k of M proxy-scored samples; chosen on seeds 1000-1049
# with nb201_proxy_tune.py (benchmarks/README.md, "Proxy-guided strategies")
PROXY_OPTIONS = {"local_search": {"warm_start": 500, "warm_top": 10},
                 "evolution": {"warm_start": 1000, "warm_top": 30},
                 "controller": {"warm_start": 1000, "warm_top": 5}}


def default_table() -> str:
    beside_repo = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
    for root in (os.environ.get("NASFORGE_DATA"), beside_repo):
        if root and os.path.isfile(os.path.join(root, "nb201", "cifar10.csv")):
            return os.path.abspath(os.path.join(root, "nb201", "cifar10.csv"))
    return os.path.abspath(os.path.join("..", "shared", "data", "nb201", "cifar10.csv"))


def run_one(args: tuple) -> dict:
    """One search: returns the best-so-far reported metric after each evaluation."""
    strategy, seed, budget, table, signal, report, options = args
    name, strategy = strategy, strategy.split("+")[0]
    import optuna
    import torch

    from nasforge.platform.strategies import create_sampler
    from nasforge.search_spaces import create_space
    from nasforge.tasks.tabular import TabularBenchmark

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = create_space("nb201")
    bench = TabularBenchmark(table, signal=signal, report=report)
    sampler = create_sampler({"name": strategy, "options": options}, space, seed, ["maximize"])
    study = optuna.create_study(direction="maximize", sampler=sampler,
                                storage=optuna.storages.InMemoryStorage())

    def objective(trial):
        sample = space.suggest(trial)
        metrics = bench.evaluate(space.key(sample))
        trial.set_user_attr(report, metrics[report])
        return metrics[signal]

    t0 = time.perf_counter()
    study.optimize(objective, n_trials=budget)
    seconds = time.perf_counter() - t0
    curve, signal_curve, best_signal, best_report = [], [], -math.inf, float("nan")
    for t in sorted(study.trials, key=lambda t: t.number):
        if t.value is not None and t.value > best_signal:
            best_signal, best_report = t.value, t.user_attrs[report]
        curve.append(best_report)
        signal_curve.append(best_signal)
    keys = {space.canonical_key(t.params) for t in study.trials}
    top = table_best_signal(table, signal)
    curve = [round(v, 4) for v in curve]
    regret = [round(top - v, 6) for v in signal_curve]
    return {"strategy": name, "seed": seed, "curve": curve, "final": curve[-1], "regret": regret,
            "best_signal": best_signal, "found_best": best_signal >= top,
            "distinct": len(keys), "seconds": seconds}


_TOP: dict = {}


def table_best_signal(table: str, signal: str) -> float:
    """The highest signal in the whole table (read once per process)."""
    if (table, signal) not in _TOP:
        from nasforge.tasks.tabular import TabularBenchmark

        bench = TabularBenchmark(table, signal=signal, report=None)
        _TOP[table, signal] = max(bench.evaluate(k)[signal] for k in bench.keys())
    return _TOP[table, signal]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--table", default=default_table(), help="a NAS-Bench-201-format CSV")
    p.add_argument("--signal", default="val_acc_12ep", help="the column the search sees")
    p.add_argument("--report", default="test_acc_200ep", help="the column recorded for the returned arch")
    p.add_argument("--strategies", default="random,tpe,controller,evolution,local_search")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--budget", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1, help="worker processes")
    p.add_argument("--options", default="{}", help='JSON {strategy: {option: value}} passed to the samplers')
    p.add_argument("--proxy-scores", default=None, help="a zero-cost scores CSV keyed by arch")
    p.add_argument("--proxy-options", default=json.dumps(PROXY_OPTIONS),
                   help="JSON options of the +proxy strategies (proxy, warm_start, warm_top, proxy_feature), "
                        "the same for all or {strategy: options}")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    p.add_argument("--replot", metavar="RUNS_JSON", help="redraw the plot and JSON lines from a saved runs file")
    a = p.parse_args(argv)
    if a.replot:
        with open(a.replot) as f:
            saved = json.load(f)
        return summarize(saved["runs"], argparse.Namespace(**{**vars(a), **saved["args"], "out": a.out}))

    strategies = [s for s in a.strategies.split(",") if s]
    for must in ("tpe", "random"):
        if must not in strategies:
            strategies.insert(0, must)
    options = json.loads(a.options)
    proxy_cost = {}
    if a.proxy_scores:
        strategies, proxy_cost = with_proxy_variants(strategies, options, a)
    jobs = [(s, a.seed + r, a.budget, a.table, a.signal, a.report, options.get(s, {}))
            for s in strategies for r in range(a.runs)]
    if a.jobs > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(a.jobs) as pool:
            results = pool.map(run_one, jobs, chunksize=1)
    else:
        results = [run_one(j) for j in jobs]
    for r in results:
        if r["strategy"].endswith("+proxy"):
            r["proxy_seconds"] = proxy_cost[r["strategy"]]
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, f"nb201_search_B{a.budget}_R{a.runs}.json"), "w") as f:
        json.dump({"args": {k: getattr(a, k) for k in ("table", "signal", "report", "runs", "budget", "seed",
                                                       "options")}, "runs": results}, f)
    return summarize(results, a)


def summarize(results: list[dict], a) -> int:
    strategies = list(dict.fromkeys(r["strategy"] for r in results))
    options = json.loads(a.options) if isinstance(a.options, str) else a.options
    by = {s: [r for r in results if r["strategy"] == s] for s in strategies}
    summary = {}
    is_nb201_c10 = os.path.basename(a.table) == "cifar10.csv" and a.signal == "val_acc_12ep" \
        and a.report == "test_acc_200ep"
    for s in strategies:
        finals = [r["final"] for r in by[s]]
        summary[s] = statistics.mean(finals)
    lines = []
    for s in strategies:
        finals = [r["final"] for r in by[s]]
        diff_se = difference_se(by[s], by["tpe"])
        line = {
            "strategy": s, "mean": round(summary[s], 4),
            "std": round(statistics.stdev(finals), 4) if len(finals) > 1 else 0.0,
            "sem": round(statistics.stdev(finals) / math.sqrt(len(finals)), 4) if len(finals) > 1 else 0.0,
            "runs": len(finals), "budget": a.budget, "table": a.table, "signal": a.signal, "report": a.report,
            "vs_tpe": round(summary[s] - summary["tpe"], 4),
            "vs_tpe_se": round(diff_se, 4),
            "vs_tpe_z": round((summary[s] - summary["tpe"]) / diff_se, 2) if diff_se > 0 else None,
            "best_signal": round(statistics.mean(r["best_signal"] for r in by[s]), 4),
            "regret": round(statistics.mean(r["regret"][-1] for r in by[s]), 4),
            "found_best": round(statistics.mean(float(r["found_best"]) for r in by[s]), 3),
            "distinct_cells": round(statistics.mean(r["distinct"] for r in by[s]), 1),
            "sec_per_run": round(statistics.mean(r["seconds"] for r in by[s]), 3),
            "seed": a.seed, "options": options.get(s, {}),
        }
        if by[s][0].get("proxy_seconds") is not None:
            line["proxy_seconds"] = by[s][0]["proxy_seconds"]
            line["evaluations"] = a.budget  # the warm-start samples are among them
        if is_nb201_c10 and s in ANCHORS:
            line["anchors"] = {**ANCHORS[s], "best_cell": BEST_CELL, "anchor_budget": 100}
        lines.append(line)
        print(json.dumps(line), flush=True)
    plot_path = plot(by, a)
    print(json.dumps({"plot": plot_path}), file=sys.stderr)
    return 0


def with_proxy_variants(strategies: list[str], options: dict, a) -> tuple[list[str], dict[str, float]]:
    """Add ``<s>+proxy`` (options: the strategy's, then ``--proxy-options`` and the file) for the
    strategies that take a proxy prior; returns them and, per ``<s>+proxy``, the seconds scoring
    its cells costs (`proxy_seconds`)."""
    given = json.loads(a.proxy_options)
    seconds = {}
    for s in [s for s in strategies if s in ("local_search", "evolution", "controller")]:
        strategies.append(f"{s}+proxy")
        mine = given.get(s, {}) if any(k in given for k in ("local_search", "evolution", "controller")) else given
        options[f"{s}+proxy"] = {**options.get(s, {}), **mine, "proxy_scores": os.path.abspath(a.proxy_scores)}
        seconds[f"{s}+proxy"] = proxy_seconds(a.proxy_scores, options[f"{s}+proxy"])
    a.options = json.dumps(options)  # the JSON lines name the options each strategy ran with
    return strategies, seconds


def proxy_seconds(path: str, options: dict) -> float:
    """What scoring the cells a proxy prior reads costs: the file's mean seconds per cell times
    M = ``warm_start`` (at most the file's rows), or every row with ``proxy_feature`` (a cell's
    quantile is among all of them)."""
    import csv

    with open(path, newline="") as f:
        seconds = [float(r["seconds"]) for r in csv.DictReader(f) if r.get("seconds")]
    per_cell = statistics.mean(seconds) if seconds else 0.0
    cells = len(seconds) if options.get("proxy_feature") else min(options.get("warm_start", 0), len(seconds))
    return round(per_cell * cells, 1)


def difference_se(runs: list[dict], tpe_runs: list[dict]) -> float:
    """Standard error of mean(final) - mean(TPE's final): paired over seeds when both ran the
    same seeds (the table and seeds are shared, the samplers' draws are not), else unpaired."""
    mine = {r["seed"]: r["final"] for r in runs}
    theirs = {r["seed"]: r["final"] for r in tpe_runs}
    if len(mine) < 2 or len(theirs) < 2:
        return 0.0
    if set(mine) == set(theirs):
        diffs = [mine[k] - theirs[k] for k in mine]
        return statistics.stdev(diffs) / math.sqrt(len(diffs))
    return math.sqrt(statistics.variance(mine.values()) / len(mine)
                     + statistics.variance(theirs.values()) / len(theirs))


def _band(curves: list[list[float]]) -> tuple[list[float], list[float], list[float]]:
    """Mean and +/- 1 standard error at each evaluation (NaNs skipped)."""
    n = min(len(c) for c in curves)
    mean, lo, hi = [], [], []
    for i in range(n):
        vals = [c[i] for c in curves if not math.isnan(c[i])]
        m = statistics.mean(vals) if vals else float("nan")
        se = statistics.stdev(vals) / math.sqrt(len(vals)) if len(vals) > 1 else 0.0
        mean.append(m), lo.append(m - se), hi.append(m + se)
    return mean, lo, hi


def plot(by: dict, a) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(a.out, exist_ok=True)
    fig, (ax, rax) = plt.subplots(1, 2, figsize=(13, 4.5))
    last = max(len(r["curve"]) for runs in by.values() for r in runs)
    for s, runs in by.items():
        mean, lo, hi = _band([r["curve"] for r in runs])
        xs = list(range(1, len(mean) + 1))
        (line,) = ax.plot(xs, mean, label=f"{s} ({mean[-1]:.2f})")
        ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.15)
        if all("regret" in r for r in runs):
            found = statistics.mean(float(r["found_best"]) for r in runs)
            mean, lo, hi = _band([r["regret"] for r in runs])
            rax.plot(xs, mean, color=line.get_color(), label=f"{s} ({mean[-1]:.3f}; best found {found:.0%})")
            rax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.15)
    if a.report == "test_acc_200ep":
        ax.axhline(BEST_CELL, color="0.5", ls=":", lw=1, label=f"best cell {BEST_CELL}")
    ax.set_xlabel("evaluations")
    ax.set_ylabel(f"{a.report} of best-by-{a.signal} so far")
    ax.set_ylim(92.5, 94.6) if a.report == "test_acc_200ep" else None
    ax.set_title(f"NAS-Bench-201 ({os.path.basename(a.table)}): mean of {len(next(iter(by.values())))} runs "
                 "per strategy, band = +/- 1 standard error", fontsize=9)
    rax.set_yscale("symlog", linthresh=0.01)  # regret 0 (found) must show
    rax.set_xlabel("evaluations")
    rax.set_ylabel(f"regret: table's best {a.signal} - best found so far")
    rax.set_title("the search on its own signal (0 = found the best-signal cell)", fontsize=9)
    for axis in (ax, rax):
        axis.set_xlim(10, last)
        axis.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    rax.legend(loc="upper right", fontsize=8)
    path = os.path.join(a.out, f"nb201_search_B{a.budget}_R{len(next(iter(by.values())))}.png")
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


if __name__ == "__main__":
    sys.exit(main())
