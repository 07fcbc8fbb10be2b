"""The optimizers and learning-rate schedule every task shares.

SGD (momentum, optionally Nesterov) or AdamW, with no weight decay on biases and norm
parameters, and a schedule stepped per batch: a linear warm-up over ``warmup_epochs``, then a
cosine decay to ``min_lr_factor`` of the peak (SGDR without restarts, Loshchilov & Hutter 2017).
A task gets them by subclassing `ScheduledOptimizer` and taking the arguments of
`configure_optimizer` in its ``__init__`` (each task keeps its own defaults there).
"""
from __future__ import annotations

import math

import torch
from torch import nn

OPTIMIZERS = ("sgd", "adamw")


def check_optimizer(name: str) -> str:
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")
    return name


def warmup_cosine(step: int, total: int, warmup: int, min_factor: float = 0.0) -> float:
    """LR factor: linear from ~0 to 1 over ``warmup`` steps, then cosine down to ``min_factor``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))


def configure_optimizer(network: nn.Module, trainer, optimizer: str, lr: float, momentum: float,
                        nesterov: bool, weight_decay: float, warmup_epochs: float, min_lr_factor: float):
    """What a LightningModule's ``configure_optimizers`` returns for these settings."""
    decay, no_decay = [], []
    for p in network.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)  # no decay on biases and norms
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if check_optimizer(optimizer) == "sgd":
        opt = torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)
    else:
        opt = torch.optim.AdamW(groups, lr=lr)
    est = trainer.estimated_stepping_batches
    total = max(1, int(est)) if math.isfinite(est) else 10**9  # no max_epochs: ~constant LR
    epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else 1
    warmup = int(warmup_epochs * total / epochs)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: warmup_cosine(step, total, warmup, min_lr_factor))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class ScheduledOptimizer:
    """``configure_optimizers`` for a LightningModule that trains ``self.network`` and records
    ``optimizer``, ``lr``, ``momentum``, ``nesterov``, ``weight_decay``, ``warmup_epochs`` and
    ``min_lr_factor`` in its hparams (``save_hyperparameters``). Put it before
    ``L.LightningModule`` among the bases."""

    def configure_optimizers(self):
        hp = self.hparams
        return configure_optimizer(self.network, self.trainer, hp.optimizer, hp.lr, hp.momentum, hp.nesterov,
                                   hp.weight_decay, hp.warmup_epochs, hp.min_lr_factor)
