"""Backbones with multi-scale features: what a space builds when a task puts its own head on it.

A `StageBackbone` maps ``(B, C, H, W)`` images to the feature map of each stage, shallow to
deep, and says what they are before any data is read: ``channels`` (one per stage) and
``reductions`` (each map's stride relative to the input, like timm's ``feature_info``). The
conv spaces (`attention`, `reallocation`, `convnet`) offer ``space.build_backbone(sample, input_shape)``;
tasks put their head on it:

* classification: global pooling + a linear layer on the last map - exactly timm's
  ``forward_head`` of the same ResNet, so the classifier a space builds today and its backbone
  share every module and give the same logits;
* segmentation: the encoder of `encoder_decoder.EncoderDecoderNet` (``encoder=``);
* detection: a feature pyramid and a detection head (`nasforge.tasks.detection`).

`resnet_backbone(model, stem)` views a timm ResNet built by `resnet.build_resnet` (its stem and
``layer1..4``, nothing copied); with the ImageNet stem the strides are 4, 8, 16, 32, with the
CIFAR stem 1, 2, 4, 8. This module does not build networks itself.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from . import resnet


class StageBackbone(nn.Module):
    """A stem followed by stages; ``forward`` returns every stage's output, shallow to deep."""

    def __init__(
        self,
        stem: nn.Module,
        stages: Sequence[nn.Module],
        channels: Sequence[int],
        reductions: Sequence[int],
    ):
        super().__init__()
        if not len(stages) == len(channels) == len(reductions):
            raise ValueError(
                f"{len(stages)} stages, {len(channels)} channel counts and "
                f"{len(reductions)} reductions: give one of each per stage"
            )
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.channels = [int(c) for c in channels]
        self.reductions = [int(r) for r in reductions]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)  # (B, C0, H/r0', W/r0')
        feats = []
        for stage in self.stages:
            x = stage(x)  # (B, channels[i], H/reductions[i], W/reductions[i])
            feats.append(x)
        return feats


def resnet_backbone(model: nn.Module, stem: str) -> StageBackbone:
    """The stages of a timm ResNet from `resnet.build_resnet` as a `StageBackbone` (the same
    modules, not copies). ``stem`` is the resolved stem (``cifar`` or ``imagenet``)."""
    if stem not in ("cifar", "imagenet"):
        raise ValueError(f"resolve the stem first (cifar or imagenet), got {stem!r}")
    stages = resnet.stages(model)
    channels = [resnet.block_out_channels(stage[-1]) for stage in stages]
    first = 1 if stem == "cifar" else 4  # the ImageNet stem halves twice (stride-2 conv, max-pool)
    reductions = [first * 2**i for i in range(len(stages))]
    stem_module = nn.Sequential(model.conv1, model.bn1, model.act1, model.maxpool)
    return StageBackbone(stem_module, stages, channels, reductions)
