"""A small search space of the user's own: a stack of conv blocks whose depth, width and
activation are searched (a nasforge `Space` subclass, named in sweep.yaml by class path)."""
from __future__ import annotations

from nasforge.search_spaces import Categorical, Int, Space


class TinyConvSpace(Space):
    name = "digitlab_tinyconv"
    builds_network = True

    def dimensions(self):
        widths = tuple(self.options.get("widths", (8, 16)))
        return [Int("depth", low=1, high=int(self.options.get("max_depth", 2))),
                Categorical("width", choices=widths),
                Categorical("act", choices=("relu", "gelu"))]

    def build(self, sample, input_shape, num_classes):
        from torch import nn

        act = {"relu": nn.ReLU, "gelu": nn.GELU}[sample["act"]]
        layers, c = [], input_shape[0]
        for _ in range(sample["depth"]):
            layers += [nn.Conv2d(c, sample["width"], 3, padding=1), nn.BatchNorm2d(sample["width"]), act()]
            c = sample["width"]
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))
