"""Throughput of parallel workers: trials per minute with 1 and with 2 workers, in one run.

The sweep is CPU-sized and real: a small convnet + hyperparameters on scikit-learn's digits
(all 1,797 images, 2 epochs per trial, random sampler, no pruning, W&B disabled), run with
``nasforge sweep run FILE --workers N`` exactly as a user would. Three settings:

* ``one_worker``: ``--workers 1``, torch's default threads (all cores), what a user runs first;
* ``one_worker_1_thread``: the same with ``OMP_NUM_THREADS=1``;
* ``two_workers``: ``--workers 2`` (each worker gets ``cpu_count // 2`` torch threads).

``ratio_vs_default`` = two workers / one worker (what a user gains with ``--workers 2``);
``ratio_vs_1_thread`` = two workers / one single-thread worker (the gain from running two
processes alone, with the same threads per process). Two rates per setting:

* ``per_min_command``: finished trials / wall time of the whole command (process start-up,
  imports and the final leaderboard included);
* ``per_min_trials``: finished trials / (last trial's end - first trial's start), from the
  storage: the steady rate once workers are up.

Prints one JSON line with both settings and the ratios (2 workers / 1 worker).

    .venv/bin/python benchmarks/parallel.py [--trials 8] [--epochs 2]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import yaml


def sweep_file(folder: str, name: str, trials: int, epochs: int) -> str:
    data = {
        "name": name, "seed": 0,
        "task": {"name": "classification", "data": {"name": "digits", "val_fraction": 0.25},
                 "options": {"batch_size": 64}},
        "space": [{"name": "convnet", "options": {"stages": 2, "widths": [8, 16], "max_depth": 2}},
                  {"name": "hparams", "options": {"optimizer": ["sgd", "adamw"], "lr": [0.003, 0.3]}}],
        "strategy": {"name": "random"}, "budget": {"trials": trials}, "pruner": {"name": "none"},
        "trainer": {"accelerator": "cpu", "devices": 1, "max_epochs": epochs},
        "tracking": {"mode": "disabled"},
    }
    path = os.path.join(folder, f"{name}.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    return path


def run(folder: str, workers: int, trials: int, epochs: int, threads: int | None = None) -> dict:
    import optuna

    from nasforge.platform.engine.storage import create_storage

    name = f"parallel-{workers}w{threads or ''}"
    root = os.path.join(folder, "runs")
    cmd = [sys.executable, "-m", "nasforge.platform.cli", "sweep", "run", sweep_file(folder, name, trials, epochs),
           "--root", root, "--no-progress", "--workers", str(workers)]
    start = time.perf_counter()
    env = dict(os.environ, WANDB_MODE="disabled")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    study = optuna.load_study(study_name=name, storage=create_storage(f"journal://{root}/{name}/study.journal"))
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name in ("COMPLETE", "PRUNED")]
    span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
    return {"workers": workers, "threads": threads or "default", "trials": len(done), "command_s": round(wall, 1),
            "trials_span_s": round(span, 1),
            "per_min_command": round(60 * len(done) / wall, 2), "per_min_trials": round(60 * len(done) / span, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--epochs", type=int, default=2)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="nasforge-parallel-bench-") as folder:
        one = run(folder, 1, args.trials, args.epochs)
        one_1t = run(folder, 1, args.trials, args.epochs, threads=1)
        two = run(folder, 2, args.trials, args.epochs)
    print(json.dumps({
        "benchmark": "parallel", "sweep": f"convnet+hparams on digits, {args.trials} trials x {args.epochs} epochs",
        "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2), "one_worker": one,
        "one_worker_1_thread": one_1t, "two_workers": two,
        "ratio_vs_default": {k: round(two[k] / one[k], 2) for k in ("per_min_command", "per_min_trials")},
        "ratio_vs_1_thread": {k: round(two[k] / one_1t[k], 2) for k in ("per_min_command", "per_min_trials")},
    }))


if __name__ == "__main__":
    main()
