"""Data sets a user points at a folder: `imagefolder` (classification) and `maskfolder` (segmentation).

Nothing about the data is a constant: the classes (sub-folder names), the channels (grey when every
image is grey, else RGB) and the image size are read from the files, and exposed as ``num_classes``
and ``input_shape`` once ``prepare_data`` has run (the ShapedDataModule protocol of `protocols.py`),
so the head gets the right number of outputs and the cost is measured at the real size.

* ``imagefolder``: ``train/<class>/<image>``, plus optional ``val/<class>/...`` (else a seeded
  ``val_fraction`` of train) and ``test/<class>/...``. Images of mixed sizes are refused, naming
  the file, unless ``image_size`` (H, W or one int) resizes them all; ``crop`` then takes a
  centred square of that side.
* ``maskfolder``: ``images/<name>.<ext>`` and ``masks/<name>.png`` with the same stem; a mask's
  pixel value is the class index (``classes`` lists the names), ``ignore_index`` marks pixels
  without a label; a mask value that is neither is refused naming the file.

Decoded arrays are cached on disk (``$NASFORGE_CACHE``) under a key made of every file read: its
name, size and modification time (`source_key`), so adding, removing or changing one file reads
the folder again.
"""
from __future__ import annotations

import hashlib
import os
from typing import Sequence

import numpy as np

from .data_cache import cache_dir, source_key
from .image_data import ImageArrayDataModule
from .segmentation_data import Arrays, SegmentationDataModule

IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _size(image_size: int | Sequence[int] | None) -> tuple[int, int] | None:
    if image_size is None:
        return None
    if isinstance(image_size, int):
        return (image_size, image_size)
    h, w = image_size
    return (int(h), int(w))


def read_images(files: list[str], size: tuple[int, int] | None, crop: int | None, grey: bool | None = None):
    """(N, H, W, C) uint8 from ``files``: resized to ``size`` (H, W) when given, else all must share
    the first file's size; then a centred ``crop``. ``grey`` None: grey only if every image is."""
    from PIL import Image

    ims = [Image.open(f) for f in files]
    try:
        if grey is None:
            grey = all(im.mode in ("L", "1", "I;16", "I") for im in ims)
        out = []
        for f, im in zip(files, ims):
            im = im.convert("L" if grey else "RGB")
            if size is not None and im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.BILINEAR)
            out.append(np.asarray(im, dtype=np.uint8))
            if out[-1].shape != out[0].shape:
                raise ValueError(f"{f}: image size {out[-1].shape[1]}x{out[-1].shape[0]} differs from "
                                 f"{files[0]} ({out[0].shape[1]}x{out[0].shape[0]}); give image_size to resize all")
    finally:
        for im in ims:
            im.close()
    x = np.stack(out)
    x = x[..., None] if x.ndim == 3 else x  # (N, H, W, C)
    if crop is not None:
        H, W = x.shape[1:3]
        if crop > min(H, W):
            raise ValueError(f"crop {crop} is larger than the images ({W}x{H})")
        top, left = (H - crop) // 2, (W - crop) // 2
        x = x[:, top:top + crop, left:left + crop]
    return np.ascontiguousarray(x)


def _cached(kind: str, key: str, decode) -> dict[str, np.ndarray]:
    file = os.path.join(cache_dir(), f"{kind}-{key}.npz")
    if os.path.isfile(file):
        with np.load(file) as z:
            return {k: z[k] for k in z.files}
    arrays = decode()
    tmp = f"{file}.{os.getpid()}.tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, file)  # atomic: a concurrent reader sees all or nothing
    return arrays


class ImageFolderDataModule(ImageArrayDataModule):
    """Classification on ``train/<class>/*`` (+ optional ``val/``, ``test/``); see the module docstring."""

    input_shape = None  # learnt from the data in prepare_data
    num_classes = None

    def __init__(self, path: str, image_size: int | Sequence[int] | None = None, crop: int | None = None,
                 val_fraction: float = 0.2, subset: int | None = None, val_subset: int | None = None,
                 num_workers: int = 0, batch_size: int = 64, augment: float = 1.0, seed: int = 0,
                 eval_batch_size: int | None = None, flip: bool = True):
        super().__init__(path=path, val_fraction=val_fraction, subset=subset, val_subset=val_subset,
                         num_workers=num_workers, batch_size=batch_size, augment=augment, seed=seed,
                         eval_batch_size=eval_batch_size)
        self.image_size, self.crop, self.flip = _size(image_size), crop, flip
        self._arrays: dict[str, np.ndarray] | None = None

    def _listing(self) -> tuple[list[str], dict[str, list[tuple[str, int]]]]:
        root = os.path.abspath(os.path.expanduser(self.path))
        train = os.path.join(root, "train")
        if not os.path.isdir(train):
            raise FileNotFoundError(f"imagefolder: {root!r} has no train/ folder (train/<class>/<image>)")
        classes = sorted(d for d in os.listdir(train) if os.path.isdir(os.path.join(train, d)))
        if not classes:
            raise ValueError(f"imagefolder: {train!r} has no class folders")
        splits: dict[str, list[tuple[str, int]]] = {}
        for split in ("train", "val", "test"):
            folder = os.path.join(root, split)
            if not os.path.isdir(folder):
                continue
            rows = []
            for c in sorted(os.listdir(folder)):
                if not os.path.isdir(os.path.join(folder, c)):
                    continue
                if c not in classes:
                    raise ValueError(f"imagefolder: {split}/{c} is not a class of train/ ({', '.join(classes)})")
                names = sorted(os.listdir(os.path.join(folder, c)))
                rows += [(os.path.join(folder, c, f), classes.index(c)) for f in names if f.lower().endswith(IMAGE_EXT)]
            if not rows:
                raise ValueError(f"imagefolder: no images under {folder}/<class>/")
            splits[split] = rows
        return classes, splits

    def prepare_data(self) -> None:
        if self._arrays is not None:
            return
        classes, splits = self._listing()
        key = hashlib.sha1(f"{source_key(self.path)}|{self.image_size}|{self.crop}".encode()).hexdigest()[:16]

        def decode() -> dict[str, np.ndarray]:
            files = [f for rows in splits.values() for f, _ in rows]
            x = read_images(files, self.image_size, self.crop)
            out, start = {"classes": np.array(classes)}, 0
            for split, rows in splits.items():
                out[f"{split}_x"] = x[start:start + len(rows)]
                out[f"{split}_y"] = np.array([y for _, y in rows], dtype=np.int64)
                start += len(rows)
            return out

        self._arrays = _cached("imagefolder", key, decode)
        x = self._arrays["train_x"]
        self.class_names = [str(c) for c in self._arrays["classes"]]
        self.num_classes = len(self.class_names)
        self.input_shape = (int(x.shape[3]), int(x.shape[1]), int(x.shape[2]))  # (C, H, W)
        stats = x.reshape(-1, x.shape[3]).astype(np.float64) / 255.0
        self.mean = tuple(float(v) for v in stats.mean(0))
        self.std = tuple(max(float(v), 1e-3) for v in stats.std(0))

    def load_arrays(self):
        self.prepare_data()
        a = self._arrays
        test = (a["test_x"], a["test_y"]) if "test_x" in a else (None, None)
        return a["train_x"], a["train_y"], *test

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.prepare_data()
        if "val_x" not in self._arrays:
            return super().setup(stage)  # a seeded val_fraction of train
        a = self._arrays
        tr = np.arange(len(a["train_x"]))[: self.subset] if self.subset else np.arange(len(a["train_x"]))
        va = np.arange(len(a["val_x"]))[: self.val_subset] if self.val_subset else np.arange(len(a["val_x"]))
        self.train_set = self._tensors(a["train_x"][tr], a["train_y"][tr])
        self.val_set = self._tensors(a["val_x"][va], a["val_y"][va])
        if "test_x" in a:
            self.test_set = self._tensors(a["test_x"], a["test_y"])


class MaskFolderDataModule(SegmentationDataModule):
    """Segmentation on ``images/`` + ``masks/`` (same stems); see the module docstring."""

    input_shape = None  # learnt from the data in prepare_data
    num_classes = None
    flips = ("h", "v")

    def __init__(self, path: str, classes: Sequence[str] = ("background", "foreground"), ignore_index: int = 255,
                 image_size: int | Sequence[int] | None = None, val_fraction: float = 0.2,
                 subset: int | None = None, val_subset: int | None = None, num_workers: int = 0,
                 batch_size: int = 8, augment: float = 1.0, seed: int = 0, crop_size: int | None = None,
                 scale_range: Sequence[float] = (0.75, 1.5), repeats: int = 1, eval_batch_size: int | None = None):
        super().__init__(path=path, val_fraction=val_fraction, subset=subset, val_subset=val_subset,
                         num_workers=num_workers, batch_size=batch_size, augment=augment, seed=seed,
                         crop_size=crop_size, scale_range=scale_range, repeats=repeats,
                         eval_batch_size=eval_batch_size)
        if len(classes) < 1:
            raise ValueError("maskfolder: classes lists at least one class name")
        self.class_names, self.ignore_index, self.image_size = tuple(classes), int(ignore_index), _size(image_size)
        self.palette = tuple((int(37 * i) % 256, int(91 * i + 60) % 256, int(151 * i + 120) % 256)
                             for i in range(len(classes)))

    def _cache_key(self, path: str) -> tuple:
        return (type(self).__name__, source_key(path), self.image_size, self.class_names, self.ignore_index)

    def decode(self, path: str) -> dict[str, Arrays]:
        images, masks = os.path.join(path, "images"), os.path.join(path, "masks")
        if not (os.path.isdir(images) and os.path.isdir(masks)):
            raise FileNotFoundError(f"maskfolder: {path!r} needs images/ and masks/ folders")
        by_stem = {os.path.splitext(f)[0]: os.path.join(masks, f) for f in os.listdir(masks)
                   if f.lower().endswith(IMAGE_EXT)}
        pairs = [(os.path.join(images, f), by_stem.get(os.path.splitext(f)[0])) for f in sorted(os.listdir(images))
                 if f.lower().endswith(IMAGE_EXT)]
        unmatched = [img for img, m in pairs if m is None]
        if not pairs or unmatched:
            first = unmatched[0] if unmatched else images
            raise ValueError(f"maskfolder: {first} has no mask of the same name in {masks}")
        x = read_images([img for img, _ in pairs], self.image_size, None)
        from PIL import Image

        ys = []
        for _, m in pairs:
            with Image.open(m) as im:
                if self.image_size is not None:
                    im = im.resize((self.image_size[1], self.image_size[0]), Image.NEAREST)
                y = np.asarray(im.convert("L") if im.mode not in ("L", "P") else im, dtype=np.uint8)
            bad = np.unique(y[(y >= len(self.class_names)) & (y != self.ignore_index)])
            if bad.size:
                raise ValueError(f"maskfolder: {m} has values {bad[:5].tolist()} that are neither a class index "
                                 f"(0..{len(self.class_names) - 1}) nor ignore_index {self.ignore_index}")
            if y.shape != x.shape[1:3]:
                raise ValueError(f"maskfolder: {m} is {y.shape[1]}x{y.shape[0]}, its image {x.shape[2]}x{x.shape[1]}")
            ys.append(y)
        return {"train": (x, np.stack(ys))}

    def prepare_data(self) -> None:
        x = self.arrays()["train"][0]
        self.num_classes = len(self.class_names)
        self.input_shape = (int(x.shape[3]), int(x.shape[1]), int(x.shape[2]))  # (C, H, W)
        if self.crop_size is None:  # training crops of the whole size keep a batch's shapes equal
            self.crop_size = (int(x.shape[1]), int(x.shape[2]))
        stats = x.reshape(-1, x.shape[3]).astype(np.float64) / 255.0
        self.mean = tuple(float(v) for v in stats.mean(0))
        self.std = tuple(max(float(v), 1e-3) for v in stats.std(0))

    def setup(self, stage: str | None = None) -> None:
        self.prepare_data()
        super().setup(stage)
