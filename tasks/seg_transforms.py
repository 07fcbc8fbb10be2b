"""Joint image/mask augmentation for semantic segmentation: random scale, crop and flips.

Every geometric operation is applied to the image and its label mask together, with the same
random draw, so pixel (i, j) of the output image and pixel (i, j) of the output mask always come
from the same source pixel. Masks are *never interpolated*: they are resampled by
nearest-neighbour index look-up only (centre-aligned, the same pixel grid as the image's bilinear
resize with ``align_corners=False``), so every output label is a label of the input (or
``ignore_index`` where the crop ran past the image and had to be padded). Images stay uint8
(C, H, W) here; normalisation happens batch-wise on the device (see `segmentation_data.py`).

Not a general augmentation library: scale, crop, horizontal/vertical flips and 90-degree
rotations are what U-Net (Ronneberger et al. 2015) and DeepLab-style training use.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def nearest_indices(n_in: int, n_out: int, device=None) -> torch.Tensor:
    """Source index of each output pixel for a centre-aligned nearest resize: (n_out,) int64."""
    pos = (torch.arange(n_out, device=device, dtype=torch.float64) + 0.5) * (n_in / n_out)
    return pos.floor().long().clamp_(0, n_in - 1)


def resize_pair(image: torch.Tensor, mask: torch.Tensor, size: tuple[int, int]):
    """Resize image (C, H, W) uint8 bilinearly and mask (H, W) by nearest look-up to ``size``."""
    h, w = size
    H, W = mask.shape
    if (h, w) == (H, W):
        return image, mask
    img = F.interpolate(image[None].float(), size=(h, w), mode="bilinear", align_corners=False,
                        antialias=h < H or w < W)  # (1, C, h, w)
    image = img[0].round_().clamp_(0, 255).to(image.dtype)
    rows, cols = nearest_indices(H, h, mask.device), nearest_indices(W, w, mask.device)
    mask = mask[rows][:, cols]  # (h, w), values copied, never mixed
    return image, mask


def pad_pair(image: torch.Tensor, mask: torch.Tensor, size: tuple[int, int], ignore_index: int):
    """Pad bottom/right so that both sides are at least ``size``: image with 0, mask with
    ``ignore_index`` (padding is not a class and never counts in loss or metric)."""
    H, W = mask.shape
    ph, pw = max(0, size[0] - H), max(0, size[1] - W)
    if ph == 0 and pw == 0:
        return image, mask
    image = F.pad(image, (0, pw, 0, ph), value=0)
    mask = F.pad(mask, (0, pw, 0, ph), value=ignore_index)
    return image, mask


def crop_pair(image: torch.Tensor, mask: torch.Tensor, top: int, left: int, size: tuple[int, int]):
    h, w = size
    return image[:, top:top + h, left:left + w], mask[top:top + h, left:left + w]


class JointTransform:
    """Random scale -> pad -> random crop -> flips -> 90-degree rotation, image and mask alike.

    ``crop_size``: output size (int or (h, w)); None keeps the (scaled) image whole.
    ``scale_range``: the image side is multiplied by a factor drawn uniformly from it.
    ``hflip``/``vflip``: probabilities of a horizontal / vertical flip.
    ``rot90``: probability of a rotation by 90, 180 or 270 degrees (square crops only).
    Call with ``image`` (C, H, W) uint8 and ``mask`` (H, W) integer; returns the same types.
    """

    def __init__(self, crop_size: int | Sequence[int] | None = None,
                 scale_range: Sequence[float] = (1.0, 1.0), hflip: float = 0.0, vflip: float = 0.0,
                 rot90: float = 0.0, ignore_index: int = 255):
        lo, hi = (float(s) for s in scale_range)
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must be 0 < low <= high, got {tuple(scale_range)}")
        for name, p in (("hflip", hflip), ("vflip", vflip), ("rot90", rot90)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], got {p}")
        self.crop_size = None if crop_size is None else _pair(crop_size)
        if rot90 > 0 and self.crop_size is not None and self.crop_size[0] != self.crop_size[1]:
            raise ValueError(f"rot90 needs a square crop, got crop_size={self.crop_size}")
        self.scale_range = (lo, hi)
        self.hflip, self.vflip, self.rot90 = float(hflip), float(vflip), float(rot90)
        self.ignore_index = int(ignore_index)

    def _uniform(self, g: torch.Generator | None) -> float:
        return float(torch.rand((), generator=g))

    def __call__(self, image: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None):
        g = generator
        lo, hi = self.scale_range
        if hi > lo or lo != 1.0:
            s = lo + (hi - lo) * self._uniform(g)
            H, W = mask.shape
            image, mask = resize_pair(image, mask, (max(1, round(H * s)), max(1, round(W * s))))
        if self.crop_size is not None:
            image, mask = pad_pair(image, mask, self.crop_size, self.ignore_index)
            H, W = mask.shape
            top = int(torch.randint(0, H - self.crop_size[0] + 1, (), generator=g))
            left = int(torch.randint(0, W - self.crop_size[1] + 1, (), generator=g))
            image, mask = crop_pair(image, mask, top, left, self.crop_size)
        if self.hflip > 0 and self._uniform(g) < self.hflip:
            image, mask = image.flip(-1), mask.flip(-1)
        if self.vflip > 0 and self._uniform(g) < self.vflip:
            image, mask = image.flip(-2), mask.flip(-2)
        if self.rot90 > 0 and self._uniform(g) < self.rot90 and mask.shape[0] == mask.shape[1]:
            k = int(torch.randint(1, 4, (), generator=g))
            image, mask = image.rot90(k, (-2, -1)), mask.rot90(k, (-2, -1))
        return image.contiguous(), mask.contiguous()

    def __repr__(self) -> str:
        return (f"JointTransform(crop_size={self.crop_size}, scale_range={self.scale_range}, "
                f"hflip={self.hflip}, vflip={self.vflip}, rot90={self.rot90})")
