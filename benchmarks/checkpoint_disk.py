"""Disk a sweep's checkpoints take per trial: trial folders plus the dashboard's artifacts.

Runs a real sweep (default: ``sweeps/cifar10_attention.yaml``, a CIFAR ResNet-18-style network
with attention modules, cut to a few CPU batches per trial: a checkpoint's size does not depend
on how long it trained) and sums, over the run folder, the checkpoint files in ``trials/`` and
the files in ``artifacts/``, counting a hard-linked file once (as ``du`` does). Prints one JSON
line: ``{"what": "checkpoint_disk", "bytes_per_trial": ..., ...}``. Run it on two commits to
compare (the numbers and commands are in ``benchmarks/README.md``).

    .venv/bin/python benchmarks/checkpoint_disk.py [--sweep sweeps/cifar10_attention.yaml] [--trials 6]
        [--set checkpoints.keep_top=3 ...]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile


def tree_bytes(folder: str, seen: set[tuple[int, int]], suffix: str = "") -> tuple[int, int]:
    """(bytes, files) under ``folder`` ending in ``suffix``, each inode counted once across calls."""
    total = files = 0
    for dirpath, _, names in os.walk(folder):
        for name in names:
            if not name.endswith(suffix):
                continue
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
            files += 1
    return total, files


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", default=os.path.join("sweeps", "cifar10_attention.yaml"))
    ap.add_argument("--trials", type=int, default=6)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra sweep-file overrides (YAML values)")
    args = ap.parse_args(argv)
    import torch
    import yaml

    from nasforge.platform.engine.config import load_sweep
    from nasforge.platform.engine.sweep import run_sweep

    torch.set_num_threads(1)
    overrides = {"budget.trials": args.trials, "trainer.max_epochs": 1, "trainer.limit_train_batches": 2,
                 "trainer.limit_val_batches": 1, "trainer.accelerator": "cpu", "trainer.cpu_threads": 1,
                 "tracking.mode": "disabled"}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    cfg = load_sweep(args.sweep, overrides)
    root = tempfile.mkdtemp(prefix="nasforge-ckpt-disk-")
    study = run_sweep(cfg, root=root, show_progress=False)
    run = os.path.join(root, cfg.name)
    seen: set[tuple[int, int]] = set()
    ckpt_bytes, ckpt_files = tree_bytes(os.path.join(run, "trials"), seen, ".ckpt")
    art_bytes, art_files = tree_bytes(os.path.join(run, "artifacts"), seen)  # links to the above: not again
    states = [t.state.name for t in study.trials]
    n = len(states)
    print(json.dumps({
        "what": "checkpoint_disk", "sweep": cfg.name, "trials": n,
        "states": {s: states.count(s) for s in sorted(set(states))},
        "bytes_per_trial": round((ckpt_bytes + art_bytes) / max(n, 1)),
        "checkpoint_files": ckpt_files, "checkpoint_bytes": ckpt_bytes,
        "artifact_files_not_linked": art_files, "artifact_bytes_not_linked": art_bytes,
        "overrides": overrides,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
