"""CIFAR-10 (Krizhevsky, 2009): 60,000 32x32 colour images of 10 classes.

Reads, in order of preference: ``path`` (an ImageFolder tree ``train/<class>/*.jpg`` and
``test/<class>/*.jpg``, or a zip of one, such as the shared ``cifar10-jpeg.zip``), or, with no
path, torchvision's download where a network exists. The images are decoded once in
``prepare_data`` and cached as uint8 arrays in ``$NASFORGE_CACHE`` (default
``~/.cache/nasforge``), keyed by every file read (names, sizes, modification times); ``setup`` only
loads the cache. Validation is a seeded ``val_fraction`` of the training images; the test
split is the official one.
"""
from __future__ import annotations

import os
import re

import numpy as np

from .files import decode_image, open_tree
from .data_cache import cache_dir, source_key
from .image_data import ImageArrayDataModule

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_LOADED: dict[str, tuple] = {}  # cache file -> decoded arrays, for this process
_ENTRY = re.compile(r"(?:^|.*/)(train|test)/([^/]+)/[^/]+\.(?:jpe?g|png)$", re.IGNORECASE)


def read_image_folder(path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Decode a ``split/class/image`` tree (folder or zip) into {split: (images, labels)}."""
    items: dict[str, list[tuple[str, str]]] = {"train": [], "test": []}  # split -> (class, name)
    names, read = open_tree(path, "CIFAR-10")
    for name in names:
        m = _ENTRY.match(name)
        if m:
            items[m.group(1).lower()].append((m.group(2), name))
    if not items["train"]:
        raise ValueError(f"{path}: no images under train/<class>/ (expected an ImageFolder tree)")
    classes = sorted({c for c, _ in items["train"]})
    index = {c: i for i, c in enumerate(classes)}
    out = {}
    for split, rows in items.items():
        if not rows:
            continue
        rows.sort(key=lambda r: (r[0], r[1]))
        x = np.stack([decode_image(read(name), "RGB") for _, name in rows])
        y = np.array([index[c] for c, _ in rows], dtype=np.int64)
        out[split] = (x, y)
    return out


class CIFAR10DataModule(ImageArrayDataModule):
    input_shape = (3, 32, 32)
    num_classes = 10
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)
    flip = True

    def _cache_file(self) -> str:
        if self.path is None:
            return os.path.join(cache_dir(), "cifar10-download.npz")
        return os.path.join(cache_dir(), f"cifar10-{source_key(self.path)}.npz")  # every file read

    def prepare_data(self) -> None:
        cache = self._cache_file()
        if os.path.exists(cache):
            return
        if self.path is None:
            from torchvision.datasets import CIFAR10

            root = os.path.join(cache_dir(), "cifar10-torchvision")
            tr, te = CIFAR10(root, train=True, download=True), CIFAR10(root, train=False, download=True)
            arrays = dict(train_x=tr.data, train_y=np.array(tr.targets), test_x=te.data, test_y=np.array(te.targets))
        else:
            splits = read_image_folder(self.path)
            arrays = dict(train_x=splits["train"][0], train_y=splits["train"][1])
            if "test" in splits:
                arrays.update(test_x=splits["test"][0], test_y=splits["test"][1])
        tmp = f"{cache}.{os.getpid()}.tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, cache)  # atomic: a concurrent reader sees all or nothing

    def load_arrays(self):
        cache = self._cache_file()
        if cache not in _LOADED:  # one read per process: a worker's later trials reuse the arrays
            if not os.path.exists(cache):
                self.prepare_data()
            with np.load(cache) as z:
                test = (z["test_x"], z["test_y"]) if "test_x" in z else (None, None)
                arrays = (z["train_x"], z["train_y"], *test)
            for a in arrays:
                if a is not None:
                    a.setflags(write=False)  # shared by trials: nobody may change them
            _LOADED.clear()  # keep one data set in memory at a time
            _LOADED[cache] = arrays
        return _LOADED[cache]
