"""Adaptive inference on CIFAR-10: a static residual model against its adaptive versions
(BlockDrop policy, ConvNet-AIG gates) at several cost weights, in one run.

1. *static*: a CIFAR ResNet (timm blocks, ``--layers``, ``--width``) trained ``--epochs`` epochs
   on ``--subset`` real training images (crop + flip), as a nasforge classification task, with
   stochastic depth (``--drop-path``: the last block's drop rate, linear in depth; Huang et al.
   2016) so that it tolerates skipped blocks; measured, as stochastic depth is, with every block;
2. *static+ft*: the control for the extra training the adaptive versions get - the static model
   fine-tuned by the very same phase (same epochs, optimizer and learning rate) with every block
   kept (a policy forced open), then measured without any decider;
3. for each kind and cost weight: `train_adaptive` on a copy of the static model (the decider
   for ``--decide-epochs`` with the backbone frozen, then the backbone for ``--finetune-epochs``
   with the decisions fixed).

Every model is measured on the same ``--val`` validation images (the seeded split) by
`adaptive.measure`: accuracy, FLOPs per image counted for the blocks each image ran (decider
included; mean and 10/50/90 % quantiles) and median wall time per batch of 128 with dropped blocks
really skipped (one thread); then every model's latency again on one batch, the models
interleaved round by round (a shared machine's load shifts within minutes, so this is the
comparison to read). Accuracy changes are paired (the same images for both models) and carry the
standard error of the mean per-image difference (``acc_change_se_pts``). One JSON line per
model, a latency line, then a summary line comparing the best adaptive version inside the target
(>= 20 % fewer mean FLOPs at <= 0.5 points lower accuracy) with both static references; the
accuracy-vs-FLOPs curve goes to ``--plot``.

    nice -n 10 .venv/bin/python benchmarks/adaptive_inference.py
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v]


def _train_static(net, dm, epochs: int, lr: float) -> float:
    import lightning as L

    from nasforge.platform.engine.assembly import create_trainer
    from nasforge.tasks.classification import ClassificationTask

    start = time.perf_counter()
    L.seed_everything(0, verbose=False)
    task = ClassificationTask(net, 10, lr=lr, warmup_epochs=0.5)
    create_trainer(max_epochs=epochs, limit_val_batches=0).fit(task, datamodule=dm)
    return time.perf_counter() - start


def _static_weights(net, dm, args) -> float:
    """Train the static model, or load it from ``--base`` when that file holds one trained with
    the same settings (decider settings can then be compared on one base without retraining it);
    returns the training seconds (of the run that trained it)."""
    import torch

    if not args.base:
        return _train_static(net, dm, args.epochs, args.lr)
    settings = {k: getattr(args, k) for k in ("data", "subset", "val", "layers", "width", "epochs", "drop_path", "lr")}
    if os.path.exists(args.base):
        saved = torch.load(args.base, map_location="cpu")
        if saved["settings"] != settings:
            raise SystemExit(f"--base {args.base}: trained with {saved['settings']}, not {settings}")
        net.load_state_dict(saved["state_dict"])
        return saved["train_s"]
    secs = _train_static(net, dm, args.epochs, args.lr)
    torch.save({"settings": settings, "state_dict": net.state_dict(), "train_s": secs}, args.base)
    return secs


def _paired_se_pts(m: dict, ref: dict) -> float:
    """Standard error (points) of the mean per-image accuracy difference of ``m`` and ``ref``,
    measured on the same images in the same order."""
    import statistics

    d = [int(a) - int(b) for a, b in zip(m["correct"], ref["correct"], strict=True)]
    return 100 * statistics.stdev(d) / len(d) ** 0.5


def _line(name: str, m: dict, ref: dict | None, test: dict | None = None, test_ref: dict | None = None,
          **extra) -> dict:
    row = {"what": "adaptive_inference", "model": name, **extra,
           "val_acc": round(m["val/acc"], 4), "mflops_mean": round(m["cost/flops_mean"] / 1e6, 3),
           **{f"mflops_p{q}": round(m[f"cost/flops_p{q}"] / 1e6, 3) for q in (10, 50, 90)},
           "latency_ms_per_batch": round(m["cost/latency_ms_per_batch"], 1)}
    if "blocks_mean" in m:
        row["blocks_run"] = round(m["blocks_mean"], 3)
    if ref is not None:
        row["flops_saving_vs_static"] = round(1 - m["cost/flops_mean"] / ref["cost/flops_mean"], 4)
        row["acc_change_pts_vs_static"] = round(100 * (m["val/acc"] - ref["val/acc"]), 2)
        row["acc_change_se_pts"] = round(_paired_se_pts(m, ref), 2)
    if test is not None:  # the held-out images no choice of this run looked at
        row["test_acc"] = round(test["val/acc"], 4)
        row["test_mflops_mean"] = round(test["cost/flops_mean"] / 1e6, 3)
        if test_ref is not None:
            row["test_flops_saving_vs_static"] = round(1 - test["cost/flops_mean"] / test_ref["cost/flops_mean"], 4)
            row["test_acc_change_pts_vs_static"] = round(100 * (test["val/acc"] - test_ref["val/acc"]), 2)
            row["test_acc_change_se_pts"] = round(_paired_se_pts(test, test_ref), 2)
    print(json.dumps(row), flush=True)
    return row


def _plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for kind, marker in (("policy", "o-"), ("gates", "s-")):
        pts = sorted((r["mflops_mean"], 100 * r["val_acc"], r["cost_weight"]) for r in rows if r.get("kind") == kind)
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker, label=f"adaptive: {kind}")
            for x, y, w in pts:
                ax.annotate(f"λ={w:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    for r, marker in zip([r for r in rows if r["model"].startswith("static")], ("k*", "kX"), strict=False):
        ax.plot([r["mflops_mean"]], [100 * r["val_acc"]], marker, markersize=10, label=r["model"])
    static = next(r for r in rows if r["model"] == "static")
    ax.axvline(0.8 * static["mflops_mean"], color="grey", ls=":", lw=1, label="target: -20 % FLOPs, -0.5 pts")
    ax.axhline(100 * static["val_acc"] - 0.5, color="grey", ls=":", lw=1)
    ax.set_xlabel("mean FLOPs per image (M), blocks actually run")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("CIFAR-10: static ResNet vs per-input block skipping")
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data", "cifar10-jpeg.zip"))
    ap.add_argument("--subset", type=int, default=10000, help="training images")
    ap.add_argument("--val", type=int, default=5000, help="validation images")
    ap.add_argument("--test", type=int, default=10000, help="CIFAR-10 test images also measured (0: none)")
    ap.add_argument("--layers", default="2,2,2,2")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=8, help="epochs of the static model")
    ap.add_argument("--drop-path", type=float, default=0.5,
                    help="stochastic depth of the static model: drop rate of the last block (0: off)")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--kinds", default="policy,gates")
    ap.add_argument("--policy-weights", type=_floats, default=_floats("0.25,0.4,0.6"))
    ap.add_argument("--gate-weights", type=_floats, default=_floats("0.1,0.15"))
    ap.add_argument("--decide-epochs", type=int, default=2)
    ap.add_argument("--finetune-epochs", type=int, default=1)
    ap.add_argument("--decider-lr", type=float, default=0.005, help="Adam learning rate of policy and gates")
    ap.add_argument("--latency-rounds", type=int, default=7)
    ap.add_argument("--base", help="a file for the static model's weights: loaded when it holds a model "
                                   "trained with the same settings, else trained and saved there")
    ap.add_argument("--plot", default=os.path.join(REPO, "benchmarks", "results", "adaptive_inference.png"))
    args = ap.parse_args(argv)

    import torch

    from nasforge.platform.engine.adaptive_cost import measure
    from nasforge.platform.registry.adaptive import AdaptiveOptions, train_adaptive
    from nasforge.platform.engine.trial import quiet_libraries
    from nasforge.search_spaces.resnet import build_resnet
    from nasforge.tasks.cifar10 import CIFAR10DataModule

    quiet_libraries()
    torch.set_num_threads(1)
    dm = CIFAR10DataModule(path=args.data, subset=args.subset, val_subset=args.val, batch_size=128,
                           seed=0, augment=1.0)
    dm.prepare_data()
    dm.setup("fit")
    layers = [int(v) for v in args.layers.split(",")]
    static = build_resnet(layers, args.width, (3, 32, 32), 10, drop_path=args.drop_path)
    secs = _static_weights(static, dm, args)
    ref = measure(static.eval(), dm)
    if args.test:  # every k-th test image: the test set is stored class by class
        from torch.utils.data import TensorDataset

        step = max(1, len(dm.test_set) // args.test)
        dm.test_set = TensorDataset(*[t[::step][:args.test] for t in dm.test_set.tensors])
    measure_test = (lambda m: measure(m, dm, split="test")) if args.test else (lambda m: None)
    test_ref = measure_test(static)
    rows = [_line("static", ref, None, test_ref, epochs=args.epochs, drop_path=args.drop_path,
                  train_s=round(secs, 1))]
    models = {"static": static}

    # the control: the same fine-tuning phase with every block kept
    start = time.perf_counter()
    ctrl = AdaptiveOptions(kind="policy", decide_epochs=0, finetune_epochs=args.finetune_epochs)
    forced = _forced_open(copy.deepcopy(static), ctrl)
    ctrl_net = train_adaptive(forced, dm, ctrl)
    rows.append(_line("static+ft", measure(ctrl_net.backbone.eval(), dm), ref,
                      measure_test(ctrl_net.backbone), test_ref, epochs=args.epochs + args.finetune_epochs,
                      train_s=round(time.perf_counter() - start, 1)))
    weights = {"policy": args.policy_weights, "gates": args.gate_weights}
    for kind in args.kinds.split(","):
        for w in weights[kind]:
            start = time.perf_counter()
            o = AdaptiveOptions(kind=kind, cost_weight=w, decide_epochs=args.decide_epochs,
                                finetune_epochs=args.finetune_epochs, lr=args.decider_lr)
            net = train_adaptive(copy.deepcopy(static), dm, o)
            rows.append(_line(f"{kind} λ={w:g}", measure(net, dm), ref, measure_test(net), test_ref,
                              kind=kind, cost_weight=w,
                              train_s=round(time.perf_counter() - start, 1)))
            models[rows[-1]["model"]] = net
    lat = _interleaved_latency(models, dm, args.latency_rounds)
    _plot(rows, args.plot)
    adaptive = [r for r in rows if "kind" in r]
    ft = rows[1]
    close = [r for r in adaptive if r["acc_change_pts_vs_static"] >= -0.5]
    cheap = [r for r in adaptive if r["flops_saving_vs_static"] >= 0.2]
    inside = [r for r in close if r in cheap]
    summary = {"what": "adaptive_inference_summary",
               "target": ">= 20% fewer mean FLOPs at <= 0.5 pts lower val acc than static, one run",
               "target_met": bool(inside), "inside_target": [r["model"] for r in inside]}
    for key, pool, score in (("most_saving_within_0.5pts", close, "flops_saving_vs_static"),
                             ("most_accurate_at_20pct_saving", cheap, "val_acc")):
        if pool:
            r = max(pool, key=lambda r: r[score])
            summary[key] = {"model": r["model"], "flops_saving": r["flops_saving_vs_static"],
                            "acc_change_pts": r["acc_change_pts_vs_static"],
                            "acc_change_se_pts": r["acc_change_se_pts"],
                            "acc_change_pts_vs_static_ft": round(100 * (r["val_acc"] - ft["val_acc"]), 2),
                            "test_flops_saving": r.get("test_flops_saving_vs_static"),
                            "test_acc_change_pts": r.get("test_acc_change_pts_vs_static"),
                            "test_acc_change_se_pts": r.get("test_acc_change_se_pts"),
                            "latency_vs_static": lat[r["model"]]}
    summary.update(static_acc=rows[0]["val_acc"], static_ft_acc=ft["val_acc"], static_test_acc=rows[0].get("test_acc"),
                   static_mflops=rows[0]["mflops_mean"], val_images=args.val, test_images=args.test,
                   train_images=args.subset, epochs=args.epochs, drop_path=args.drop_path,
                   plot=os.path.relpath(args.plot, REPO))
    print(json.dumps(summary), flush=True)
    return 0


def _interleaved_latency(models: dict, dm, rounds: int) -> dict[str, float]:
    """Wall time of one forward of the first validation batch (256 images: the eval batch size), every model once per
    round, models interleaved so that a shared machine's load falls on all of them alike; prints
    the medians and returns each model's median / the static model's."""
    import statistics

    import torch

    x, _ = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.no_grad():
        for _ in range(rounds + 1):  # the first round warms up and is dropped
            for name, m in models.items():
                start = time.perf_counter()
                m.eval()(x)
                times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(t[1:]) * 1000 for name, t in times.items()}
    ratio = {name: round(v / med["static"], 3) for name, v in med.items()}
    print(json.dumps({"what": "adaptive_inference_latency", "batch": len(x), "rounds": rounds,
                      "median_ms": {k: round(v, 1) for k, v in med.items()}, "vs_static": ratio}), flush=True)
    return ratio


def _forced_open(backbone, o):
    """An adaptive network whose policy keeps every block for every input (bias +100)."""
    import torch

    from nasforge.platform.registry.adaptive import wrap

    net = wrap(backbone, o.network_options())
    with torch.no_grad():
        net.policy.fc.weight.zero_()
        net.policy.fc.bias.fill_(100.0)
    return net


if __name__ == "__main__":
    raise SystemExit(main())
