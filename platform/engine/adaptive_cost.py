"""What an adaptive network costs, measured as it runs: accuracy, FLOPs per input and latency.

`measure(model, datamodule)` runs a network over a data module's validation (or test) batches as
at inference and returns its accuracy; the FLOPs of every input - for an `AdaptiveResNet`
(``search_spaces.gated``) counted for the blocks that input actually ran, from the network's
FlopCounterMode cost table; for a static network `cost.measure_cost`'s count - reported as mean,
quantiles and a histogram; whether each input was classified correctly (``correct``, in loader
order, so two models measured on the same data are compared image by image); and the median
wall time per batch with dropped blocks really skipped. `remeasure` does it over a registered
version's own split and batch limit (what `registry evaluate` re-checks for an adaptive version).
"""
from __future__ import annotations

import statistics
import time
from typing import Any

QUANTILES = (0.1, 0.5, 0.9)


def _limit(n_batches: int, limit) -> int:
    """Lightning's reading of ``limit_*_batches``: an int is a count, a float a fraction."""
    if limit is None:
        return n_batches
    if isinstance(limit, float):
        return int(n_batches * limit)
    return min(n_batches, int(limit))


def measure(model, datamodule, limit_batches=None, static_flops: int | None = None,
            split: str = "val") -> dict[str, Any]:
    """Accuracy, per-input FLOPs and per-batch latency of ``model`` over the data module's
    validation (or, with ``split="test"``, test) batches, preprocessed as in validation (eval
    mode, no gradients, CPU). For an
    `AdaptiveResNet` the FLOPs of each input are those of the blocks it ran; for a static network
    every input costs ``static_flops`` (measured when not given)."""
    import torch

    from nasforge.search_spaces.gated import AdaptiveResNet

    from nasforge.platform.engine.cost import measure_cost

    input_shape = tuple(int(s) for s in datamodule.input_shape)
    if split not in ("val", "test"):
        raise ValueError(f"split must be val or test, got {split!r}")
    loader = datamodule.val_dataloader() if split == "val" else datamodule.test_dataloader()
    adaptive = isinstance(model, AdaptiveResNet)
    if adaptive:
        table = model.cost_table(input_shape)
    elif static_flops is None:
        static_flops = measure_cost(model, input_shape, latency_runs=1, warmup_runs=0)["cost/flops"]
    model.eval()
    n = _limit(len(loader), limit_batches)
    correct, flops, kept, times = [], [], [], []
    with torch.no_grad():
        for i, batch in enumerate(loader):
            if i >= n:
                break
            x, y = datamodule.on_after_batch_transfer(batch, 0)  # uint8 -> normalised float
            start = time.perf_counter()
            logits = model(x)
            times.append(time.perf_counter() - start)
            correct += (logits.argmax(1) == y).tolist()
            if adaptive:
                flops += table.per_input(model.last_keep).tolist()
                kept += model.last_keep.float().mean(1).tolist()
            else:
                flops += [float(static_flops)] * len(y)
    if not flops:
        raise ValueError("measure: the loader gave no batch")
    qs = statistics.quantiles(flops, n=10) if len(flops) > 1 else [flops[0]] * 9
    counts, edges = torch.histogram(torch.tensor(flops, dtype=torch.float64), bins=10)
    out = {
        "val/acc": sum(correct) / len(flops),
        "cost/flops_mean": statistics.fmean(flops),
        **{f"cost/flops_p{int(q * 100)}": qs[int(q * 10) - 1] for q in QUANTILES},
        "cost/flops_hist": {"counts": [int(c) for c in counts], "edges": [float(e) for e in edges]},
        "cost/latency_ms_per_batch": statistics.median(times) * 1000.0,
        "images": len(flops),
        "correct": correct,
    }
    if adaptive:
        out["blocks_mean"] = statistics.fmean(kept)
        out["cost/flops_static"] = table.static
    return out


def remeasure(model, datamodule, meta: dict[str, Any]) -> dict[str, Any]:
    """`measure` over a registered version's own validation split and batch limit."""
    datamodule.prepare_data()
    datamodule.setup("validate")
    m = measure(model, datamodule, limit_batches=meta["trainer"].get("limit_val_batches"))
    return {k: v for k, v in m.items() if k not in ("cost/flops_hist", "correct")}
