"""What a nasforge trial costs over a plain PyTorch loop, on one CIFAR-10-sized epoch.

The same network (a `convnet` sample), the same data (CIFAR-10 decoded once to uint8 arrays,
the same seeded split and batch-wise crop+flip), the same optimizer and per-step warm-up/cosine
schedule, one training epoch plus one validation pass, trained twice in one process:

* ``plain``: a hand-written loop (forward, loss, backward, step, scheduler step; then eval);
* ``nasforge``: one trial of a one-trial sweep through `run_sweep`: Optuna study and storage,
  Lightning Trainer, torchmetrics, pruning and NaN-guard callbacks, cost measurement, best
  checkpoint, W&B offline run.

Imports and the data cache are warmed before either is timed; the order is plain, nasforge,
plain, nasforge, ... ; the figure is the median of the pairs' ratios. The trial is timed from Optuna's ask to its
tell (what a sweep pays per trial); the whole one-trial sweep (study creation, W&B summary run)
is reported beside it.

The trial's fixed cost is measured with real timers around its phases (the runner's profiling
hook, `nasforge.platform.engine.phases`, switched on here): ``fixed_s`` is the trial's ask-to-tell
time less its training loop (``fit`` less the cost measurement and checkpoint inside it), and
``fixed_breakdown`` gives the median seconds of each phase (``other``: ask, heartbeat, tell and
whatever no phase covers). Prints one JSON line:
``{"what": "trial_overhead", "value": ratio, "unit": "x", ...}``. Target: ratio <= 1.05.

    .venv/bin/python benchmarks/overhead.py [--data ../shared/data/cifar10-jpeg.zip] [--repeats 2]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time


def plain_epoch(dm, sample, space, lr: float, momentum: float, weight_decay: float, seed: int) -> float:
    import torch
    from torch import nn

    from nasforge.tasks.optim import warmup_cosine
    from nasforge.tasks.image_data import random_crop_flip

    torch.manual_seed(seed)
    net = space.build(sample, dm.input_shape, dm.num_classes)
    decay = [p for p in net.parameters() if p.ndim > 1]
    no_decay = [p for p in net.parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}], lr=lr, momentum=momentum, nesterov=True)
    train = dm.train_dataloader()
    total = len(train)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, total, 0))
    mean = torch.tensor(dm.mean).view(1, -1, 1, 1)
    std = torch.tensor(dm.std).view(1, -1, 1, 1)
    crit = nn.CrossEntropyLoss()
    start = time.perf_counter()
    net.train()
    for x, y in train:
        x = random_crop_flip(x.float().div_(255.0), 4, 0.5)
        x = (x - mean) / std
        loss = crit(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    net.eval()
    correct = n = 0
    with torch.no_grad():
        for x, y in dm.val_dataloader():
            x = (x.float().div_(255.0) - mean) / std
            correct += (net(x).argmax(1) == y).sum().item()
            n += len(y)
    elapsed = time.perf_counter() - start
    print(f"plain: {elapsed:.2f}s, val acc {correct / n:.4f}", file=sys.stderr)
    return elapsed


def nasforge_epoch(cfg, root: str) -> tuple[float, float, dict[str, float]]:
    """(the trial, ask to tell; the whole one-trial sweep, study creation and W&B summary too;
    the trial's phases in seconds)"""
    from nasforge.platform.engine.sweep import run_sweep

    start = time.perf_counter()
    study = run_sweep(cfg, root=root, show_progress=False)
    whole = time.perf_counter() - start
    t = study.trials[-1]
    trial = (t.datetime_complete - t.datetime_start).total_seconds()
    print(f"nasforge: trial {trial:.2f}s, sweep {whole:.2f}s ({t.state.name}, val acc {t.value})", file=sys.stderr)
    return trial, whole, dict(t.user_attrs.get("phases") or {})


def fixed_cost(trial_s: float, phase_s: dict[str, float]) -> tuple[float, dict[str, float]]:
    """(the trial's fixed seconds, its breakdown): everything but the training loop itself."""
    inner = {k: v for k, v in phase_s.items() if k.startswith("fit/")}
    loop = phase_s.get("fit", 0.0) - sum(inner.values())
    parts = {k: v for k, v in phase_s.items() if k != "fit"}
    top = sum(v for k, v in phase_s.items() if "/" not in k)
    parts["other"] = trial_s - top
    return trial_s - loop, parts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.path.join("..", "shared", "data", "cifar10-jpeg.zip"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--tracking", default="offline", choices=("offline", "disabled"))
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads, the same for both (default 1)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if not os.path.exists(args.data):
        print(json.dumps({"what": "trial_overhead", "skipped": f"no CIFAR-10 at {args.data}"}))
        return 0

    from nasforge.platform.engine import phases
    from nasforge.platform.engine.config import parse_sweep
    from nasforge.search_spaces import create_space
    from nasforge.tasks.cifar10 import CIFAR10DataModule

    lr, momentum, wd, seed = 0.05, 0.9, 5e-4, 0
    space_opts = {"stages": 3, "widths": [args.width], "max_depth": 1, "kernels": [3], "max_dropout": 0.0}
    space = create_space("convnet", **space_opts)
    sample = {"convnet/width": args.width, "convnet/stage1/depth": 1, "convnet/stage2/depth": 1,
              "convnet/stage3/depth": 1, "convnet/kernel": 3, "convnet/dropout": 0.0}
    data_path = os.path.abspath(args.data)
    dm = CIFAR10DataModule(path=data_path, val_fraction=0.1, batch_size=args.batch_size, augment=1.0, seed=seed)
    dm.prepare_data()  # decode once (cached), outside both timings
    dm.setup()

    phases.enable()
    root = tempfile.mkdtemp(prefix="nasforge-overhead-")
    times = {"plain": [], "nasforge": [], "sweep": [], "fixed": []}
    breakdowns: list[dict[str, float]] = []
    for i in range(args.repeats):
        times["plain"].append(plain_epoch(dm, sample, space, lr, momentum, wd, seed))
        cfg = parse_sweep({
            "name": f"overhead{i}", "seed": seed,
            "task": {"name": "classification",
                     "data": {"name": "cifar10", "path": data_path, "val_fraction": 0.1},
                     "options": {"batch_size": args.batch_size, "lr": lr, "momentum": momentum,
                                 "weight_decay": wd, "optimizer": "sgd"}},
            "space": [{"name": "convnet", "options": space_opts}],
            "strategy": {"name": "random"}, "budget": {"trials": 1}, "pruner": {"name": "median"},
            "trainer": {"accelerator": "cpu", "devices": 1, "max_epochs": 1, "cpu_threads": args.threads},
            "tracking": {"mode": args.tracking, "project": "nasforge-bench"},
        })
        trial, whole, phase_s = nasforge_epoch(cfg, root)
        times["nasforge"].append(trial)
        times["sweep"].append(whole)
        fixed, parts = fixed_cost(trial, phase_s)
        times["fixed"].append(fixed)
        breakdowns.append(parts)
    plain, nf = statistics.median(times["plain"]), statistics.median(times["nasforge"])
    sweep = statistics.median(times["sweep"])
    # each pair ran back to back, so its ratio shares the machine's load; the median of the
    # pairs' ratios is the figure (the ratio of the medians is reported beside it)
    ratio = statistics.median(n / p for p, n in zip(times["plain"], times["nasforge"]))
    print(json.dumps({
        "what": "trial_overhead", "value": round(ratio, 4), "unit": "x (nasforge trial / plain loop, median of pairs)",
        "ratio_of_medians": round(nf / plain, 4),
        "plain_s": round(plain, 2), "nasforge_s": round(nf, 2), "repeats": args.repeats,
        "whole_sweep_ratio": round(sweep / plain, 4), "pairs": [
            [round(p, 2), round(n, 2)] for p, n in zip(times["plain"], times["nasforge"])],
        "train_images": len(dm.train_set), "val_images": len(dm.val_set), "batch_size": args.batch_size,
        "tracking": args.tracking, "threads": args.threads, "target": 1.05,
        "fixed_s": round(statistics.median(times["fixed"]), 3),
        "fixed_per_trial": [round(f, 3) for f in times["fixed"]],
        "fixed_breakdown": {k: round(statistics.median(b.get(k, 0.0) for b in breakdowns), 3)
                            for k in breakdowns[0]} if breakdowns else {},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
