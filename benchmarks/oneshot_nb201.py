"""One-shot NAS on NAS-Bench-201: how well does a CPU-sized supernet rank cells?

Trains the ``nb201`` supernet on a CIFAR-10 subset (the shared JPEG copy) exactly as a
``mode: one_shot`` sweep does (`nasforge.platform.engine.oneshot.train_supernet`: the classification
task unchanged, one path per batch, uniform as in SPOS or, ``--sampling fair``, in FairNAS's
strictly fair rounds), then:

* scores ``--cells`` distinct cells drawn uniformly with inherited weights (batch norm
  recalibrated on ``--calib-batches`` training batches; accuracy on ``--val`` held-out training
  images), and compares the ranking with the table's 200-epoch test accuracy: Kendall tau and
  Spearman rho, over all drawn cells and over the non-degenerate ones (table accuracy > 15 %,
  i.e. not the cells whose output never sees the input); and again on the first 64, 128, ...
  validation images only (``kendall_tau_by_val_images``: what scoring noise costs);
* runs the search phase (`search_supernet`, an Optuna study with ``--strategy`` as sampler,
  ``--search-trials`` trials scored with inherited weights) and looks up the table's test
  accuracy of the cell it returns (its best by supernet accuracy). Cells the drawn set and the
  search share are scored once (a score is deterministic).

Beside the supernet, on the same drawn cells: the zero-cost proxies of each cell's untrained
network (the C/N network the space builds, as a ``mode: one_shot`` sweep with ``oneshot.rank:
proxies`` scores it: `proxy_scoring.ProxyScorer` on the first training batch, seeded), each one's
tau and rho, the ensemble's (`proxy_prior.DEFAULT_MEMBERS`) and ``both``'s (the mean of the
supernet's and the ensemble's quantiles), one JSON line per estimator. Then one search per
``--rank`` (``all``: supernet, proxies and both, from the one trained supernet), each scored by
`oneshot_rank.RankedScorer` with the drawn cells as its reference pool (what a sweep with
``oneshot.reference: --cells`` and the same seed draws), one JSON line per ranking with the table
accuracy of the cell it returns.

Prints the JSON lines and a summary line (with the published anchors: NAS-Bench-201's one-shot
baselines) and saves a scatter plot (supernet accuracy against table accuracy) and a bar chart of
tau per estimator (``--rankings-plot``) under benchmarks/results/.

    nice -n 10 .venv/bin/python benchmarks/oneshot_nb201.py --subset 20000 --epochs 8 --rank all
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

# NAS-Bench-201 (Dong & Yang, ICLR 2020), CIFAR-10 test accuracy of the cell each weight-sharing
# method returns; multi-trial random search for comparison; the table's best cell.
ANCHORS = {
    "DARTS-V1/V2": 54.30,
    "ENAS": 54.30,
    "RSPS (random search, parameter sharing)": 87.66,
    "SETN": 87.64,
    "GDAS": 93.61,
    "multi-trial random search": 93.70,
    "best cell": 94.37,
}
TARGETS = {"searched_cell_test_acc": 93.6, "kendall_tau": 0.5}


ESTIMATOR_OF_RANK = {"supernet": "supernet", "proxies": "ensemble", "both": "both"}


def best_by(values) -> int:
    return max(range(len(values)), key=values.__getitem__)


def default_data() -> str:
    for root in (
        os.environ.get("NASFORGE_DATA"),
        os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"),
    ):
        if root and os.path.isdir(root):
            return os.path.abspath(root)
    return os.path.abspath(os.path.join("..", "shared", "data"))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--data",
        default=default_data(),
        help="folder holding cifar10-jpeg.zip and nb201/cifar10.csv",
    )
    p.add_argument("--subset", type=int, default=20000, help="training images for the supernet")
    p.add_argument(
        "--val", type=int, default=1000, help="held-out training images that score a cell"
    )
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--C", type=int, default=16, help="stem width (the benchmark's is 16)")
    p.add_argument("--N", type=int, default=1, help="cells per stage (the benchmark's is 5)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument(
        "--cells",
        type=int,
        default=100,
        help="uniformly drawn cells scored for the rank correlation",
    )
    p.add_argument("--search-trials", type=int, default=100)
    p.add_argument("--strategy", default="evolution")
    p.add_argument("--calib-batches", type=int, default=4)
    p.add_argument(
        "--sampling",
        default="uniform",
        choices=("uniform", "fair"),
        help="supernet paths: uniform (SPOS) or strictly fair rounds (FairNAS)",
    )
    p.add_argument("--rank", default="all", choices=("supernet", "proxies", "both", "all"),
                   help="how the search scores a cell (oneshot.rank); all: one search each")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0, help="the sweep's seed: data split, supernet, proxies' init")
    p.add_argument("--cell-seed", type=int, default=None,
                   help="seed of the drawn cells and of the searches' samplers (default: --seed); another "
                        "value evaluates other cells on the same supernet (--run-dir)")
    p.add_argument(
        "--plot", default=os.path.join(os.path.dirname(__file__), "results", "oneshot_nb201.png")
    )
    p.add_argument("--rankings-plot",
                   default=os.path.join(os.path.dirname(__file__), "results", "oneshot_nb201_rankings.png"))
    p.add_argument(
        "--run-dir",
        default=None,
        help="keep the supernet here (a later run with the same training settings reuses it); "
        "default: a temporary folder",
    )
    a = p.parse_args(argv)
    cell_seed = a.seed if a.cell_seed is None else a.cell_seed

    import optuna
    import torch
    from scipy.stats import kendalltau, spearmanr

    from nasforge.platform.engine.config import parse_sweep
    from nasforge.platform.engine.oneshot import search_supernet, top_samples, train_supernet
    from nasforge.platform.engine.oneshot_rank import RANKS, RankedScorer, quantile
    from nasforge.platform.engine.proxies import PROXIES
    from nasforge.platform.engine.proxy_scoring import ProxyScorer, draw_samples
    from nasforge.platform.engine.single_path import InheritedWeightScorer
    from nasforge.platform.strategies.proxy_prior import DEFAULT_MEMBERS, ensemble_scores
    from nasforge.platform.strategies import create_sampler
    from nasforge.platform.engine.trial import TrialContext
    from nasforge.tasks.tabular import TabularBenchmark

    torch.set_num_threads(a.threads)
    table = TabularBenchmark(
        os.path.join(a.data, "nb201", "cifar10.csv"), signal="val_acc_12ep", report="test_acc_200ep"
    )
    cfg = parse_sweep(
        {
            "name": "oneshot_nb201",
            "seed": a.seed,
            "mode": "one_shot",
            "task": {
                "name": "classification",
                "data": {
                    "name": "cifar10",
                    "path": os.path.join(a.data, "cifar10-jpeg.zip"),
                    "val_fraction": 0.1,
                    "subset": a.subset,
                    "val_subset": a.val,
                },
                "options": {"batch_size": a.batch_size, "lr": a.lr, "warmup_epochs": 0},
            },
            "space": [{"name": "nb201", "options": {"C": a.C, "N": a.N}}],
            "strategy": {"name": a.strategy},
            "pruner": {"name": "none"},
            "oneshot": {
                "epochs": a.epochs,
                "calib_batches": a.calib_batches,
                "search_trials": a.search_trials,
                "sampling": a.sampling,
            },
            "trainer": {"accelerator": "cpu", "cpu_threads": a.threads},
            "tracking": {"mode": "disabled"},
        }
    )
    with tempfile.TemporaryDirectory(prefix="oneshot_nb201-") as tmp:
        ctx = TrialContext.create(cfg, a.run_dir or tmp)
        t0 = time.perf_counter()
        log(f"training the supernet: {a.subset} images x {a.epochs} epochs, C={a.C} N={a.N}")
        module, dm = train_supernet(ctx)  # loads the one in --run-dir when it is there
        train_s = time.perf_counter() - t0
        log(f"supernet trained (or loaded) in {train_s:.0f}s")
    scorer = InheritedWeightScorer.from_datamodule(module.network, dm, a.calib_batches)
    space = ctx.space
    sizes = [len(y) for _, y in scorer.val]
    memo: dict[str, list[int]] = {}  # key -> correct per val batch (scores are deterministic)

    class Scorer:  # the drawn cells and the searches share the scores they need
        @staticmethod
        def score(sample) -> float:
            key = space.key(sample)
            if key not in memo:
                memo[key] = scorer.correct_per_batch(sample)
            return sum(memo[key]) / sum(sizes)

    proxy_scorer = ProxyScorer(ctx, PROXIES, dm=dm)
    proxy_memo: dict[str, dict[str, float]] = {}
    proxy_s: list[float] = []

    class Proxies:  # every proxy of a cell, once (the searches' scorers read the members)
        @staticmethod
        def score(sample) -> dict[str, float]:
            key = space.key(sample)
            if key not in proxy_memo:
                t = time.perf_counter()
                proxy_memo[key] = proxy_scorer.score(sample)
                proxy_s.append(time.perf_counter() - t)
            return {m: proxy_memo[key][m] for m in DEFAULT_MEMBERS}

    cells = {space.key(s): s for s in draw_samples(space, a.cells, cell_seed)}  # a sweep's reference pool
    t1 = time.perf_counter()
    rows = []
    for i, (key, s) in enumerate(cells.items()):
        rows.append({"arch": key, "supernet": Scorer.score(s), **table.evaluate(key)})
        if (i + 1) % 20 == 0:
            log(f"scored {i + 1}/{len(cells)} cells")
    score_s = (time.perf_counter() - t1) / len(rows)
    for r, s in zip(rows, cells.values()):
        Proxies.score(s)
        r.update(proxy_memo[r["arch"]])
    log(f"proxies of {len(rows)} cells: {sum(proxy_s) / len(proxy_s):.2f} s a cell")
    sup = [r["supernet"] for r in rows]
    ref = [r["test_acc_200ep"] for r in rows]
    live = [i for i, r in enumerate(rows) if r["test_acc_200ep"] > 15.0]
    tau, _ = kendalltau(sup, ref)
    rho, _ = spearmanr(sup, ref)
    tau_live, _ = kendalltau([sup[i] for i in live], [ref[i] for i in live])
    rho_live, _ = spearmanr([sup[i] for i in live], [ref[i] for i in live])
    # the same cells scored on the first k validation images only: how much scoring noise costs
    tau_by_val = {}
    for k in range(1, len(sizes) + 1):
        if k in (1, 2, 4, 8, 16, 32, len(sizes)):
            n = sum(sizes[:k])
            part = [sum(memo[r["arch"]][:k]) / n for r in rows]
            tau_by_val[n] = round(float(kendalltau(part, ref)[0]), 4)

    # every estimator on the same drawn cells
    pool = [{"supernet": r["supernet"], **{m: r[m] for m in DEFAULT_MEMBERS}} for r in rows]
    ens = ensemble_scores(rows, DEFAULT_MEMBERS)
    sup_q = ensemble_scores(rows, ["supernet"])
    estimators = {"supernet": sup, **{p: [r[p] for r in rows] for p in PROXIES}, "ensemble": ens,
                  "both": [(x + y) / 2 for x, y in zip(sup_q, ens)]}
    taus = {}
    for name, values in estimators.items():
        t_all, r_all = kendalltau(values, ref)[0], spearmanr(values, ref)[0]
        t_live = kendalltau([values[i] for i in live], [ref[i] for i in live])[0]
        taus[name] = round(float(t_all), 4)
        print(json.dumps({"estimator": name, "column": "test_acc_200ep", "cells": len(rows), "live_cells": len(live),
                          "kendall_tau": taus[name], "spearman_rho": round(float(r_all), 4),
                          "kendall_tau_live": round(float(t_live), 4), "seed": a.seed, "cell_seed": cell_seed,
                          **({"members": list(DEFAULT_MEMBERS)} if name in ("ensemble", "both") else {})}),
              flush=True)

    searched = {}
    for rank in RANKS if a.rank == "all" else (a.rank,):
        log(f"search: {a.strategy}, {a.search_trials} trials ranked by {rank}")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize", sampler=create_sampler(cfg.strategy, space, cell_seed))
        ranked = RankedScorer(rank, Scorer, None if rank == "supernet" else Proxies, DEFAULT_MEMBERS, pool)
        search_supernet(study, space, ranked, a.search_trials, ranked.metric)
        ((found, found_value),) = top_samples(study, 1)
        key = space.key(found)
        found_row = {"supernet": Scorer.score(found), **Proxies.score(found)}
        searched[rank] = {"rank": rank, "search_strategy": a.strategy, "search_trials": a.search_trials,
                          "searched_cell": key, "search_value": round(found_value, 4),
                          "searched_cell_supernet_acc": round(found_row["supernet"], 4),
                          "searched_cell_ensemble_quantile": round(quantile(pool, found_row, DEFAULT_MEMBERS), 4),
                          "searched_cell_test_acc": table.evaluate(key)["test_acc_200ep"],
                          "best_drawn_cell_test_acc": rows[best_by(estimators[ESTIMATOR_OF_RANK[rank]])][
                              "test_acc_200ep"],
                          "cells_scored_so_far": len(memo), "seed": a.seed, "cell_seed": cell_seed}
        print(json.dumps(searched[rank]), flush=True)
    main_search = searched.get("supernet") or next(iter(searched.values()))  # the summary's search
    found_key, found_score = main_search["searched_cell"], main_search["searched_cell_supernet_acc"]
    found_table = table.evaluate(found_key)

    out = {
        "benchmark": "oneshot_nb201",
        "subset": a.subset,
        "val_images": sum(sizes),
        "sampling": a.sampling,
        "epochs": a.epochs,
        "C": a.C,
        "N": a.N,
        "batch_size": a.batch_size,
        "lr": a.lr,
        "calib_batches": a.calib_batches,
        "threads": a.threads,
        "seed": a.seed,
        "cell_seed": cell_seed,
        "cells": len(rows),
        "live_cells": len(live),
        "kendall_tau": round(float(tau), 4),
        "spearman_rho": round(float(rho), 4),
        "kendall_tau_live": round(float(tau_live), 4),
        "spearman_rho_live": round(float(rho_live), 4),
        "kendall_tau_by_val_images": tau_by_val,
        "kendall_tau_by_estimator": taus,
        "searched_cell_test_acc_by_rank": {r: v["searched_cell_test_acc"] for r, v in searched.items()},
        "proxy_s_per_cell": round(sum(proxy_s) / len(proxy_s), 2),
        "search_strategy": a.strategy,
        "search_trials": a.search_trials,
        "search_rank": main_search["rank"],
        "searched_cell": found_key,
        "searched_cell_supernet_acc": round(found_score, 4),
        "searched_cell_test_acc": found_table["test_acc_200ep"],
        "best_drawn_cell_test_acc": rows[best_by(sup)]["test_acc_200ep"],
        "supernet_train_s": round(train_s, 1),
        "score_s_per_cell": round(score_s, 2),
        "cells_scored": len(memo),
        "wall_s": round(time.perf_counter() - t0, 1),
        "targets": TARGETS,
        "targets_met": {
            "searched_cell_test_acc": found_table["test_acc_200ep"]
            >= TARGETS["searched_cell_test_acc"],
            "kendall_tau": float(tau) >= TARGETS["kendall_tau"],
        },
        "anchors_nb201_paper": ANCHORS,
    }
    print(json.dumps(out))
    with open(os.path.splitext(a.plot)[0] + ".json", "w") as f:
        json.dump({"summary": out, "rows": rows}, f)
    plot(rows, found_key, found_table["test_acc_200ep"], found_score, out, a.plot)
    plot_rankings(taus, out, a.rankings_plot)
    log(f"plots: {a.plot}, {a.rankings_plot}")
    return 0


def plot(rows, found_key, found_test, found_score, out, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    ax.scatter(
        [r["test_acc_200ep"] for r in rows],
        [100 * r["supernet"] for r in rows],
        s=14,
        alpha=0.7,
        label=f"{len(rows)} uniformly drawn cells",
    )
    ax.scatter(
        [found_test],
        [100 * found_score],
        marker="*",
        s=160,
        color="crimson",
        label=f"cell returned by the search ({found_test:.2f} %)",
    )
    ax.set_xlabel("NAS-Bench-201 test accuracy after 200 epochs (%)")
    ax.set_ylabel("supernet val accuracy, inherited weights (%)")
    ax.set_title(
        f"one-shot nb201 (C={out['C']}, N={out['N']}, {out['sampling']} paths, "
        f"{out['subset']} images x {out['epochs']} epochs): "
        f"tau {out['kendall_tau']:.2f}, rho {out['spearman_rho']:.2f}",
        fontsize=8,
    )
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=120)


def plot_rankings(taus, out, path) -> None:
    """Kendall tau per estimator on the same cells, a bar each, the weakest first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(taus, key=taus.get)
    colours = ["crimson" if n == "supernet" else "darkorange" if n in ("ensemble", "both") else "steelblue"
               for n in names]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.barh(names, [taus[n] for n in names], color=colours)
    for i, n in enumerate(names):
        ax.text(taus[n], i, f" {taus[n]:+.2f}", va="center", fontsize=8)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("Kendall tau against NAS-Bench-201 test accuracy (200 epochs)")
    ax.set_title(f"one-shot nb201: {out['cells']} cells of seed {out.get('cell_seed', out['seed'])}, supernet "
                 f"C={out['C']} N={out['N']},\n{out['subset']} images x {out['epochs']} epochs; proxies of the "
                 "untrained C/N network", fontsize=8)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
