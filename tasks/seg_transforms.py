"""Joint image/mask augmentation for semantic segmentation: random scale, crop and flips.

Every geometric operation is torchvision's ``transforms.v2`` functional applied to the image
(``tv_tensors.Image``) and its label mask (``tv_tensors.Mask``) together, with the same random
draw, so pixel (i, j) of the output image and pixel (i, j) of the output mask always come from the
same source pixel. torchvision resizes a Mask by nearest neighbour (never interpolated), so every
output label is a label of the input (or ``ignore_index`` where the crop ran past the image and
was padded). Images stay uint8 (C, H, W) here; normalisation happens batch-wise on the device (see
`segmentation_data.py`). The draws come from the caller's ``torch.Generator``, so a data loader
worker's augmentation is a function of its seed.

Not a general augmentation library: scale, crop, horizontal/vertical flips and 90-degree
rotations are what U-Net (Ronneberger et al. 2015) and DeepLab-style training use.
"""
from __future__ import annotations

from typing import Sequence

import torch


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


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
        from torchvision import tv_tensors
        from torchvision.transforms.v2 import functional as TF

        g = generator
        img, msk = tv_tensors.Image(image), tv_tensors.Mask(mask)
        lo, hi = self.scale_range
        if hi > lo or lo != 1.0:
            s = lo + (hi - lo) * self._uniform(g)
            H, W = mask.shape
            size = [max(1, round(H * s)), max(1, round(W * s))]
            img, msk = TF.resize(img, size, antialias=True), TF.resize(msk, size)  # a Mask: nearest
        if self.crop_size is not None:
            h, w = self.crop_size
            H, W = msk.shape[-2:]
            pad = [0, 0, max(0, w - W), max(0, h - H)]  # left, top, right, bottom
            img, msk = TF.pad(img, pad, fill=0), TF.pad(msk, pad, fill=self.ignore_index)
            H, W = msk.shape[-2:]
            top = int(torch.randint(0, H - h + 1, (), generator=g))
            left = int(torch.randint(0, W - w + 1, (), generator=g))
            img, msk = TF.crop(img, top, left, h, w), TF.crop(msk, top, left, h, w)
        if self.hflip > 0 and self._uniform(g) < self.hflip:
            img, msk = TF.horizontal_flip(img), TF.horizontal_flip(msk)
        if self.vflip > 0 and self._uniform(g) < self.vflip:
            img, msk = TF.vertical_flip(img), TF.vertical_flip(msk)
        if self.rot90 > 0 and self._uniform(g) < self.rot90 and msk.shape[-2] == msk.shape[-1]:
            k = int(torch.randint(1, 4, (), generator=g))
            img, msk = TF.rotate(img, 90.0 * k), TF.rotate(msk, 90.0 * k)  # square: exact
        return img.as_subclass(torch.Tensor).contiguous(), msk.as_subclass(torch.Tensor).contiguous()

    def __repr__(self) -> str:
        return (f"JointTransform(crop_size={self.crop_size}, scale_range={self.scale_range}, "
                f"hflip={self.hflip}, vflip={self.vflip}, rot90={self.rot90})")
