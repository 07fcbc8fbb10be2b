"""The user's LightningDataModule: scikit-learn's 8x8 digits, split with a seeded generator.

It exposes what a search space needs to build a network for it: ``input_shape`` (C, H, W) and
``num_classes`` (nasforge's ShapedDataModule protocol; no nasforge import needed).
"""
from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset


class DigitsData(L.LightningDataModule):
    input_shape = (1, 8, 8)
    num_classes = 10

    def __init__(self, batch_size: int = 32, val_fraction: float = 0.25, limit: int | None = None, seed: int = 0):
        super().__init__()
        self.save_hyperparameters()  # kept in checkpoints: what the trial trained with
        self.batch_size, self.val_fraction, self.limit, self.seed = batch_size, val_fraction, limit, seed
        self.train_set = self.val_set = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        from sklearn.datasets import load_digits

        d = load_digits()
        x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
        y = torch.tensor(d.target, dtype=torch.int64)
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.seed))
        if self.limit:
            order = order[: self.limit]
        n_val = int(len(order) * self.val_fraction)
        self.val_set = TensorDataset(x[order[:n_val]], y[order[:n_val]])
        self.train_set = TensorDataset(x[order[n_val:]], y[order[n_val:]])

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True,
                          generator=torch.Generator().manual_seed(self.seed))

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=256)
