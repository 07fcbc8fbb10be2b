"""The base of the segmentation data modules: images and label masks held as uint8 arrays.

Subclasses (`camvid.py`, `isbi.py`) say what the data is (``input_shape``, ``num_classes``,
``class_names``, ``palette``, normalisation constants, which flips make sense) and implement
``decode(path) -> {split: (images (N, H, W, C) uint8, masks (N, H, W) uint8)}``. Everything else
is here:

* finding the data: ``path`` (a folder or a zip), else ``$NASFORGE_DATA/<shared_file>`` or
  ``../shared/data/<shared_file>``;
* decoding once: the arrays are cached in memory for the process (every trial of a sweep reuses
  them) and on disk under ``$NASFORGE_CACHE`` (default ``~/.cache/nasforge``), keyed by every
  file read (names, sizes, modification times: `data_cache.source_key`);
* splits: the data set's own validation split when it has one, else a seeded ``val_fraction``
  of the training images; ``subset`` is a seeded subset of the training images, ``val_subset``
  evenly spaced validation images (the same ones for every seed, so trials compare);
* augmentation per training image (`seg_transforms.JointTransform`): random crop of
  ``crop_size`` (the crop is how training images are sampled, so it also happens with
  ``augment=0``), and, scaled by ``augment`` in [0, 1], random scale within ``scale_range``,
  flips and rotations. ``repeats`` draws that many random crops of each image per epoch (U-Net's
  recipe for a data set of 30 images). Validation and test images are used whole.
* normalisation batch-wise on the device (``on_after_batch_transfer``); masks become int64 with
  ``ignore_index`` (255) for void and padding.
"""
from __future__ import annotations

import hashlib
import os
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .data_cache import cache_dir, source_key
from .image_data import SplitDataModule
from .seg_transforms import JointTransform

Arrays = tuple[np.ndarray, np.ndarray]  # images (N, H, W, C) uint8, masks (N, H, W) uint8
_MEMORY: dict[tuple, dict[str, Arrays]] = {}


class SegmentationArrays(Dataset):
    """(image (C, H, W) uint8, mask (H, W) uint8) pairs, optionally through a JointTransform;
    ``repeats`` > 1 lists every image that many times (each draw gets its own random crop)."""

    def __init__(self, images: np.ndarray, masks: np.ndarray, transform: JointTransform | None = None,
                 repeats: int = 1):
        self.images = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)  # (N, C, H, W)
        self.masks = torch.from_numpy(np.ascontiguousarray(masks))  # (N, H, W)
        self.transform = transform
        self.repeats = int(repeats)

    def __len__(self) -> int:
        return len(self.images) * self.repeats

    def __getitem__(self, i: int):
        i = i % len(self.images)
        image, mask = self.images[i], self.masks[i]
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        return image, mask


class SegmentationDataModule(SplitDataModule):
    # -- what the data is (subclasses set these) ---------------------------------------------
    input_shape: tuple[int, int, int] = (3, 64, 64)
    num_classes: int = 2
    class_names: tuple[str, ...] = ()
    palette: tuple[tuple[int, int, int], ...] = ()  # one RGB colour per class, for overlays
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.25,)
    ignore_index: int = 255
    has_val_split: bool = False  # the data set ships its own validation split
    flips: tuple[str, ...] = ("h",)  # "h", "v", "rot90": the symmetries of the data
    default_crop: int | None = None

    def __init__(self, path: str | None = None, val_fraction: float = 0.2, subset: int | None = None,
                 val_subset: int | None = None, num_workers: int = 0, batch_size: int = 8,
                 augment: float = 1.0, seed: int = 0, crop_size: int | Sequence[int] | None = None,
                 scale_range: Sequence[float] = (0.75, 1.5), repeats: int = 1,
                 eval_batch_size: int | None = None):
        super().__init__()
        self.set_split_options(path, val_fraction, subset, val_subset, num_workers, batch_size, eval_batch_size,
                               augment, seed)
        if repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {repeats}")
        if len(scale_range) != 2 or not 0 < scale_range[0] <= scale_range[1]:
            raise ValueError(f"scale_range is [low, high] with 0 < low <= high, got {scale_range}")
        self.crop_size = crop_size if crop_size is not None else self.default_crop
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.repeats = int(repeats)
        self.train_set = self.val_set = self.test_set = None
        self._val_arrays: Arrays | None = None

    # -- subclasses -------------------------------------------------------------------------
    def decode(self, path: str) -> dict[str, Arrays]:
        raise NotImplementedError

    # -- finding and caching the data ----------------------------------------------------------
    def _cache_key(self, path: str) -> tuple:
        return (type(self).__name__, source_key(path))  # every file read: a changed folder is read again

    def arrays(self) -> dict[str, Arrays]:
        """Decoded splits, from memory, then the disk cache, then the source."""
        path = self.resolve_path()
        key = self._cache_key(path)
        if key in _MEMORY:
            return _MEMORY[key]
        digest = hashlib.sha1(repr(key).encode()).hexdigest()[:16]
        file = os.path.join(cache_dir(), f"{type(self).__name__.lower()}-{digest}.npz")
        if os.path.isfile(file):
            with np.load(file) as z:
                splits = {k[:-7]: (z[k], z[k[:-7] + "_masks"]) for k in z.files if k.endswith("_images")}
        else:
            splits = self.decode(path)
            tmp = f"{file}.{os.getpid()}.tmp.npz"
            np.savez(tmp, **{f"{s}_images": x for s, (x, _) in splits.items()},
                     **{f"{s}_masks": y for s, (_, y) in splits.items()})
            os.replace(tmp, file)
        _MEMORY[key] = splits
        return splits

    def prepare_data(self) -> None:
        self.arrays()

    # -- splits -----------------------------------------------------------------------------
    def train_transform(self) -> JointTransform:
        a = self.augment
        lo, hi = self.scale_range
        return JointTransform(
            crop_size=self.crop_size,
            scale_range=(1 - (1 - lo) * a, 1 + (hi - 1) * a),
            hflip=0.5 * a if "h" in self.flips else 0.0,
            vflip=0.5 * a if "v" in self.flips else 0.0,
            rot90=0.75 * a if "rot90" in self.flips and self.crop_size is not None else 0.0,
            ignore_index=self.ignore_index,
        )

    def split_indices(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        order = np.random.default_rng(self.seed).permutation(n)
        n_val = max(1, int(round(self.val_fraction * n)))
        return np.sort(order[n_val:]), np.sort(order[:n_val])

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        splits = self.arrays()
        tr_x, tr_y = splits["train"]
        if self.has_val_split:
            va_x, va_y = splits["val"]
            tr_idx, va_idx = np.arange(len(tr_x)), np.arange(len(va_x))
        else:
            va_x, va_y = tr_x, tr_y
            tr_idx, va_idx = self.split_indices(len(tr_x))
        if self.subset is not None and self.subset < len(tr_idx):
            pick = np.random.default_rng(self.seed + 1).choice(len(tr_idx), self.subset, replace=False)
            tr_idx = tr_idx[np.sort(pick)]
        if self.val_subset is not None and self.val_subset < len(va_idx):
            va_idx = va_idx[np.linspace(0, len(va_idx) - 1, self.val_subset).round().astype(int)]
        self.train_set = SegmentationArrays(tr_x[tr_idx], tr_y[tr_idx], self.train_transform(), self.repeats)
        self._val_arrays = (va_x[va_idx], va_y[va_idx])
        self.val_set = SegmentationArrays(*self._val_arrays)
        if "test" in splits:
            self.test_set = SegmentationArrays(*splits["test"])

    # -- batches (loaders come from SplitDataModule) -----------------------------------------
    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) -> normalised float (B, C, H, W)."""
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x.float() / 255.0 - mean) / std

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        x, y = batch  # (B, C, H, W) uint8, (B, H, W) uint8
        return self.normalize(x), y.long()

    # -- pictures ---------------------------------------------------------------------------
    def overlay_samples(self, n: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
        """``n`` fixed validation images (evenly spaced) as (image (H, W, C) uint8, mask (H, W)
        uint8) pairs, for prediction overlays."""
        if self._val_arrays is None:
            self.setup("fit")
        x, y = self._val_arrays
        idx = np.unique(np.linspace(0, len(x) - 1, min(n, len(x))).round().astype(int))
        return [(x[i], y[i]) for i in idx]
