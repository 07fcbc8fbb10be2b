"""Tasks and data sets by name: what the sweep file's ``task.name`` and ``task.data.name`` mean.

Each entry names the classes by import path so that looking a name up (for validation, for
`nasforge --help`) imports no torch or Lightning; `load()` imports them when a trial runs.

A *lightning* task is a LightningModule class taking ``network=`` (the built `nn.Module`) and
``num_classes=`` plus its options; its data module takes the data config and exposes
``input_shape`` and ``num_classes`` before any data is read. A *tabular* task scores a sample by
looking it up in a table (NAS-Bench-201), with no training.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import Literal


def shared_file(rel: str) -> str | None:
    """``rel`` under $NASFORGE_DATA or ../shared/data, when it exists there (the first root that
    holds it: $NASFORGE_DATA may hold only some of the data sets)."""
    for root in (os.environ.get("NASFORGE_DATA"), os.path.join("..", "shared", "data")):
        if root and os.path.exists(os.path.join(root, rel)):
            return os.path.abspath(os.path.join(root, rel))
    return None


def _load(path: str):
    mod, _, attr = path.partition(":")
    return getattr(importlib.import_module(mod), attr)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    datamodule: str  # "module:Class"
    needs_path: bool = False  # True: no bundled copy; a path, a shared copy or a download is needed
    shared_file: str | None = None  # file under $NASFORGE_DATA or ../shared/data used when no path is given
    downloadable: bool = False
    default_hint: str = ""
    checker: str | None = None  # "module:function(path)" raising ValueError for malformed data

    def default_path(self) -> str | None:
        return shared_file(self.shared_file) if self.shared_file else None

    def can_download(self) -> bool:
        return self.downloadable or self.default_path() is not None

    def load(self):
        return _load(self.datamodule)

    def check(self, path: str, options: dict) -> None:
        """Run the data set's own check on ``path`` with the sweep's data options (raises
        ValueError with a one-line reason)."""
        if self.checker:
            _load(self.checker)(path, **options)


@dataclass(frozen=True)
class TaskSpec:
    name: str
    kind: Literal["lightning", "tabular"]
    module: str  # "module:Class"
    datasets: tuple[str, ...] = field(default_factory=tuple)
    default_metric: str = "val/acc"

    @property
    def trains_weights(self) -> bool:
        """A Lightning task trains a network (with weights to promote); a tabular one looks up."""
        return self.kind == "lightning"

    def load(self):
        return _load(self.module)


DATASETS: dict[str, DatasetSpec] = {
    "digits": DatasetSpec("digits", "nasforge.tasks.digits:DigitsDataModule"),
    "cifar10": DatasetSpec(
        "cifar10", "nasforge.tasks.cifar10:CIFAR10DataModule", needs_path=True,
        shared_file="cifar10-jpeg.zip", downloadable=True,
        default_hint="an ImageFolder tree or zip of one, or a network to download from",
    ),
    "imagefolder": DatasetSpec(
        "imagefolder", "nasforge.tasks.folder_data:ImageFolderDataModule", needs_path=True,
        default_hint="a folder train/<class>/<image> (+ optional val/, test/)",
    ),
    "maskfolder": DatasetSpec(
        "maskfolder", "nasforge.tasks.folder_data:MaskFolderDataModule", needs_path=True,
        default_hint="a folder with images/ and masks/ of the same file names",
    ),
    "camvid": DatasetSpec(
        "camvid", "nasforge.tasks.camvid:CamVidDataModule", needs_path=True,
        shared_file="camvid-240x180.zip", default_hint="a CamVid folder or zip (SegNet layout)",
    ),
    "isbi": DatasetSpec(
        "isbi", "nasforge.tasks.isbi:ISBIDataModule", needs_path=True,
        shared_file="isbi2012-membrane.zip", default_hint="the ISBI-2012 membrane folder or zip",
    ),
    "coco": DatasetSpec(
        "coco", "nasforge.tasks.coco_data:CocoDetectionDataModule", needs_path=True,
        shared_file="pennfudan-ped.zip", checker="nasforge.tasks.coco_format:check_path",
        default_hint="a folder or zip with images and a COCO annotations JSON",
    ),
    "pennfudan": DatasetSpec(
        "pennfudan", "nasforge.tasks.coco_data:PennFudanDataModule", needs_path=True,
        shared_file="pennfudan-ped.zip", checker="nasforge.tasks.coco_format:check_path",
        default_hint="the Penn-Fudan zip (COCO format) or any COCO-format folder or zip",
    ),
    "nb201": DatasetSpec(
        "nb201", "nasforge.tasks.tabular:TabularBenchmark", needs_path=True,
        shared_file=os.path.join("nb201", "cifar10.csv"),
        default_hint="a NAS-Bench-201-format CSV (arch, signal and report columns)",
    ),
}

TASKS: dict[str, TaskSpec] = {
    "classification": TaskSpec(
        "classification", "lightning", "nasforge.tasks.classification:ClassificationTask",
        datasets=("digits", "cifar10", "imagefolder"), default_metric="val/acc",
    ),
    "segmentation": TaskSpec(
        "segmentation", "lightning", "nasforge.tasks.segmentation:SegmentationTask",
        datasets=("isbi", "camvid", "maskfolder"), default_metric="val/miou",
    ),
    "detection": TaskSpec(
        "detection", "lightning", "nasforge.tasks.detection:DetectionTask",
        datasets=("pennfudan", "coco"), default_metric="val/map",
    ),
    "adaptive": TaskSpec(  # per-input block skipping of a registered model (the `adaptive` space)
        "adaptive", "lightning", "nasforge.tasks.adaptive:AdaptiveTask",
        datasets=("digits", "cifar10"), default_metric="val/acc",
    ),
    "tabular": TaskSpec(
        "tabular", "tabular", "nasforge.tasks.tabular:TabularBenchmark",
        datasets=("nb201",), default_metric="val_acc_12ep",
    ),
}
