"""Soft Dice loss for multi-class segmentation (Milletari et al., V-Net, 2016), ignore-aware.

``1 - mean_c (2 * sum(p_c * t_c) + eps) / (sum(p_c) + sum(t_c) + eps)`` over the pixels whose
label is not ``ignore_index``, with ``p`` the softmax probabilities and ``t`` the one-hot target.
Classes absent from both the target and the prediction of a batch score 1 (the ``eps`` terms),
so they neither help nor hurt. Used next to cross-entropy to counter class imbalance.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DiceLoss(nn.Module):
    def __init__(self, ignore_index: int = 255, eps: float = 1.0):
        super().__init__()
        self.ignore_index = ignore_index
        self.eps = eps

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # logits (B, K, H, W), target (B, H, W) int64 with ignore_index for void
        K = logits.shape[1]
        valid = target != self.ignore_index  # (B, H, W)
        probs = logits.softmax(1) * valid[:, None]  # (B, K, H, W), ignored pixels zeroed
        onehot = F.one_hot(torch.where(valid, target, 0), K).permute(0, 3, 1, 2)  # (B, K, H, W)
        onehot = onehot.to(probs.dtype) * valid[:, None]
        inter = (probs * onehot).sum((0, 2, 3))  # (K,)
        denom = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))  # (K,)
        dice = (2 * inter + self.eps) / (denom + self.eps)
        return 1 - dice.mean()
