"""`Space.build_backbone` for the ResNet spaces (``attention``, ``reallocation``), written once.
Importing it is cheap (no torch): the spaces are imported to look their names up."""
from __future__ import annotations

from typing import Sequence

from .resnet import resolve_stem


class StageBackboneMixin:
    """`Space.build_backbone` for the ResNet spaces (``attention``, ``reallocation``): the network
    the space builds for ``sample`` without its pooling head, as a `backbone.StageBackbone` (each
    stage's feature map, shallow to deep: strides 4..32 with the ImageNet stem, 1..8 with the
    CIFAR one)."""

    def build_backbone(self, sample, input_shape: Sequence[int]):
        from .backbone import resnet_backbone

        return resnet_backbone(self.build(sample, input_shape, 1), resolve_stem(self.options["stem"], input_shape))
