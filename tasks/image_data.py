"""Images held as uint8 arrays, split with a seeded generator, augmented batch-wise.

The base of the classification data modules. Subclasses implement ``load_arrays()`` returning
``(train_x, train_y, test_x, test_y)`` with images as ``(N, H, W, C)`` uint8 and labels as
int64; everything else is here: a seeded train/val split (``val_fraction``), optional seeded
subsets, and augmentation (random crop with zero padding + horizontal flip) applied to whole
batches after they reach the device, which keeps the loader a plain tensor slice instead of a
Python transform per image. ``augment`` in [0, 1] scales the strength: the crop padding is
``round(augment * H / 8)`` pixels and flips happen with probability ``augment / 2``.
The split tensors are made once per process for the same arrays and split settings: a worker's
later trials reuse them instead of copying the data set again.
"""
from __future__ import annotations

import os

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset


def random_crop_flip(x: torch.Tensor, pad: int, flip_p: float, generator: torch.Generator | None = None):
    """Batch-wise random crop (zero padding ``pad``) and horizontal flip. x: (B, C, H, W)."""
    B, C, H, W = x.shape
    if pad > 0:
        xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))  # (B, C, H+2p, W+2p)
        oy = torch.randint(0, 2 * pad + 1, (B,), device=x.device, generator=generator)
        ox = torch.randint(0, 2 * pad + 1, (B,), device=x.device, generator=generator)
        rows = oy[:, None] + torch.arange(H, device=x.device)  # (B, H)
        cols = ox[:, None] + torch.arange(W, device=x.device)  # (B, W)
        b = torch.arange(B, device=x.device)[:, None, None]
        x = xp.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if flip_p > 0:
        flip = torch.rand(B, device=x.device, generator=generator) < flip_p
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    # The gather above leaves channels-last strides, and with one channel `.contiguous()` keeps
    # them (stride 1 on C): torch then treats the batch as channels-last, every activation of the
    # network follows, and oneDNN's convolution backward corrupted the heap on such a NASNet
    # (torch 2.14.1, AMD EPYC: `double free or corruption`). A network gets plain NCHW strides.
    if x.dim() == 4 and x.stride() != (C * H * W, H * W, W, 1):
        x = x.clone(memory_format=torch.contiguous_format)
    return x


def seeded_loader(ds, shuffle: bool, batch_size: int, seed: int, num_workers: int,
                  collate_fn=None) -> DataLoader:
    """A DataLoader whose shuffling order is a function of ``seed``; training loaders drop the
    last incomplete batch (BatchNorm on a batch of one fails)."""
    g = torch.Generator().manual_seed(seed)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=g if shuffle else None,
                      num_workers=num_workers, persistent_workers=num_workers > 0,
                      drop_last=shuffle and len(ds) > batch_size, collate_fn=collate_fn)


class SplitDataModule(L.LightningDataModule):
    """Loaders over ``train_set`` / ``val_set`` / ``test_set`` (the test loader falls back to the
    validation set), shuffled by ``seed``; subclasses fill the sets in ``setup``."""

    train_set = val_set = test_set = None
    seed: int = 0
    num_workers: int = 0
    batch_size: int = 64
    eval_batch_size: int = 256
    default_file: str | None = None  # file under the shared data folder, read when no path is given
    path_holds = "a folder or zip"  # what ``path=`` names, for the message when there is none

    def resolve_path(self) -> str:
        """``path``, else ``default_file`` under $NASFORGE_DATA or ../shared/data, as an absolute
        path that exists; else FileNotFoundError saying what to pass."""
        from .task_factory import shared_file

        path = self.path or (shared_file(self.default_file) if self.default_file else None)
        if path is None:
            where = (f"{self.default_file!r} is not under $NASFORGE_DATA or ../shared/data; "
                     if self.default_file else "")
            raise FileNotFoundError(f"{type(self).__name__}: no data path given; {where}pass path= ({self.path_holds})")
        path = os.path.abspath(os.path.expanduser(path))
        if not os.path.exists(path):
            raise FileNotFoundError(f"{type(self).__name__}: {path!r} does not exist")
        return path

    def set_split_options(self, path: str | None, val_fraction: float, subset: int | None, val_subset: int | None,
                          num_workers: int, batch_size: int, eval_batch_size: int | None, augment: float,
                          seed: int) -> None:
        """Check and keep the options every split data module takes (``eval_batch_size``
        defaults to ``batch_size``)."""
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        if not 0.0 <= augment <= 1.0:
            raise ValueError(f"augment must be in [0, 1], got {augment}")
        self.path = path
        self.val_fraction = val_fraction
        self.subset = subset
        self.val_subset = val_subset
        self.num_workers = num_workers
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.augment = float(augment)
        self.seed = seed

    def _loader(self, ds, shuffle: bool, batch_size: int) -> DataLoader:
        return seeded_loader(ds, shuffle, batch_size, self.seed, self.num_workers)

    def train_dataloader(self):
        return self._loader(self.train_set, True, self.batch_size)

    def val_dataloader(self):
        return self._loader(self.val_set, False, self.eval_batch_size)

    def test_dataloader(self):
        return self._loader(self.test_set if self.test_set is not None else self.val_set, False,
                            self.eval_batch_size)


# (class, seed, val_fraction, subset, val_subset) -> (source arrays, train, val, test datasets)
_SPLITS: dict[tuple, tuple] = {}


class ImageArrayDataModule(SplitDataModule):
    input_shape: tuple[int, int, int] = (3, 32, 32)
    num_classes: int = 10
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.25, 0.25, 0.25)
    flip: bool = True  # horizontal flips make sense for the data set

    def __init__(self, path: str | None = None, val_fraction: float = 0.2, subset: int | None = None,
                 val_subset: int | None = None, num_workers: int = 0, batch_size: int = 64,
                 augment: float = 1.0, seed: int = 0, eval_batch_size: int | None = None):
        super().__init__()
        self.set_split_options(path, val_fraction, subset, val_subset, num_workers, batch_size,
                               eval_batch_size or max(256, batch_size), augment, seed)
        self.train_set = self.val_set = self.test_set = None

    # -- subclasses -----------------------------------------------------------------------
    def load_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        raise NotImplementedError

    # -- Lightning hooks ------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        arrays = self.load_arrays()
        # the split tensors of the same arrays and split settings are reused by a worker's later
        # trials (a CIFAR-sized copy is 150 MB and took 4-14 s per trial on this busy machine);
        # nothing writes to them
        key = (type(self).__qualname__, self.seed, self.val_fraction, self.subset, self.val_subset)
        hit = _SPLITS.get(key)
        if hit is None or hit[0] is not arrays[0]:  # same arrays object (the per-process cache)
            self._split(*arrays)
            _SPLITS[key] = (arrays[0], self.train_set, self.val_set, self.test_set)
        else:
            self.train_set, self.val_set, self.test_set = hit[1:]

    def _split(self, train_x, train_y, test_x, test_y) -> None:
        g = np.random.default_rng(self.seed)
        order = g.permutation(len(train_x))
        n_val = max(1, int(round(self.val_fraction * len(train_x))))
        val_idx, tr_idx = order[:n_val], order[n_val:]
        if self.subset is not None:
            tr_idx = tr_idx[: self.subset]
        if self.val_subset is not None:
            val_idx = val_idx[: self.val_subset]
        self.train_set = self._tensors(train_x[np.sort(tr_idx)], train_y[np.sort(tr_idx)])
        self.val_set = self._tensors(train_x[np.sort(val_idx)], train_y[np.sort(val_idx)])
        if test_x is not None:
            self.test_set = self._tensors(test_x, test_y)

    @staticmethod
    def _tensors(x: np.ndarray, y: np.ndarray) -> TensorDataset:
        own = lambda a: a if a.flags.writeable else a.copy()  # noqa: E731 - shared arrays are read-only
        # (N, C, H, W) uint8 with plain NCHW strides (`.contiguous()` would keep channels-last ones when C == 1)
        xt = torch.from_numpy(own(np.ascontiguousarray(x))).permute(0, 3, 1, 2)
        xt = xt.clone(memory_format=torch.contiguous_format)
        return TensorDataset(xt, torch.from_numpy(own(np.asarray(y, dtype=np.int64))))

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        x, y = batch  # (B, C, H, W) uint8, (B,)
        x = x.float().div_(255.0)
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.training and self.augment > 0:
            pad = int(round(self.augment * self.input_shape[1] / 8))
            x = random_crop_flip(x, pad, self.augment / 2 if self.flip else 0.0)
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std, y
