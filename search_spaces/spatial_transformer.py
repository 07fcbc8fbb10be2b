"""Spatial transformer (Jaderberg et al., "Spatial Transformer Networks", NeurIPS 2015).

A small *localization network* looks at the image and predicts the 6 parameters of an affine
transform theta (2x3); a sampling grid is generated from theta (``F.affine_grid``) and the
image is resampled bilinearly on it (``F.grid_sample``). Both steps are differentiable, so the
network learns to crop, rotate, scale and shear its input into the pose the rest of the network
classifies best, with no supervision of the transform.

`SpatialTransformer(channels, width=8)` keeps the input's shape (B, C, H, W) and is used as an
optional stem in front of a classification network (the `attention` space's ``stem/stn``).
The localization net is two 3x3 conv-ReLU-max-pool steps and an adaptive average pool to 4x4
(so any input size works, 8x8 digits included), then a 2-layer MLP. Its last layer starts at
zero weights and the identity's bias, as in the paper, so an untrained transformer passes the
image through unchanged and training starts from the plain network. Samples outside the image
read zeros (``padding_mode="zeros"``, the paper's convention).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # theta = [[1, 0, 0], [0, 1, 0]]


class SpatialTransformer(nn.Module):
    def __init__(self, channels: int, width: int = 8, hidden: int = 32):
        super().__init__()
        self.localization = nn.Sequential(  # (B, C, H, W) -> (B, 2 * width * 16)
            nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),
        )
        self.fc = nn.Sequential(nn.Linear(2 * width * 16, hidden), nn.ReLU(inplace=True),
                                nn.Linear(hidden, 6))
        self.reset_transform()

    def reset_transform(self) -> None:
        """Make the predicted transform the identity for every input (the paper's start)."""
        last = self.fc[-1]
        nn.init.zeros_(last.weight)
        with torch.no_grad():
            last.bias.copy_(torch.tensor(IDENTITY))

    def theta(self, x: torch.Tensor) -> torch.Tensor:
        """The predicted affine transforms: (B, 2, 3)."""
        return self.fc(self.localization(x)).view(-1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = F.affine_grid(self.theta(x), list(x.shape), align_corners=False)  # (B, H, W, 2)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
