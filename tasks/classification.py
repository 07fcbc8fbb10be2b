"""Image classification as a LightningModule with the network injected.

The pattern of Lightning's ``backbone_image_classifier.py``: the task owns the loss, the
metrics and the optimizer; the network (any ``nn.Module`` mapping ``(B, C, H, W)`` to
``(B, num_classes)``) comes from outside, usually from a search space's ``build``. Metrics go
through torchmetrics under ``train/loss``, ``val/loss``, ``val/acc`` (top-1) and ``val/acc5``
(top-5, only with more than 5 classes). Optimizers: SGD (momentum, Nesterov) or AdamW, with a
linear warm-up then a cosine schedule stepped per batch; optional label smoothing.
"""
from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from .optim import ScheduledOptimizer, check_optimizer


class ClassificationTask(ScheduledOptimizer, L.LightningModule):
    def __init__(
        self,
        network: nn.Module,
        num_classes: int,
        optimizer: str = "sgd",
        lr: float = 0.05,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 5e-4,
        label_smoothing: float = 0.0,
        warmup_epochs: float = 0.0,
        min_lr_factor: float = 0.0,
    ):
        super().__init__()
        check_optimizer(optimizer)
        self.save_hyperparameters(ignore=["network"])
        self.network = network
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        # micro averaging: the fraction of correct images (torchmetrics' default is class-balanced)
        self.train_acc = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.val_acc5 = MulticlassAccuracy(num_classes, top_k=5, average="micro") if num_classes > 5 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)  # (B, num_classes)

    def _common_step(self, batch, stage: str):
        x, y = batch  # (B, C, H, W), (B,)
        logits = self(x)
        loss = self.criterion(logits, y)
        self.log(f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True, prog_bar=True,
                 sync_dist=stage != "train", batch_size=len(y))
        return loss, logits, y

    def training_step(self, batch, batch_idx):
        loss, logits, y = self._common_step(batch, "train")
        self.train_acc(logits.detach(), y)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        _, logits, y = self._common_step(batch, "val")
        self.val_acc(logits, y)
        self.log("val/acc", self.val_acc, on_epoch=True, prog_bar=True)
        if self.val_acc5 is not None:
            self.val_acc5(logits, y)
            self.log("val/acc5", self.val_acc5, on_epoch=True)

    def test_step(self, batch, batch_idx):
        _, logits, y = self._common_step(batch, "test")
        self.val_acc(logits, y)
        self.log("test/acc", self.val_acc, on_epoch=True)
