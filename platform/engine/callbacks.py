"""The Lightning callbacks through which search reaches training (DESIGN contract 4).

* `MetricHistory`: the validation metrics of every epoch (floats), so that the trial's
  objective values come from one epoch: the best by the first objective, the same epoch whose
  checkpoint is kept.
* `OptunaPruning`: reports the first objective to the Optuna trial after each validation and
  stops training when the pruner says so. Rank 0 decides and the decision is broadcast, so
  under DDP every rank stops at the same epoch (optuna-integration's callback refuses DDP
  without an RDB storage; this one only needs rank 0 to hold the trial).
* `DropPathSchedule`: ScheduledDropPath (NASNet, Zoph et al. 2018): the drop probability of a
  network that has one (``network.drop_path_prob``) grows linearly with the epoch.
* `BestCheckpoint`: the best epoch's weights by the first objective as ``trials/<n>/best.ckpt``
  (the LightningModule's state_dict and hparams: what promotion and evaluation load; no
  optimizer or loop state, which no one resumes from and which doubles the file with momentum).
* `FiniteLossGuard`: a NaN or infinite training loss ends the trial at once with the reason
  (a defined outcome, instead of epochs of NaN and a meaningless objective).

The task never sees any of these; it only logs metrics.
"""
from __future__ import annotations

import math
import time

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from nasforge.platform.engine import phases


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss."""


def _floats(metrics) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        try:
            out[k] = float(v.item() if isinstance(v, torch.Tensor) and v.numel() == 1 else v)
        except (TypeError, ValueError, RuntimeError):
            continue
    return out


class MetricHistory(L.Callback):
    def __init__(self):
        self.epochs: list[dict[str, float]] = []

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        row = _floats(trainer.callback_metrics)
        row["epoch"] = trainer.current_epoch
        self.epochs.append(row)

    def best(self, metric: str, direction: str) -> dict[str, float] | None:
        rows = [r for r in self.epochs if metric in r and math.isfinite(r[metric])]
        if not rows:
            return None
        pick = max if direction == "maximize" else min
        return pick(rows, key=lambda r: r[metric])


class OptunaPruning(L.Callback):
    """``trial`` is an Optuna trial on rank 0 (None on other ranks)."""

    def __init__(self, trial, monitor: str):
        self.trial = trial
        self.monitor = monitor
        self.pruned_epoch: int | None = None

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        epoch = trainer.current_epoch
        decision = False
        if trainer.is_global_zero and self.trial is not None:
            value = trainer.callback_metrics.get(self.monitor)
            if value is not None:
                value = float(value)
                if math.isfinite(value):
                    self.trial.report(value, epoch)
                    decision = bool(self.trial.should_prune())
        decision = trainer.strategy.broadcast(decision, src=0)
        if decision:
            self.pruned_epoch = epoch
            trainer.should_stop = True


class FiniteLossGuard(L.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        bad = loss is not None and not bool(torch.isfinite(loss.detach()).all())
        if trainer.world_size > 1:
            bad = trainer.strategy.reduce_boolean_decision(bad, all=False)
        if bad:
            raise NonFiniteLossError(
                f"training loss became non-finite ({float(loss) if loss is not None else 'nan'}) "
                f"at epoch {trainer.current_epoch}, step {trainer.global_step}"
            )


class DropPathSchedule(L.Callback):
    """Sets ``drop_path_prob`` = max * epoch / epochs at the start of each training epoch, for
    networks that declare one (NASNet cells); others are left alone."""

    @staticmethod
    def applies(network) -> bool:
        return hasattr(network, "drop_path_prob")

    def on_train_epoch_start(self, trainer, pl_module):
        from nasforge.search_spaces.drop_path import set_drop_path_prob

        set_drop_path_prob(pl_module, trainer.current_epoch, trainer.max_epochs)


class BestCheckpoint(ModelCheckpoint):
    """Keep the best epoch's weights (no optimizer state) as ``<dirpath>/best.ckpt``."""

    def __init__(self, dirpath: str, monitor: str, mode: str):
        super().__init__(dirpath=dirpath, filename="best", monitor=monitor, mode=mode, save_top_k=1,
                         save_weights_only=True, enable_version_counter=False)

    def _save_checkpoint(self, trainer, filepath: str) -> None:  # timed for the trial's profile
        with phases.phase("fit/checkpoint"):
            super()._save_checkpoint(trainer, filepath)


class FitSetupTimer(L.Callback):
    """Profiling only (`phases`): the seconds from ``trainer.fit`` to the callbacks' ``setup``
    hook (the data module's ``prepare_data`` and ``setup``, Lightning's own setup), as
    ``fit/setup``; the runner adds it only while the trial profile is on."""

    def __init__(self):
        self.start = time.perf_counter()

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit":
            phases.add("fit/setup", time.perf_counter() - self.start)
