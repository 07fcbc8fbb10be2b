"""Milliseconds a strategy spends per suggestion once a study holds 1,000 completed trials.

For each strategy: an Optuna study (in-memory storage) over the nb201 space with the tabular
objective runs ``--trials`` trials, then ``--measure`` more; for those last ones the time spent
in ``space.suggest(trial)`` (= in the sampler, one call per decision) is measured. Prints one
JSON line per strategy: strategy, ms_per_suggestion (mean), p95_ms, max_ms, completed, and
cold_start_ms: the first suggestion of a fresh sampler on that study (a second worker or a resumed
sweep rebuilding its state from storage).

    python benchmarks/sampler_overhead.py --strategies controller,evolution,tpe,random
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def measure(strategy: str, trials: int, n_measure: int, table: str | None, seed: int) -> dict:
    import optuna
    import torch

    from nasforge.platform.strategies import create_sampler
    from nasforge.search_spaces import create_space
    from nasforge.tasks.tabular import TabularBenchmark

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = create_space("nb201")
    bench = TabularBenchmark(table)
    study = optuna.create_study(direction="maximize", storage=optuna.storages.InMemoryStorage(),
                                sampler=create_sampler({"name": strategy}, space, seed, ["maximize"]))
    times: list[float] = []

    def objective(trial):
        t0 = time.perf_counter()
        sample = space.suggest(trial)
        dt = time.perf_counter() - t0
        if trial.number >= trials:
            times.append(dt * 1000)
        return bench.evaluate(space.key(sample))["val_acc_12ep"]

    t0 = time.perf_counter()
    study.optimize(objective, n_trials=trials + n_measure)
    total = time.perf_counter() - t0
    warm = sorted(times)
    # a second worker or a resumed sweep: a fresh sampler rebuilds its state from the storage
    study.sampler = create_sampler({"name": strategy}, space, seed, ["maximize"])
    times.clear()
    study.optimize(objective, n_trials=1)
    return {"strategy": strategy, "ms_per_suggestion": round(statistics.mean(warm), 2),
            "p95_ms": round(warm[int(0.95 * (len(warm) - 1))], 2), "max_ms": round(warm[-1], 2),
            "cold_start_ms": round(times[0], 1), "completed": trials, "measured": n_measure,
            "total_s": round(total, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--strategies", default="controller,evolution,tpe,random")
    p.add_argument("--trials", type=int, default=1000)
    p.add_argument("--measure", type=int, default=50)
    p.add_argument("--table", default=None, help="NAS-Bench-201-format CSV (default: the shared CIFAR-10 one)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    for s in a.strategies.split(","):
        print(json.dumps(measure(s, a.trials, a.measure, a.table, a.seed)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
