"""Tune the proxy prior's settings (warm_start M, warm_top k, proxy_feature) on NAS-Bench-201.

For each strategy of ``--strategies`` and each budget of ``--budgets``: R runs (seeds
``--seed``.., meant to be apart from the reported 0-199) of the strategy without a prior, and of
``<strategy>+proxy`` for every combination in ``--grid`` (JSON {strategy: {option: [values]}}),
each run exactly as `nb201_search.py` runs it (`run_one`). Prints one JSON line per
(strategy, options, budget): mean test of the returned cell, best-signal cell found, regret and
``proxy_seconds`` (what scoring the cells the prior reads costs, `nb201_search.proxy_seconds`).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/nb201_proxy_tune.py --seed 1000 --runs 50 --jobs 2 \\
        --proxy-scores benchmarks/results/zero_cost_nb201_scores.csv
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys

from nb201_search import default_table, proxy_seconds, run_one  # benchmarks/ is the script's folder

GRID = {"local_search": {"warm_start": [200, 500, 1000], "warm_top": [1, 10], "proxy_feature": [False, True]},
        "evolution": {"warm_start": [200, 1000], "warm_top": [10, 30]},
        "controller": {"warm_start": [200, 1000], "warm_top": [5, 20]}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--table", default=default_table())
    p.add_argument("--proxy-scores", required=True, help="a zero-cost scores CSV keyed by arch")
    p.add_argument("--strategies", default="local_search,evolution,controller")
    p.add_argument("--budgets", default="100")
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--grid", default=json.dumps(GRID), help="JSON {strategy: {option: [values]}}")
    p.add_argument("--jobs", type=int, default=1)
    a = p.parse_args(argv)
    grid = json.loads(a.grid)
    scores = os.path.abspath(a.proxy_scores)
    configs = []
    for s in [s for s in a.strategies.split(",") if s]:
        if s not in grid:
            p.error(f"--grid has no settings for {s!r}")
        names, values = zip(*grid[s].items())
        configs.append((s, None))
        configs += [(f"{s}+proxy", {**dict(zip(names, v)), "proxy_scores": scores}) for v in itertools.product(*values)]
    jobs = [(name, a.seed + r, int(b), a.table, "val_acc_12ep", "test_acc_200ep", opts or {})
            for b in a.budgets.split(",") for name, opts in configs for r in range(a.runs)]
    if a.jobs > 1:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(a.jobs)
        results = pool.imap(run_one, jobs, chunksize=2)
    else:
        results = map(run_one, jobs)
    runs = []
    for i, r in enumerate(results):  # one line as soon as a setting's runs are done
        runs.append(r)
        if len(runs) < a.runs:
            continue
        name, _, budget, *_, opts = jobs[i]
        shown = {k: v for k, v in opts.items() if k != "proxy_scores"}
        print(json.dumps({"strategy": name, "options": shown, "budget": budget, "runs": a.runs, "seed": a.seed,
                          "mean": round(statistics.mean(r["final"] for r in runs), 4),
                          "found_best": round(statistics.mean(float(r["found_best"]) for r in runs), 3),
                          "regret": round(statistics.mean(r["regret"][-1] for r in runs), 4),
                          "proxy_seconds": proxy_seconds(scores, opts) if opts else None}), flush=True)
        runs = []
    if a.jobs > 1:
        pool.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
