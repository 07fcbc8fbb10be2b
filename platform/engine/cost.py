"""The cost of a built network: parameters, FLOPs and latency, as objectives or constraints.

`measure_cost(model, input_shape, device, batch_size)` returns

* ``cost/params``     - the number of parameters (shared ones counted once);
* ``cost/flops``      - FLOPs of one forward pass per sample, counted by PyTorch's own
                        ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add is 2 FLOPs;
                        convolutions, matmuls and attention's batched matmuls are counted,
                        element-wise ops, BN and pooling are not);
* ``cost/latency_ms`` - the median wall time of a forward pass of ``batch_size`` random inputs
                        on ``device``, after warm-up runs (CUDA is synchronised around each);
                        measured only when asked (``latency=True``).

The model is measured in eval mode without gradients and handed back as it came: every
submodule's train/eval flag and the device are restored.

`CostCallback(input_shape)` is the Lightning side: at fit start, on rank 0 and on the trial's
own device, it measures the task's network (``pl_module.network`` when there is one), keeps the
result in ``callback.costs`` (what the trial runner reads for objectives and constraints) and
logs it to every logger of the trainer at step 0. Other ranks leave ``costs`` empty.
"""
from __future__ import annotations

import statistics
import time
from typing import Any, Sequence

import lightning as L
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nasforge.platform.engine import phases

COST_KEYS = ("cost/params", "cost/flops", "cost/latency_ms")


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _model_device_dtype(model: nn.Module) -> tuple[torch.device | None, torch.dtype]:
    for t in (*model.parameters(), *model.buffers()):
        dtype = t.dtype if t.is_floating_point() else torch.float32
        return t.device, dtype
    return None, torch.float32


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_cost(model: nn.Module, input_shape: Sequence[int], device: str | torch.device = "cpu",
                 batch_size: int = 1, latency_runs: int = 10, warmup_runs: int = 3,
                 latency: bool = True) -> dict[str, Any]:
    """Params, per-sample FLOPs and median forward latency (ms) of ``model`` on inputs of shape
    ``(batch_size, *input_shape)``; see the module docstring. ``latency=False`` skips the timed
    runs (and the ``cost/latency_ms`` key)."""
    if batch_size < 1 or latency_runs < 1 or warmup_runs < 0:
        raise ValueError(
            f"batch_size and latency_runs must be >= 1 and warmup_runs >= 0, "
            f"got {batch_size}, {latency_runs}, {warmup_runs}"
        )
    device = torch.device(device)
    home, dtype = _model_device_dtype(model)
    modes = {m: m.training for m in model.modules()}
    try:
        if home is not None and home != device:
            model.to(device)
        model.eval()
        x = torch.randn(batch_size, *[int(s) for s in input_shape], device=device, dtype=dtype)  # (B, C, H, W)
        with torch.no_grad():
            counter = FlopCounterMode(display=False)
            with counter:
                model(x)
            flops = counter.get_total_flops()
            for _ in range(warmup_runs if latency else 0):
                model(x)
            times = []
            for _ in range(latency_runs if latency else 0):
                _sync(device)
                start = time.perf_counter()
                model(x)
                _sync(device)
                times.append(time.perf_counter() - start)
    finally:
        if home is not None and home != device:
            model.to(home)
        for m, training in modes.items():
            m.training = training
    out = {"cost/params": count_params(model), "cost/flops": int(round(flops / batch_size))}
    if latency:
        out["cost/latency_ms"] = statistics.median(times) * 1000.0
    return out


class CostCallback(L.Callback):
    """Measure the network's cost at fit start on the trial's device (rank 0 only) and log it.

    ``input_shape`` is one example's (C, H, W); None takes ``trainer.datamodule.input_shape``.
    After ``trainer.fit`` starts, ``costs`` holds the three ``cost/*`` values (empty on other
    ranks). The forward passes run under the trainer's precision context (e.g. autocast for
    ``16-mixed``), so latency is that of the precision the trial trains with. ``latency=False``
    (the trial runner's choice when no objective or constraint names ``cost/latency_ms``) skips
    the timed forward passes."""

    def __init__(self, input_shape: Sequence[int] | None = None, batch_size: int = 1,
                 latency_runs: int = 10, warmup_runs: int = 3, latency: bool = True):
        super().__init__()
        self.latency = latency
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.batch_size = batch_size
        self.latency_runs = latency_runs
        self.warmup_runs = warmup_runs
        self.costs: dict[str, Any] = {}
        self.device: str | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        shape = self.input_shape
        if shape is None:
            shape = getattr(trainer.datamodule, "input_shape", None)
            if shape is None:
                raise ValueError("CostCallback needs input_shape (the data module has no input_shape)")
        network = getattr(pl_module, "network", None)
        model = network if isinstance(network, nn.Module) else pl_module
        self.device = str(pl_module.device)
        with phases.phase("fit/cost"), trainer.precision_plugin.forward_context():
            self.costs = measure_cost(model, shape, device=pl_module.device, batch_size=self.batch_size,
                                      latency_runs=self.latency_runs, warmup_runs=self.warmup_runs,
                                      latency=self.latency)
        for logger in trainer.loggers:
            logger.log_metrics(dict(self.costs), step=0)
