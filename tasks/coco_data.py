"""Object-detection data: any COCO-format data set (``coco``), and Penn-Fudan (``pennfudan``).

`CocoDetectionDataModule` reads a folder or zip with images and one COCO annotations file (see
`coco_format.py`; a malformed file or entry is an `AnnotationError` of one line naming both). The
images are decoded once per process and resized so that their shorter side is ``image_size``
(``max_size`` caps the longer one), boxes and all, by ``torchvision.transforms.v2`` on
``tv_tensors`` - no box arithmetic is written here. Splits: the file's own ``splits``
({"train": [ids], "val": [ids]}, as in the shared Penn-Fudan zip) when it has them, else a
seeded ``val_fraction`` of the images; ``subset`` is a seeded subset of the training images,
``val_subset`` evenly spaced validation images (the same for every seed, so trials compare).

Training images are augmented, scaled by ``augment`` in [0, 1]: a horizontal flip (probability
``augment / 2``), a random affine zoom of +-25 % and shift of +-10 % of the size (times
``augment``), then `SanitizeBoundingBoxes` drops boxes pushed out of the picture. A batch is
(list of images (3, H, W) float in [0, 1], list of {"boxes": (N, 4) xyxy, "labels": (N,)}):
images keep their own sizes; the detector batches and normalises them itself.

``num_classes`` is the number of categories (labels 1..K; 0 is the background): it is read from
the annotations file's ``categories`` (the JSON only, no image) the first time it is asked for.
``input_shape`` is (3, image_size, image_size), the size the cost model measures.
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .coco_format import CocoSet, read_coco
from .image_data import SplitDataModule, seeded_loader

Item = tuple[
    torch.Tensor, torch.Tensor, torch.Tensor
]  # image (3, H, W) uint8, boxes (N, 4) xyxy, labels (N,)
_MEMORY: dict[tuple, tuple[CocoSet, list[Item]]] = {}


def collate_detection(batch):
    """[(image, target), ...] -> (images, targets) as lists: detection images differ in size."""
    images, targets = zip(*batch)
    return list(images), list(targets)


def _decode(coco: CocoSet, image_size: int, max_size: int | None) -> list[Item]:
    """Every image as uint8 (3, H, W) with its boxes, shorter side resized to ``image_size``."""
    from PIL import Image
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    resize = v2.Compose(
        [
            v2.ConvertBoundingBoxFormat("XYXY"),
            v2.Resize(image_size, max_size=max_size, antialias=True),
        ]
    )
    items = []
    for img in coco.images:
        with Image.open(io.BytesIO(coco.read(img.file_name))) as im:
            pixels = torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.uint8).copy()).permute(
                2, 0, 1
            )
        boxes = tv_tensors.BoundingBoxes(
            torch.tensor(img.boxes, dtype=torch.float32).reshape(-1, 4),
            format="XYWH",
            canvas_size=(img.height, img.width),
        )
        image, boxes = resize(tv_tensors.Image(pixels), boxes)
        items.append(
            (
                image.as_subclass(torch.Tensor),
                boxes.as_subclass(torch.Tensor),
                torch.tensor(img.labels, dtype=torch.int64),
            )
        )
    return items


class DetectionImages(Dataset):
    """(image float (3, H, W) in [0, 1], {"boxes", "labels"}) pairs, through a v2 transform."""

    def __init__(self, items: list[Item], transform=None):
        self.items = items
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        from torchvision import tv_tensors
        from torchvision.transforms.v2 import functional as TF

        image, boxes, labels = self.items[i]
        target: dict[str, Any] = {"boxes": boxes, "labels": labels}
        if self.transform is not None:
            img = tv_tensors.Image(image)
            bb = tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=tuple(image.shape[-2:]))
            img, target = self.transform(img, {"boxes": bb, "labels": labels})
            image = img.as_subclass(torch.Tensor)
            target = {
                "boxes": target["boxes"].as_subclass(torch.Tensor),
                "labels": target["labels"],
            }
        return TF.to_dtype(image, torch.float32, scale=True), target


class CocoDetectionDataModule(SplitDataModule):
    path_holds = "a folder or zip with images and a COCO annotations file"

    def __init__(
        self,
        path: str | None = None,
        annotations: str | None = None,
        image_size: int = 160,
        max_size: int | None = None,
        val_fraction: float = 0.2,
        subset: int | None = None,
        val_subset: int | None = None,
        num_workers: int = 0,
        batch_size: int = 4,
        augment: float = 1.0,
        seed: int = 0,
        eval_batch_size: int | None = None,
    ):
        super().__init__()
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 32:
            raise ValueError(
                f"image_size (the shorter side) must be an integer >= 32, got {image_size!r}"
            )
        if max_size is not None and max_size <= image_size:
            raise ValueError(f"max_size must exceed image_size ({image_size}), got {max_size}")
        self.set_split_options(
            path,
            val_fraction,
            subset,
            val_subset,
            num_workers,
            batch_size,
            eval_batch_size,
            augment,
            seed,
        )
        self.annotations = annotations
        self.image_size = image_size
        self.max_size = max_size
        self.input_shape = (3, image_size, image_size)
        self._categories: list[str] | None = None
        self._coco: CocoSet | None = None
        self._loaded: tuple[CocoSet, list[Item]] | None = None
        self._val_items: list[Item] | None = None

    # -- what the data is -------------------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        if self._categories is None:  # the annotations file only: no image is decoded for this
            self._categories = self.coco().categories
        return self._categories

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def coco(self) -> CocoSet:
        """The checked annotations (read once per data module)."""
        if self._coco is None:
            self._coco = (
                self._loaded[0]
                if self._loaded
                else read_coco(self.resolve_path(), self.annotations)
            )
        return self._coco

    def _load(self) -> tuple[CocoSet, list[Item]]:
        """The checked annotations and the resized images: once per process for a zip, once per
        data module for a folder (a folder can change without its mtime changing)."""
        if self._loaded is None:
            path = self.resolve_path()
            st = os.stat(path)
            key = (
                path,
                st.st_size,
                int(st.st_mtime),
                self.annotations,
                self.image_size,
                self.max_size,
            )
            if key in _MEMORY and not os.path.isdir(path):
                self._loaded = _MEMORY[key]
            else:
                coco = self.coco()
                self._loaded = (coco, _decode(coco, self.image_size, self.max_size))
                if not os.path.isdir(path):
                    _MEMORY[key] = self._loaded
        return self._loaded

    def prepare_data(self) -> None:
        self._load()

    # -- splits -----------------------------------------------------------------------------
    def train_transform(self):
        from torchvision.transforms import v2

        a = self.augment
        return v2.Compose(
            [
                v2.RandomHorizontalFlip(p=0.5 * a),
                v2.RandomAffine(
                    degrees=0.0, translate=(0.1 * a, 0.1 * a), scale=(1 - 0.25 * a, 1 + 0.25 * a)
                ),
                v2.SanitizeBoundingBoxes(
                    min_size=2.0
                ),  # drops boxes the zoom pushed out, with their labels
            ]
        )

    def split_indices(self, coco: CocoSet) -> tuple[np.ndarray, np.ndarray]:
        ids = [img.id for img in coco.images]
        if {"train", "val"} <= set(coco.splits):
            pos = {iid: i for i, iid in enumerate(ids)}
            return (
                np.array(sorted(pos[i] for i in coco.splits["train"]), dtype=int),
                np.array(sorted(pos[i] for i in coco.splits["val"]), dtype=int),
            )
        order = np.random.default_rng(self.seed).permutation(len(ids))
        n_val = max(1, int(round(self.val_fraction * len(ids))))
        return np.sort(order[n_val:]), np.sort(order[:n_val])

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        coco, items = self._load()
        self._categories = coco.categories
        tr_idx, va_idx = self.split_indices(coco)
        if self.subset is not None and self.subset < len(tr_idx):
            pick = np.random.default_rng(self.seed + 1).choice(
                len(tr_idx), self.subset, replace=False
            )
            tr_idx = tr_idx[np.sort(pick)]
        if self.val_subset is not None and self.val_subset < len(va_idx):
            va_idx = va_idx[np.linspace(0, len(va_idx) - 1, self.val_subset).round().astype(int)]
        self.train_set = DetectionImages(
            [items[i] for i in tr_idx], self.train_transform() if self.augment > 0 else None
        )
        self._val_items = [items[i] for i in va_idx]
        self.val_set = DetectionImages(self._val_items)

    def _loader(self, ds, shuffle: bool, batch_size: int):
        return seeded_loader(
            ds, shuffle, batch_size, self.seed, self.num_workers, collate_fn=collate_detection
        )

    # -- pictures ---------------------------------------------------------------------------
    def box_samples(self, n: int = 4) -> list[Item]:
        """``n`` fixed validation images (evenly spaced) with their true boxes, for drawings."""
        if self._val_items is None:
            self.setup("fit")
        idx = np.unique(
            np.linspace(0, len(self._val_items) - 1, min(n, len(self._val_items)))
            .round()
            .astype(int)
        )
        return [self._val_items[i] for i in idx]


class PennFudanDataModule(CocoDetectionDataModule):
    """Penn-Fudan pedestrians (Wang et al., ACCV 2007): 170 street photos, 423 boxes of one class
    (``person``), the shared zip's fixed 136/34 train/val split. Any other COCO-format copy may
    be given as ``path``."""

    default_file = "pennfudan-ped.zip"
