"""What the preflight costs, next to what it saves: one trial of the same sweep.

For a sweep file, in one process: the preflight (`engine.preflight.preflight`: storage, W&B mode,
one batch, one network, the task, one training and one validation step, metric check) timed
after the libraries are imported, then one real trial of the same sweep (`run_sweep` with
``budget.trials: 1``, W&B offline, in a temporary root) timed from start to end. Separately, the
wall time of ``nasforge sweep check FILE`` as a fresh process (imports included: what a user
waits for). Prints one JSON line:
``{"what": "preflight_cost", "sweep": ..., "preflight_s": ..., "check_process_s": ...,
"trial_s": ..., "ratio": preflight_s / trial_s}``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/preflight.py sweeps/quickstart.yaml
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/preflight.py sweeps/cifar10_attention.yaml \\
        --set trainer.max_epochs=1
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="sweep-file overrides for both the preflight and the trial (YAML values)")
    ap.add_argument("--no-trial", action="store_true", help="measure the preflight only")
    args = ap.parse_args()
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    import yaml

    overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}

    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "nasforge.platform.cli", "sweep", "check", os.path.abspath(args.file),
               "--root", os.path.join(tmp, "runs")] + [x for s in args.set for x in ("--set", s)]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        check_process_s = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"sweep check failed: {proc.stderr.strip()}")

        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        from nasforge.platform.engine.config import load_sweep
        from nasforge.platform.engine.preflight import preflight
        from nasforge.platform.engine.sweep import run_sweep

        cfg = load_sweep(args.file, {**overrides, "tracking.mode": "offline", "budget.trials": 1})
        preflight(cfg, os.path.join(tmp, "warm"))  # imports and the data cache warm, as for the trial
        start = time.perf_counter()
        report = preflight(cfg, os.path.join(tmp, "runs"))
        preflight_s = time.perf_counter() - start
        trial_s = None
        if not args.no_trial:
            start = time.perf_counter()
            run_sweep(cfg, root=os.path.join(tmp, "runs"), show_progress=False)
            trial_s = time.perf_counter() - start
    print(json.dumps({
        "what": "preflight_cost", "sweep": cfg.name, "preflight_s": round(preflight_s, 2),
        "steps": report.steps, "check_process_s": round(check_process_s, 2),
        "trial_s": round(trial_s, 2) if trial_s else None,
        "ratio": round(preflight_s / trial_s, 3) if trial_s else None,
        "overrides": overrides, "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
