"""ISBI-2012 EM membrane segmentation (Arganda-Carreras et al.): the classic U-Net data set.

30 grayscale 512x512 serial-section electron-microscopy images with binary masks (0 = membrane,
255 = cell), laid out as ``train/image/N.png`` and ``train/label/N.png`` in a folder or a zip
(the shared ``isbi2012-membrane.zip``). Classes: 0 = membrane, 1 = cell. There is no labelled
test split, so validation is a seeded ``val_fraction`` of the 30 images. The tissue has no
preferred orientation, so training uses horizontal and vertical flips and 90-degree rotations;
``crop_size`` (default 128) sets the training crops, ``repeats`` how many crops of each image
one epoch draws. Cells cover about 78 % of the pixels, so predicting "cell" everywhere already
gives a cell IoU of about 0.78; a model has to beat that.
"""
from __future__ import annotations

import re

import numpy as np

from .files import decode_image, open_tree
from .segmentation_data import Arrays, SegmentationDataModule

CLASSES = ("membrane", "cell")
PALETTE = ((255, 64, 64), (64, 160, 255))
_IMAGE = re.compile(r"(?:^|.*/)image/(\d+)\.(?:png|tif{1,2})$", re.IGNORECASE)


def read_isbi(path: str) -> dict[str, Arrays]:
    """Decode the ISBI folder or zip into {"train": (images (N, H, W, 1), masks (N, H, W))}."""
    names, read = open_tree(path, "ISBI")
    pairs = []
    for n in names:
        m = _IMAGE.match(n)
        if m:
            label = n[: m.start(1) - len("image/")] + "label/" + n[m.start(1):]
            if label in names:
                pairs.append((int(m.group(1)), n, label))
    if not pairs:
        raise ValueError(f"{path}: no image/N.png with a matching label/N.png")
    pairs.sort()
    x = np.stack([decode_image(read(n), "L") for _, n, _ in pairs])[..., None]  # (N, H, W, 1)
    raw = np.stack([decode_image(read(lab), "L") for _, _, lab in pairs])  # (N, H, W), 0 or 255
    y = (raw >= 128).astype(np.uint8)  # 0 membrane, 1 cell
    return {"train": (x, y)}


class ISBIDataModule(SegmentationDataModule):
    input_shape = (1, 512, 512)
    num_classes = 2
    class_names = CLASSES
    palette = PALETTE
    mean = (0.495,)
    std = (0.173,)
    has_val_split = False
    default_file = "isbi2012-membrane.zip"
    flips = ("h", "v", "rot90")
    default_crop = 128

    def decode(self, path: str) -> dict[str, Arrays]:
        return read_isbi(path)
