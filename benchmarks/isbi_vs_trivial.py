"""An ISBI-2012 membrane sweep against the trivial all-cell prediction, on the same split.

Runs ``sweeps/isbi_unet.yaml`` (or reads a sweep already run under ``--root`` with
``--reuse``) through `run_sweep`, then scores the trivial prediction ("cell" everywhere) on the
very validation images the trials were scored on (the seeded split of the sweep's
``val_fraction`` and ``seed``). Cells cover ~77 % of those pixels, so the trivial cell IoU is
~0.77 and its mIoU (membrane IoU 0) ~0.38: a segmentation model must beat both to have learned
anything. Prints one JSON line: ``{"what": "isbi_cell_iou_vs_trivial", "value": best - trivial,
...}`` with the best trial's (by ``val/miou``) metrics and each trial's.

    .venv/bin/python benchmarks/isbi_vs_trivial.py [--root /tmp/segruns] [--reuse]
"""
from __future__ import annotations

import argparse
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def trivial_scores(val_fraction: float, seed: int, path: str | None) -> dict:
    from nasforge.tasks.isbi import ISBIDataModule

    dm = ISBIDataModule(path=path, val_fraction=val_fraction, seed=seed)
    dm.setup("fit")
    y = dm.val_set.masks.numpy()  # (N, 512, 512), 0 membrane / 1 cell
    cell = float((y == 1).mean())
    # predicting cell everywhere: IoU(cell) = cell pixels / all pixels; IoU(membrane) = 0
    return {"val_images": int(len(y)), "cell_iou": cell, "membrane_iou": 0.0, "miou": cell / 2,
            "pixel_acc": cell}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", default=os.path.join(REPO, "sweeps", "isbi_unet.yaml"))
    ap.add_argument("--root", default="runs")
    ap.add_argument("--reuse", action="store_true", help="read a finished sweep instead of running it")
    args = ap.parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "offline")

    from nasforge.platform.engine.config import load_sweep
    from nasforge.platform.engine.storage import load_study
    from nasforge.platform.engine.sweep import run_sweep

    cfg = load_sweep(args.sweep)
    study = load_study(cfg.name, args.root) if args.reuse else run_sweep(cfg, root=args.root, show_progress=False)
    trials = []
    for t in study.trials:
        m = t.user_attrs.get("metrics") or {}
        if "val/miou" in m:
            trials.append({"trial": t.number, "state": t.state.name,
                           "encoder": t.params.get("encdec/encoder"),
                           **{k: round(float(m[k]), 4) for k in ("val/miou", "val/iou/cell", "val/iou/membrane",
                                                                 "val/pixel_acc") if k in m},
                           "fit_seconds": t.user_attrs.get("fit_seconds")})
    if not trials:
        print(json.dumps({"what": "isbi_cell_iou_vs_trivial", "error": "no trial reported val/miou"}))
        return 1
    best = max(trials, key=lambda r: r["val/miou"])
    triv = trivial_scores(cfg.task.data.val_fraction, cfg.seed, cfg.task.data.path)
    print(json.dumps({
        "what": "isbi_cell_iou_vs_trivial", "value": round(best["val/iou/cell"] - triv["cell_iou"], 4),
        "unit": "IoU", "best": best, "trivial": {k: round(v, 4) if isinstance(v, float) else v
                                                for k, v in triv.items()},
        "trials": trials, "epochs": cfg.trainer.max_epochs, "sweep": cfg.name,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
