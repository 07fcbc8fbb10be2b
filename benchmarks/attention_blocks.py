"""Attention systems compared on real data, CPU-sized: one CIFAR-10 ResNet with none / SE / CBAM /
residual attention / a spatial transformer stem, and one ISBI-2012 encoder-decoder with no skip
attention / Attention U-Net gates / PAN's FPA + GAU.

Every network comes from the spaces a sweep searches (`attention`, `encdec`), built from a fixed
sample, and trains as a nasforge trial's network does: the task's LightningModule
(`ClassificationTask`, `SegmentationTask`) with the data module (`CIFAR10DataModule`,
`ISBIDataModule`) in a Lightning Trainer on the CPU, one torch thread. For each variant and seed
(the seed sets the weights, the data split and the batches; the same for every variant) it
records the last epoch's validation accuracy (CIFAR-10) or mIoU (ISBI), and the network's
params and FLOPs (`cost.measure_cost`). It prints one JSON line per variant (mean, sample std
and each seed's value, params, FLOPs, seconds of training) as soon as the variant is done, and a
last line comparing every variant with its part's baseline (none) in the same run.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/attention_blocks.py [--seeds 3]
        [--cifar-train 2000] [--cifar-val 1000] [--cifar-epochs 4] [--width 16]
        [--isbi-epochs 3] [--isbi-repeats 4] [--only cifar10|isbi]

The figures in the papers (residual attention: 3.90 % CIFAR-10 error for Attention-92; PAN:
84.0 % mIoU on VOC 2012) are GPU-scale anchors, not targets for a run of a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# CIFAR-10: the same ResNet ([1, 1, 1, 1] BasicBlocks, CIFAR stem) with one attention per stage.
# Residual attention's mask depth follows the paper's rule (deeper on larger maps: 32, 16, 8, 4 px).
CIFAR_VARIANTS = {
    "none": {"attn": ["none"] * 4},
    "se": {"attn": ["se"] * 4, "reduction": [8] * 4},
    "cbam": {"attn": ["cbam"] * 4, "reduction": [8] * 4},
    "ra": {"attn": ["ra"] * 4, "mask_depth": [3, 2, 1, 1]},
    "stn": {"attn": ["none"] * 4, "stn": True},
}
# ISBI: U-Net encoder (width 8), 4 decoder stages (width 8 at the top), no block attention.
ISBI_VARIANTS = {
    "none": {"gate": "none", "bottleneck": "none"},
    "ag": {"gate": "ag", "bottleneck": "none"},
    "fpa+gau": {"gate": "gau", "bottleneck": "fpa"},
}


def cifar_sample(v: dict) -> dict:
    s = {"stem/stn": bool(v.get("stn", False))}
    for i in range(4):
        p = f"stage{i + 1}"
        s[f"{p}/attn"] = v["attn"][i]
        if "reduction" in v:
            s[f"{p}/reduction"] = v["reduction"][i]
        if "mask_depth" in v:
            s[f"{p}/mask_depth"] = v["mask_depth"][i]
    return s


def isbi_sample(v: dict) -> dict:
    s = {
        "encdec/encoder": "unet",
        "encdec/unet/width": 8,
        "encdec/bottleneck": v["bottleneck"],
        "encdec/decoder/width": 8,
    }
    for j in range(1, 5):
        s[f"encdec/stage{j}/gate"] = v["gate"]
        s[f"encdec/stage{j}/attn"] = "none"
    return s


def _trainer(epochs: int):
    from nasforge.platform.engine.assembly import create_trainer

    return create_trainer(max_epochs=epochs)


def run_cifar(name: str, seed: int, args, data_path: str) -> dict:
    import lightning as L

    from nasforge.platform.engine.cost import measure_cost
    from nasforge.search_spaces import create_space
    from nasforge.tasks.cifar10 import CIFAR10DataModule
    from nasforge.tasks.classification import ClassificationTask

    space = create_space(
        "attention",
        layers=[1, 1, 1, 1],
        width=args.width,
        choices=["none", "se", "cbam", "ra"],
        stn=[False, True],
    )
    sample = cifar_sample(CIFAR_VARIANTS[name])
    L.seed_everything(seed, verbose=False)
    dm = CIFAR10DataModule(
        path=data_path, subset=args.cifar_train, val_subset=args.cifar_val, batch_size=64, seed=seed
    )
    net = space.build(sample, dm.input_shape, dm.num_classes)
    cost = measure_cost(net, dm.input_shape, latency_runs=1, warmup_runs=0)
    task = ClassificationTask(
        net, dm.num_classes, optimizer="sgd", lr=0.05, weight_decay=5e-4, warmup_epochs=0.5
    )
    trainer = _trainer(args.cifar_epochs)
    start = time.perf_counter()
    trainer.fit(task, datamodule=dm)
    return {
        "key": space.key(sample),
        "score": float(trainer.callback_metrics["val/acc"]),
        "params": cost["cost/params"],
        "flops": cost["cost/flops"],
        "seconds": time.perf_counter() - start,
    }


def run_isbi(name: str, seed: int, args, data_path: str) -> dict:
    import lightning as L

    from nasforge.platform.engine.cost import measure_cost
    from nasforge.search_spaces import create_space
    from nasforge.tasks.isbi import ISBIDataModule
    from nasforge.tasks.segmentation import SegmentationTask

    space = create_space(
        "encdec",
        encoders=["unet"],
        unet_widths=[8],
        widths=[8],
        gates=["none", "ag", "gau"],
        attns=["none"],
        bottlenecks=["none", "fpa"],
    )
    sample = isbi_sample(ISBI_VARIANTS[name])
    L.seed_everything(seed, verbose=False)
    dm = ISBIDataModule(
        path=data_path, batch_size=4, crop_size=128, repeats=args.isbi_repeats, seed=seed
    )
    net = space.build(sample, dm.input_shape, dm.num_classes)
    cost = measure_cost(
        net, (1, 128, 128), latency_runs=1, warmup_runs=0
    )  # FLOPs of a training crop
    task = SegmentationTask(
        net, dm.num_classes, lr=3e-3, dice_weight=0.5, warmup_epochs=0.2, overlay_images=0
    )
    trainer = _trainer(args.isbi_epochs)
    start = time.perf_counter()
    trainer.fit(task, datamodule=dm)
    return {
        "key": name,
        "score": float(trainer.callback_metrics["val/miou"]),
        "params": cost["cost/params"],
        "flops": cost["cost/flops"],
        "seconds": time.perf_counter() - start,
    }


def summarise(part: str, name: str, runs: list[dict], metric: str, setup: dict) -> dict:
    scores = [r["score"] for r in runs]
    return {
        "what": f"attention_blocks/{part}",
        "variant": name,
        "key": runs[0]["key"],
        "metric": metric,
        "mean": round(statistics.mean(scores), 4),
        "std": round(statistics.stdev(scores), 4) if len(scores) > 1 else 0.0,
        "per_seed": [round(s, 4) for s in scores],
        "params": runs[0]["params"],
        "mflops": round(runs[0]["flops"] / 1e6, 2),
        "train_s": round(sum(r["seconds"] for r in runs), 1),
        **setup,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument(
        "--cifar-train", type=int, default=2000, help="training images (a seeded subset)"
    )
    ap.add_argument(
        "--cifar-val", type=int, default=1000, help="validation images (a seeded subset)"
    )
    ap.add_argument("--cifar-epochs", type=int, default=4)
    ap.add_argument(
        "--width", type=int, default=16, help="ResNet stage-1 width (doubled per stage)"
    )
    ap.add_argument("--isbi-epochs", type=int, default=3)
    ap.add_argument("--isbi-repeats", type=int, default=4, help="128x128 crops per image per epoch")
    ap.add_argument("--only", choices=["cifar10", "isbi"])
    ap.add_argument(
        "--data",
        default=os.environ.get("NASFORGE_DATA") or os.path.join(REPO, "..", "shared", "data"),
    )
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    cifar_setup = {"train_images": args.cifar_train, "val_images": args.cifar_val,
                   "epochs": args.cifar_epochs,
                   "network": f"ResNet [1,1,1,1] width {args.width}, CIFAR stem"}
    isbi_setup = {"train_images": 24, "val_images": 6, "epochs": args.isbi_epochs,
                  "crops_per_image": args.isbi_repeats,
                  "network": "U-Net encoder width 8, decoder width 8, 4 stages"}
    # (part, variants, runner, data file, metric, setup recorded with each line)
    parts = [("cifar10", CIFAR_VARIANTS, run_cifar, "cifar10-jpeg.zip", "val/acc", cifar_setup),
             ("isbi", ISBI_VARIANTS, run_isbi, "isbi2012-membrane.zip", "val/miou", isbi_setup)]
    parts = [p for p in parts if args.only in (None, p[0])]
    comparison = {}
    for part, variants, run, data_file, metric, setup in parts:
        path = os.path.join(args.data, data_file)
        if not os.path.exists(path):
            print(
                json.dumps({"what": f"attention_blocks/{part}", "error": f"data not found: {path}"})
            )
            return 1
        rows = {}
        for name in variants:
            runs = [run(name, seed, args, path) for seed in range(args.seeds)]
            rows[name] = summarise(part, name, runs, metric, {**setup, "seeds": args.seeds})
            print(json.dumps(rows[name]), flush=True)
        base = rows["none"]
        comparison[part] = {
            n: {
                "delta_vs_none": round(r["mean"] - base["mean"], 4),
                "params_x": round(r["params"] / base["params"], 3),
                "flops_x": round(r["mflops"] / base["mflops"], 3),
            }
            for n, r in rows.items()
        }
    print(
        json.dumps(
            {"what": "attention_blocks/summary", "seeds": args.seeds, "threads": 1, **comparison}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
