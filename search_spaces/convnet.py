"""`convnet`: a small width/depth space over a plain VGG-style CNN.

The space of the quickstart: how wide the first stage is, how many conv-BN-ReLU blocks each
stage has, the kernel size and the dropout before the classifier. Stages halve the resolution
and double the width. It builds networks for any ``(C, H, W)`` input, including scikit-learn's
8x8 digits. It is not a NAS space from the literature; those are `nasnet`, `nb201`,
`attention` and `reallocation`.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from .registry import register_space
from .space import Categorical, Dim, Float, Int, Space


@register_space
class ConvNetSpace(Space):
    name = "convnet"
    builds_network = True

    def __init__(self, stages: int = 2, widths: Sequence[int] = (16, 32, 48, 64),
                 max_depth: int = 3, kernels: Sequence[int] = (3, 5), max_dropout: float = 0.5):
        if stages < 1:
            raise ValueError("convnet.stages must be >= 1")
        super().__init__(stages=stages, widths=list(widths), max_depth=max_depth,
                         kernels=list(kernels), max_dropout=max_dropout)

    def dimensions(self) -> list[Dim]:
        o = self.options
        return [
            Categorical("convnet/width", choices=tuple(o["widths"])),
            *[Int(f"convnet/stage{i + 1}/depth", low=1, high=o["max_depth"]) for i in range(o["stages"])],
            Categorical("convnet/kernel", choices=tuple(o["kernels"])),
            Float("convnet/dropout", low=0.0, high=o["max_dropout"], grid_points=6),
        ]

    def draw(self, sample: Mapping[str, Any], path: str) -> list[str]:
        """A stage table: resolution, blocks, width and kernel of each stage."""
        from .diagrams import draw_stage_table

        s = self.validate(sample)
        rows = []
        for i in range(self.options["stages"]):
            width = s["convnet/width"] * 2 ** i
            rows.append([f"stage {i + 1}", f"1/{2 ** i}", str(s[f"convnet/stage{i + 1}/depth"]),
                         str(width), f"{s['convnet/kernel']}x{s['convnet/kernel']}"])
        rows.append(["head", "global pool", "-", f"dropout {s['convnet/dropout']:.2f}", "linear"])
        return draw_stage_table(["stage", "resolution", "conv blocks", "width", "kernel"], rows, path,
                                "convnet: conv-BN-ReLU stages")

    def _stages(self, s: Mapping[str, Any], in_channels: int) -> tuple[list[list[Any]], list[int]]:
        """Each stage's layers (a max-pool first from the second on) and its output width; ``s``: a
        validated sample."""
        from torch import nn

        c_in, k = int(in_channels), s["convnet/kernel"]
        width = s["convnet/width"]
        stages, widths = [], []
        for i in range(self.options["stages"]):
            layers: list[nn.Module] = []
            if i > 0:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))  # (B, C, H/2, W/2)
                width *= 2
            for _ in range(s[f"convnet/stage{i + 1}/depth"]):
                layers += [nn.Conv2d(c_in, width, k, padding=k // 2, bias=False),
                           nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
                c_in = width
            stages.append(layers)
            widths.append(width)
        return stages, widths

    def build(self, sample: Mapping[str, Any], input_shape: Sequence[int], num_classes: int):
        from torch import nn

        s = self.validate(sample)
        stages, widths = self._stages(s, input_shape[0])
        return nn.Sequential(
            *[layer for stage in stages for layer in stage],
            nn.AdaptiveAvgPool2d(1),  # (B, C, 1, 1)
            nn.Flatten(),
            nn.Dropout(s["convnet/dropout"]),
            nn.Linear(widths[-1], num_classes),
        )

    def build_backbone(self, sample: Mapping[str, Any], input_shape: Sequence[int]):
        """The same stages without the head: stride 1 for the first stage (there is no stem), then
        each stage halves the resolution (strides 1, 2, 4, ...); ``channels`` are the widths."""
        from torch import nn

        from .backbone import StageBackbone

        stages, widths = self._stages(self.validate(sample), input_shape[0])
        return StageBackbone(nn.Identity(), [nn.Sequential(*st) for st in stages], widths,
                             [2 ** i for i in range(len(stages))])
