"""Semantic segmentation as a LightningModule with the network injected.

The network maps ``(B, C, H, W)`` images to ``(B, num_classes, h, w)`` logits (usually a search
space's ``build``, e.g. the ``encdec`` encoder-decoder family); logits at a lower resolution are
upsampled bilinearly to the label size. The loss is pixel-wise cross-entropy with an ignore
index (void and padding, 255 by default), optionally plus ``dice_weight`` times a soft Dice loss
(V-Net, Milletari et al. 2016) that ignores the same pixels. Metrics (torchmetrics, void never
counts): ``val/miou`` (MulticlassJaccardIndex, macro average over the classes present in the
labels or predictions), ``val/pixel_acc``, ``val/loss``, and per class ``val/iou/<class>`` at
the end of validation (class names from ``class_names``, else the data module's, else the ids);
the same under ``test/`` for the test split; ``train/loss`` while training. Optimizers: SGD
(momentum, Nesterov) or AdamW, a linear warm-up of ``warmup_epochs`` then a cosine schedule
stepped per batch. ``extra_callbacks(trial_dir)`` adds prediction overlays (`seg_overlays.py`).
"""
from __future__ import annotations

from typing import Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from .dice_loss import DiceLoss
from .optim import ScheduledOptimizer, check_optimizer
from .seg_overlays import PredictionOverlays



class _SplitMetrics(nn.Module):
    """mIoU, pixel accuracy and per-class IoU of one split (torchmetrics; ignore index honoured)."""

    def __init__(self, num_classes: int, ignore_index: int):
        super().__init__()
        self.miou = MulticlassJaccardIndex(num_classes, average="macro", ignore_index=ignore_index)
        self.pixel_acc = MulticlassAccuracy(num_classes, average="micro", ignore_index=ignore_index)
        self.iou = MulticlassJaccardIndex(num_classes, average="none", ignore_index=ignore_index)

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        self.miou.update(preds, target)
        self.pixel_acc.update(preds, target)
        self.iou.update(preds, target)


class SegmentationTask(ScheduledOptimizer, L.LightningModule):
    def __init__(
        self,
        network: nn.Module,
        num_classes: int,
        ignore_index: int = 255,
        dice_weight: float = 0.0,
        optimizer: str = "adamw",
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        momentum: float = 0.9,
        nesterov: bool = True,
        label_smoothing: float = 0.0,
        warmup_epochs: float = 0.0,
        min_lr_factor: float = 0.0,
        class_names: Sequence[str] | None = None,
        overlay_images: int = 4,
    ):
        super().__init__()
        check_optimizer(optimizer)
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if 0 <= ignore_index < num_classes:
            raise ValueError(f"ignore_index {ignore_index} is a class id (num_classes={num_classes})")
        if dice_weight < 0:
            raise ValueError(f"dice_weight must be >= 0, got {dice_weight}")
        if class_names is not None:
            class_names = [str(c) for c in class_names]
            if len(class_names) != num_classes:
                raise ValueError(f"class_names has {len(class_names)} names for {num_classes} classes")
        self.save_hyperparameters(ignore=["network"])
        self.network = network
        self.ce = nn.CrossEntropyLoss(ignore_index=ignore_index, label_smoothing=label_smoothing)
        self.dice = DiceLoss(ignore_index=ignore_index) if dice_weight > 0 else None
        self.val_metrics = _SplitMetrics(num_classes, ignore_index)
        self.test_metrics = _SplitMetrics(num_classes, ignore_index)

    @classmethod
    def extra_callbacks(cls, trial_dir: str | None) -> list[L.Callback]:
        """Prediction overlays of a few fixed validation images, every validation epoch."""
        return [PredictionOverlays(trial_dir)]

    # -- the model --------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.network(x)  # (B, K, h, w)
        if logits.shape[-2:] != x.shape[-2:]:
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits  # (B, K, H, W)

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (+ Dice) over the pixels whose label is not the ignore index."""
        if not (target != self.hparams.ignore_index).any():
            return logits.sum() * 0.0  # nothing to learn from (CE's mean would be NaN)
        loss = self.ce(logits, target)
        if self.dice is not None:
            loss = loss + self.hparams.dice_weight * self.dice(logits, target)
        return loss

    def class_names(self) -> list[str]:
        if self.hparams.class_names:
            return list(self.hparams.class_names)
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        names = getattr(dm, "class_names", None)
        if names and len(names) == self.hparams.num_classes:
            return [str(n) for n in names]
        return [str(i) for i in range(self.hparams.num_classes)]

    # -- steps ------------------------------------------------------------------------------
    def _common_step(self, batch, stage: str):
        x, y = batch  # (B, C, H, W) float, (B, H, W) int64
        logits = self(x)
        loss = self.loss(logits, y)
        self.log(f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True, prog_bar=True,
                 sync_dist=stage != "train", batch_size=len(y))
        return loss, logits, y

    def training_step(self, batch, batch_idx):
        loss, _, _ = self._common_step(batch, "train")
        return loss

    def _eval_step(self, batch, stage: str, metrics: _SplitMetrics):
        _, logits, y = self._common_step(batch, stage)
        metrics.update(logits.argmax(1), y)
        self.log(f"{stage}/miou", metrics.miou, on_epoch=True, prog_bar=True)
        self.log(f"{stage}/pixel_acc", metrics.pixel_acc, on_epoch=True)

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val", self.val_metrics)

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test", self.test_metrics)

    def _log_per_class(self, stage: str, metrics: _SplitMetrics) -> None:
        """Per-class IoU; a class absent from both labels and predictions has no IoU and is not
        logged (the macro mIoU skips it too)."""
        with metrics.iou.sync_context():  # all ranks' counts under DDP
            confmat = metrics.iou.confmat.clone()  # (K, K), void excluded by torchmetrics
        if confmat.sum() == 0:
            return
        iou = metrics.iou.compute()  # (K,)
        present = (confmat.sum(0) + confmat.sum(1)) > 0
        for name, value, seen in zip(self.class_names(), iou.tolist(), present.tolist()):
            if seen:
                self.log(f"{stage}/iou/{name}", value, on_epoch=True)
        metrics.iou.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_per_class("val", self.val_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_per_class("test", self.test_metrics)
