"""CR-NAS on detection: the best reallocation a small sweep finds against the default allocation.

1. Runs ``sweeps/pennfudan_crnas.yaml`` (8 BasicBlocks over 4 stages, a dilation per block, FCOS
   on Penn-Fudan) through `run_sweep` with ``--trials`` trials of ``--search-epochs`` epochs, and
   takes the trial best by ``val/map``.
2. Retrains, with the sweep's own recipe (the platform's `fit_trial`: same task options, data,
   trainer and seeding; W&B off) for ``--epochs`` epochs and every seed in ``--seeds``:
   * ``searched``  - the best sample (its stage depths and per-block dilations);
   * ``default``   - the default stage allocation for the same 8 blocks, dilation 1:
     2-2-2-2, which is ResNet-18's allocation (for 8 BasicBlocks the two are the same network,
     so one arm answers both comparisons);
   * ``searched_depths_d1`` - the searched depths with dilation 1 everywhere, which separates the
     stage reallocation from the spatial (dilation) one.
3. Prints one JSON line per arm (mAP, mAP@50, mAP@75 per seed with mean and standard deviation,
   FLOPs and parameters of the whole detector at the sweep's image size) and one per comparison
   (the per-seed paired difference of mAP against ``default``, its mean and standard deviation).

CR-NAS's anchor is +1.9 COCO AP for ResNet-50 at equal computation (Faster R-CNN, 24 epochs on
118k images, ImageNet-pretrained); this benchmark trains from scratch on 136 images on a CPU.

    nice -n 10 .venv/bin/python benchmarks/crnas_detection.py --trials 6 --search-epochs 2 \
        --epochs 4 --seeds 0 1 2 --arms searched default

(about 25 minutes on 2 shared CPU cores; the numbers and the exact command: benchmarks/README.md)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METRICS = ("val/map", "val/map_50", "val/map_75")
ARMS = ("searched", "default", "searched_depths_d1")


def run_search(args, root: str):
    """(config, best trial) of the sweep file cut to the benchmark's budget."""
    from nasforge.platform.engine.config import load_sweep
    from nasforge.platform.engine.sweep import run_sweep

    cfg = load_sweep(
        args.sweep,
        {
            "name": "crnas_search",
            "budget.trials": args.trials,
            "trainer.max_epochs": args.search_epochs,
            "tracking.mode": "disabled",
        },
    )
    study = run_sweep(cfg, root=root, show_progress=False)
    return cfg, study.best_trial


def arm_samples(space, best: dict) -> dict[str, dict]:
    """The backbones compared: searched, default (2-2-2-2 = ResNet-18's) and the searched depths
    at dilation 1."""
    from nasforge.search_spaces.reallocation import DEPTHS

    def dilation_one(depths: str) -> dict:
        sample = {DEPTHS: depths}
        for dim in space.dims:  # the dilation of every block the depths create
            if dim.label.endswith("/dilation") and dim.is_active(sample):
                sample[dim.label] = 1
        return space.validate(sample)

    return {
        "searched": best,
        "default": dilation_one("2-2-2-2"),
        "searched_depths_d1": dilation_one(best[DEPTHS]),
    }


def train_arm(cfg, root: str, sample: dict, seed: int, name: str) -> dict:
    """Train ``sample`` with the sweep's recipe and seed ``seed``; the metrics of its best epoch."""
    import optuna

    from nasforge.platform.engine.trial import TrialContext
    from nasforge.platform.engine.trial_runner import fit_trial

    cfg.seed = seed
    cfg.name = f"crnas_{name}_s{seed}"
    ctx = TrialContext.create(cfg, os.path.join(root, cfg.name))
    trial = optuna.trial.FixedTrial(dict(sample))  # trial number 0: fit_trial seeds with cfg.seed
    start = time.perf_counter()
    fit_trial(ctx, trial, ctx.space.validate(sample), ctx.trial_dir(0))
    metrics = trial.user_attrs["metrics"]
    return {
        **{k: metrics[k] for k in (*METRICS, "cost/flops", "cost/params")},
        "seconds": round(time.perf_counter() - start, 1),
    }


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", default=os.path.join(REPO, "sweeps", "pennfudan_crnas.yaml"))
    ap.add_argument("--trials", type=int, default=6)
    ap.add_argument("--search-epochs", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument(
        "--arms",
        nargs="+",
        default=list(ARMS),
        choices=ARMS,
        help="which backbones to retrain (searched and default always)",
    )
    ap.add_argument(
        "--root",
        default=None,
        help="run folders (default: a temporary folder); an existing "
        "search under it is resumed or, when finished, reused",
    )
    args = ap.parse_args(argv)
    if len(args.seeds) < 3:
        print("crnas_detection: give at least 3 seeds (--seeds) for a spread", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(1)
    root = args.root or tempfile.mkdtemp(prefix="crnas-")
    t0 = time.perf_counter()
    cfg, best = run_search(args, root)
    from nasforge.platform.engine.trial import TrialContext

    space = TrialContext.create(cfg, os.path.join(root, "crnas_search")).space
    best_sample = space.validate(best.user_attrs["sample"])
    arms = {
        k: v
        for k, v in arm_samples(space, best_sample).items()
        if k in {"searched", "default", *args.arms}
    }
    print(
        json.dumps(
            {
                "what": "crnas_detection_search",
                "trials": args.trials,
                "epochs": args.search_epochs,
                "best_trial": best.number,
                "best_val_map": best.values[0],
                "best_key": space.key(best_sample),
                "seconds": round(time.perf_counter() - t0, 1),
            }
        ),
        flush=True,
    )

    cfg.trainer.max_epochs = args.epochs
    results: dict[str, list[dict]] = {}
    for name, sample in arms.items():
        same = [n for n in results if space.key(arms[n]) == space.key(sample)]
        # the same network trains to the same numbers (seeded, deterministic): not trained twice
        runs = (
            results[same[0]]
            if same
            else [train_arm(cfg, root, sample, seed, name) for seed in args.seeds]
        )
        results[name] = runs
        line = {
            "what": "crnas_detection_arm",
            "arm": name,
            "key": space.key(sample),
            "epochs": args.epochs,
            "seeds": args.seeds,
            "cost/flops": runs[0]["cost/flops"],
            "cost/params": runs[0]["cost/params"],
            "train_seconds": [r["seconds"] for r in runs],
        }
        for m in METRICS:
            values = [r[m] for r in runs]
            line[m] = values
            line[f"{m}_mean"], line[f"{m}_std"] = mean_std(values)
        print(json.dumps(line), flush=True)
    for name in [
        a for a in ("searched", "searched_depths_d1") if a in results
    ]:  # zeros when one network
        diffs = [a["val/map"] - b["val/map"] for a, b in zip(results[name], results["default"])]
        mean, std = mean_std(diffs)
        print(
            json.dumps(
                {
                    "what": "crnas_detection_diff",
                    "compare": f"{name} - default",
                    "metric": "val/map",
                    "per_seed": diffs,
                    "mean": mean,
                    "std": std,
                    "flops_ratio": results[name][0]["cost/flops"]
                    / results["default"][0]["cost/flops"],
                    "total_seconds": round(time.perf_counter() - t0, 1),
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
