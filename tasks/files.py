"""Reading a data set's files: a folder or a zip of one as names and bytes, and images decoded to
arrays. Every reader of a folder-or-zip data set (CIFAR-10's ImageFolder tree, CamVid, ISBI,
COCO-format boxes) opens it here, so a zip with one top folder and a plain folder read alike.
numpy and PIL are imported when an image is decoded: the sweep-file check opens trees before.
"""
from __future__ import annotations

import io
import os
import zipfile
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import numpy as np


def open_tree(path: str, what: str) -> tuple[list[str], Callable[[str], bytes]]:
    """(every file's name relative to ``path``, "/"-separated; a function from such a name to its
    bytes) of a folder or a zip. Anything else: FileNotFoundError naming ``what`` and ``path``."""
    if os.path.isdir(path):
        names = [os.path.relpath(os.path.join(d, f), path).replace(os.sep, "/")
                 for d, _, fs in os.walk(path) for f in fs]

        def read(name: str) -> bytes:
            with open(os.path.join(path, name), "rb") as f:
                return f.read()

        return names, read
    if zipfile.is_zipfile(path):
        zf = zipfile.ZipFile(path)
        return zf.namelist(), zf.read
    raise FileNotFoundError(f"{what} path {path!r} is neither a folder nor a zip")


def decode_image(data: bytes, mode: str) -> np.ndarray:
    """An encoded image (PNG, JPEG, TIFF) as a uint8 array in PIL ``mode`` ("RGB": (H, W, 3), "L": (H, W))."""
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert(mode), dtype=np.uint8)
