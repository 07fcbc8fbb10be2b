"""The user's LightningModules: one trains an injected backbone, one builds its own network.

`DigitClassifier` follows Lightning's backbone_image_classifier: the backbone (an ``nn.Module``
mapping (B, C, H, W) to (B, num_classes)) comes from outside, and the module owns the loss, the
metric and the optimizer. `PlainClassifier` takes no backbone: a search over it is a pure
hyperparameter search.
"""
from __future__ import annotations

import lightning as L
import torch
from torch import nn


class DigitClassifier(L.LightningModule):
    def __init__(self, backbone: nn.Module, num_classes: int, lr: float = 0.01, optimizer: str = "adam",
                 momentum: float = 0.9):
        super().__init__()
        if optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be adam or sgd, got {optimizer!r}")
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)  # (B, num_classes)

    def _step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = nn.functional.cross_entropy(logits, y)
        acc = (logits.argmax(1) == y).float().mean()
        self.log(f"{stage}/loss", loss, on_epoch=True, on_step=False, sync_dist=stage == "val")
        self.log(f"{stage}/acc", acc, on_epoch=True, on_step=False, sync_dist=stage == "val")
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def configure_optimizers(self):
        hp = self.hparams
        if hp.optimizer == "sgd":
            return torch.optim.SGD(self.parameters(), lr=hp.lr, momentum=hp.momentum)
        return torch.optim.Adam(self.parameters(), lr=hp.lr)


class PlainClassifier(DigitClassifier):
    """A fixed MLP whose width and learning rate are searched; no network is injected."""

    def __init__(self, hidden: int = 32, lr: float = 0.01, num_classes: int = 10, pixels: int = 64):
        mlp = nn.Sequential(nn.Flatten(), nn.Linear(pixels, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
        super().__init__(backbone=mlp, num_classes=num_classes, lr=lr)
