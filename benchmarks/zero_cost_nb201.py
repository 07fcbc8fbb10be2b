"""Zero-cost proxies on NAS-Bench-201: how well do untrained networks rank, and what does a
search with no training at all return?

Scores ``--cells`` distinct cells drawn uniformly (``space.sample(random.Random(seed))``) of the
NAS-Bench-201 macro network as the table was trained (C = 16, N = 5), each built from torch seed
``--seed``, with every proxy of `nasforge.platform.engine.proxies` on one batch of ``--batch-size``
real CIFAR-10 training images (the shared JPEG zip through the platform's own CIFAR-10 data
module), then prints one JSON line per (proxy, accuracy column of ``--table``): Kendall tau and
Spearman rho over the scored cells, with the parameter count's beside it; one per (proxy, N):
the table test accuracy of the cell a proxy picks as best of N cells drawn from the scored ones
(with replacement, ``--search-seeds`` seeds; the ensemble ranks within the N drawn); and the
seconds per cell of each proxy alone (on the first ``--time-cells`` cells) and of all together.

Scores go to ``--scores-out`` (CSV keyed by ``arch``, one row per cell, written as it goes; a
rerun with the same file scores only the cells missing from it). ``--from-scores FILE`` skips
scoring and reports from a saved file. ``--table`` may be any NAS-Bench-201-format CSV (``arch``
and accuracy columns); its numeric columns are all reported.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/zero_cost_nb201.py --cells 1000 \
        --scores-out benchmarks/results/zero_cost_nb201_scores.csv
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import time

ANCHORS = {  # NAS-Bench-201 CIFAR-10, published
    "kendall_tau": {"params": 0.56, "naswot (Mellor et al. 2021)": 0.574, "vote synflow+jacob_cov+snip": 0.63},
    "best_of_1000_test": {"naswot": "92.96 +/- 0.81", "GDAS": 93.61},
}
TARGETS = {"ensemble_kendall_tau_test_acc_200ep": 0.65, "ensemble_best_of_1000_test": 93.6,
           "seconds_per_cell_all": 2.0}


from oneshot_nb201 import default_data, log  # noqa: E402 - benchmarks/ is the script's folder

from nasforge.platform.strategies.proxy_prior import DEFAULT_MEMBERS, read_scores  # noqa: E402


def read_table(path: str) -> tuple[list[str], dict[str, dict[str, float]]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    cols = [c for c in rows[0] if c != "arch" and _numeric(rows[0][c])]
    return cols, {r["arch"]: {c: float(r[c]) for c in cols} for r in rows}


def _numeric(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def score_cells(a, keys: list[str]) -> dict[str, dict[str, float]]:
    import torch

    from nasforge.platform.engine.proxies import PROXIES, first_batch, score_network
    from nasforge.search_spaces.nb201 import NB201Space, from_string
    from nasforge.tasks.cifar10 import CIFAR10DataModule

    torch.set_num_threads(a.threads)
    dm = CIFAR10DataModule(path=os.path.join(a.data, "cifar10-jpeg.zip"), batch_size=a.batch_size, seed=a.seed,
                           val_fraction=0.1)
    batch = first_batch(dm)
    space = NB201Space(C=16, N=5)
    done = read_scores(a.scores_out) if a.scores_out and os.path.exists(a.scores_out) else {}
    new = not (a.scores_out and os.path.exists(a.scores_out))
    out = open(a.scores_out, "a", newline="") if a.scores_out else None
    writer = csv.writer(out) if out else None
    if writer and new:
        writer.writerow(["arch", *PROXIES, "seconds"])
    t_start = time.perf_counter()
    k, n_shards = (int(v) for v in a.shard.split("/"))
    for n, key in enumerate(keys):
        if key in done or n % n_shards != k:
            continue
        torch.manual_seed(a.seed)
        net = space.build(from_string(key), (3, 32, 32), 10)
        t0 = time.perf_counter()
        s = score_network(net, batch, PROXIES, seed=a.seed)
        s["seconds"] = time.perf_counter() - t0
        done[key] = s
        if writer:
            writer.writerow([key, *[repr(s[p]) for p in PROXIES], round(s["seconds"], 4)])
            out.flush()
        if n % 50 == 0:
            log(f"{n + 1}/{len(keys)} cells scored ({time.perf_counter() - t_start:.0f}s)")
    if out:
        out.close()
    if a.shard != "0/1":
        log(f"shard {a.shard} done")
        raise SystemExit(0)
    timing = {}
    for p in PROXIES:  # each proxy alone, on the first cells
        t0 = time.perf_counter()
        for key in keys[:a.time_cells]:
            torch.manual_seed(a.seed)
            score_network(space.build(from_string(key), (3, 32, 32), 10), batch, [p], seed=a.seed)
        timing[p] = (time.perf_counter() - t0) / max(1, min(a.time_cells, len(keys)))
    print(json.dumps({"seconds_per_cell_alone": {p: round(v, 4) for p, v in timing.items()},
                      "seconds_per_cell_all": round(statistics.mean(done[k]["seconds"] for k in keys), 4),
                      "batch_size": a.batch_size, "threads": a.threads, "timed_cells": a.time_cells}), flush=True)
    return {k: done[k] for k in keys}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=default_data(), help="folder holding cifar10-jpeg.zip (and nb201/cifar10.csv)")
    p.add_argument("--table", default=None, help="a NAS-Bench-201-format CSV (default: DATA/nb201/cifar10.csv)")
    p.add_argument("--cells", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--time-cells", type=int, default=10)
    p.add_argument("--search-seeds", type=int, default=100)
    p.add_argument("--members", default=",".join(DEFAULT_MEMBERS), help="the ensemble's proxies")
    p.add_argument("--scores-out", default=None)
    p.add_argument("--exclude", default=None, help="a scores CSV whose cells are not drawn (held-out cells: "
                   "another --seed, excluding the reported file's)")
    p.add_argument("--shard", default="0/1", help="K/N: score only every N-th cell from the K-th (processes "
                   "appending to one --scores-out; a last run without --shard then reports)")
    p.add_argument("--from-scores", default=None, help="report from a saved scores CSV instead of scoring")
    p.add_argument("--choose-members", action="store_true", help="with --from-scores (held-out cells): rank "
                   "every subset of 2-4 proxies, mean rank and majority vote, by Kendall tau on the test column")
    p.add_argument("--plot-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    a = p.parse_args(argv)

    from nasforge.search_spaces.nb201 import NB201Space

    table_path = a.table or os.path.join(a.data, "nb201", "cifar10.csv")
    cols, table = read_table(table_path)
    if a.choose_members and not a.from_scores:
        p.error("--choose-members reads --from-scores FILE (the held-out cells' scores)")
    if a.from_scores:
        scores = {k: v for k, v in read_scores(a.from_scores).items() if k in table}
        if a.choose_members:
            choose_members(scores, table, "test_acc_200ep" if "test_acc_200ep" in cols else cols[-1])
            return 0
    else:
        space, rng, keys = NB201Space(C=16, N=5), random.Random(a.seed), []
        seen = set(read_scores(a.exclude)) if a.exclude else set()
        while len(keys) < a.cells:
            key = space.key(space.sample(rng))
            if key not in seen and key in table:
                seen.add(key)
                keys.append(key)
        scores = score_cells(a, keys)
    members = [m for m in a.members.split(",") if m]
    report(scores, table, cols, members, a, table_path)
    return 0


def choose_members(scores, table, col: str) -> None:
    """One JSON line per (subset of 2-4 proxies, combination): Kendall tau against ``col`` of the
    mean rank (`ensemble_scores`, what the strategies use) and of a majority vote (a cell's score:
    the cells it beats in a majority of the members' pairwise comparisons, Abdelfattah et al.
    2021), best first; then the best mean-rank subset."""
    import itertools

    import numpy as np
    from scipy.stats import kendalltau

    from nasforge.platform.engine.proxies import PROXIES
    from nasforge.platform.strategies.proxy_prior import ensemble_scores

    keys = list(scores)
    rows, acc = [scores[k] for k in keys], [table[k][col] for k in keys]
    signs = {p: np.sign(np.subtract.outer(*[np.array([r[p] for r in rows])] * 2)) for p in PROXIES}  # (n, n)
    lines = []
    for size in (2, 3, 4):
        for members in itertools.combinations(PROXIES, size):
            vote = (np.sign(sum(signs[m] for m in members)) > 0).sum(1)  # cells beaten by majority
            mean_rank = ensemble_scores(rows, members)
            lines.append({"members": list(members), "cells": len(keys), "column": col,
                          "kendall_tau_mean_rank": round(float(kendalltau(mean_rank, acc).statistic), 4),
                          "kendall_tau_vote": round(float(kendalltau(vote, acc).statistic), 4)})
    lines.sort(key=lambda line: -max(line["kendall_tau_mean_rank"], line["kendall_tau_vote"]))
    for line in lines:
        print(json.dumps(line), flush=True)
    best = max(lines, key=lambda line: line["kendall_tau_mean_rank"])
    print(json.dumps({"chosen": best["members"], "by": "kendall_tau_mean_rank", "cells": len(keys)}), flush=True)


def report(scores, table, cols, members, a, table_path) -> None:
    from scipy.stats import kendalltau, spearmanr

    from nasforge.platform.engine.proxies import PROXIES
    from nasforge.platform.strategies.proxy_prior import add_ensemble

    keys = list(scores)
    rows = [dict(scores[k]) for k in keys]
    add_ensemble(rows, members)
    names = [*PROXIES, "ensemble"]
    for col in cols:
        acc = [table[k][col] for k in keys]
        base = kendalltau([r["params"] for r in rows], acc).statistic
        for name in names:
            vals = [r[name] for r in rows]
            line = {"proxy": name, "column": col, "cells": len(keys),
                    "kendall_tau": round(float(kendalltau(vals, acc).statistic), 4),
                    "spearman_rho": round(float(spearmanr(vals, acc).statistic), 4),
                    "params_kendall_tau": round(float(base), 4), "table": table_path, "seed": a.seed}
            if name == "ensemble":
                line["members"] = members
            print(json.dumps(line), flush=True)
    test = "test_acc_200ep" if "test_acc_200ep" in cols else cols[-1]
    curves = {}
    for name in [*names, "no proxy: best by " + cols[0]]:
        curves[name] = {}
        for n in (10, 100, 1000):
            picks = []
            for s in range(a.search_seeds):
                drawn = random.Random(1000 + s).choices(keys, k=n)
                if name.startswith("no proxy"):
                    best = max(drawn, key=lambda k: table[k][cols[0]])
                else:
                    sub = [dict(scores[k]) for k in drawn]
                    add_ensemble(sub, members)
                    best = drawn[max(range(n), key=lambda i: sub[i][name])]
                picks.append(table[best][test])
            curves[name][n] = (statistics.mean(picks), statistics.stdev(picks))
            print(json.dumps({"search": "best_of_n", "proxy": name, "n": n, "seeds": a.search_seeds,
                              "mean_test": round(curves[name][n][0], 3), "std_test": round(curves[name][n][1], 3),
                              "column": test, "draws": "with replacement from the scored cells"}), flush=True)
    plot(rows, keys, table, test, curves, a.plot_dir)


def plot(rows, keys, table, test, curves, out) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import rankdata

    names = [n for n in rows[0] if n != "seconds"]
    fig, axes = plt.subplots(3, 3, figsize=(12, 11))
    acc = [table[k][test] for k in keys]
    for ax, name in zip(axes.flat, names):
        ax.scatter(rankdata([r[name] for r in rows]) / len(rows), acc, s=3, alpha=0.5)
        ax.set_title(name)
        ax.set_xlabel("proxy score (rank among cells, 0..1)")
        ax.set_ylabel(test)
        ax.set_ylim(max(10, min(acc)), 95)
    fig.tight_layout()
    os.makedirs(out, exist_ok=True)
    fig.savefig(os.path.join(out, "zero_cost_nb201_scatter.png"), dpi=80)
    fig, ax = plt.subplots(figsize=(7, 5))
    for name, c in curves.items():
        ns = sorted(c)
        ax.plot(ns, [c[n][0] for n in ns], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("N (cells drawn)")
    ax.set_ylabel(f"mean {test} of the pick")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "zero_cost_nb201_best_of_n.png"), dpi=80)
    log(f"plots in {out}")


if __name__ == "__main__":
    raise SystemExit(main())
