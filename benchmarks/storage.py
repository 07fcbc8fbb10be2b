"""Which embedded storage should a sweep use? SQLite against Optuna's JournalStorage file,
under 4 concurrent worker processes on one machine.

Each process opens the storage the way nasforge does (platform/engine/storage.py: ``sqlite:///FILE``
-> RDBStorage, ``journal://FILE`` -> JournalStorage over a file with the open(O_EXCL) lock)
and runs a fixed number of trivial trials the way a worker does: ask, one suggestion, three
user attrs and one heartbeat system attr (what a nasforge trial writes), tell. No training: the
storage is all that is measured. The processes start together (a barrier); every exception a
process meets (e.g. SQLite's "database is locked") is counted and the trial goes on.

Prints one JSON line per storage (trials/s over the wall time of all 4, errors, examples) and
a last line with the ratio journal/sqlite.

    .venv/bin/python benchmarks/storage.py [--processes 4] [--trials 60]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import tempfile
import time


def _worker(url: str, name: str, trials: int, barrier, results) -> None:
    import optuna

    from nasforge.platform.engine.storage import create_storage
    from nasforge.platform.optuna_adapter import set_system_attr

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    errors: list[str] = []
    ok = 0
    storage = None
    for _ in range(20):  # opening can itself hit a lock while another process creates the tables
        try:
            storage = create_storage(url)
            study = optuna.load_study(study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler())
            break
        except Exception as e:  # noqa: BLE001
            errors.append(f"open: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
            time.sleep(0.1)
    barrier.wait()
    start = time.perf_counter()
    for i in range(trials):
        try:
            trial = study.ask()
            x = trial.suggest_float("x", -1.0, 1.0)
            trial.set_user_attr("sample", {"x": x})
            trial.set_user_attr("trial_dir", f"/tmp/t/{trial.number}")
            trial.set_user_attr("metrics", {"val/acc": 1 - x * x})
            set_system_attr(storage, trial, "nasforge:heartbeat", {"t": time.time()})
            study.tell(trial, 1 - x * x)
            ok += 1
        except Exception as e:  # noqa: BLE001 - counted, the worker goes on
            errors.append(f"{type(e).__name__}: {str(e).splitlines()[0][:120]}")
    results.put({"ok": ok, "errors": errors, "seconds": time.perf_counter() - start})


def measure(kind: str, folder: str, processes: int, trials: int) -> dict:
    import optuna

    from nasforge.platform.engine.storage import create_storage

    url = f"sqlite:///{folder}/{kind}.db" if kind == "sqlite" else f"journal://{folder}/{kind}.journal"
    name = f"bench-{kind}"
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    optuna.create_study(study_name=name, storage=create_storage(url), direction="maximize")
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(processes + 1), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, name, trials, barrier, results)) for _ in range(processes)]
    for p in procs:
        p.start()
    barrier.wait()
    start = time.perf_counter()
    outs = [results.get(timeout=900) for _ in procs]
    wall = time.perf_counter() - start
    for p in procs:
        p.join()
    stored = optuna.load_study(study_name=name, storage=create_storage(url))
    complete = len(stored.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    errors = [e for o in outs for e in o["errors"]]
    examples = sorted({e.split(":")[0] + ":" + e.split(":")[1] if ":" in e else e for e in errors})[:3]
    return {
        "benchmark": "storage", "storage": kind, "url_scheme": url.split("://")[0], "processes": processes,
        "trials_per_process": trials, "trials_ok": sum(o["ok"] for o in outs), "trials_complete_in_storage": complete,
        "wall_s": round(wall, 2), "trials_per_s": round(sum(o["ok"] for o in outs) / wall, 2),
        "errors": len(errors), "error_examples": examples,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--processes", type=int, default=4)
    p.add_argument("--trials", type=int, default=60, help="trials per process")
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="nasforge-storage-bench-") as folder:
        rows = [measure(kind, folder, args.processes, args.trials) for kind in ("sqlite", "journal")]
    for r in rows:
        print(json.dumps(r))
    sqlite, journal = rows
    print(json.dumps({
        "benchmark": "storage", "ratio_journal_over_sqlite_trials_per_s":
            round(journal["trials_per_s"] / sqlite["trials_per_s"], 2) if sqlite["trials_per_s"] else None,
        "errors": {"sqlite": sqlite["errors"], "journal": journal["errors"]},
        "processes": args.processes, "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
