"""Object detection as a LightningModule: a searched backbone under torchvision's FCOS.

The detector is torchvision's FCOS (Tian et al., ICCV 2019). Why FCOS rather than RetinaNet or
Faster R-CNN: it is anchor-free, so a backbone searched at small CPU-sized images needs no anchor
sizes or aspect ratios retuned to its scale (each pyramid level owns a range of object sizes);
it is one stage with a shared head (no RoI sampling or second-stage hyperparameters), the
cheapest of the three to train on a CPU; and its head uses GroupNorm, so the small batches of a
CPU run do not spoil it. CR-NAS (Liang et al., ICLR 2020) measured its reallocations on Faster
R-CNN and RetinaNet; what is searched here - the backbone - is the same.

`create_detector(backbone, num_classes, ...)` puts torchvision's `FeaturePyramidNetwork` on the
backbone's last three stages (strides 8, 16, 32, as FCOS does on ResNets) plus the P6/P7 levels
(`LastLevelP6P7`), and FCOS's head on the pyramid. The backbone is any module that returns its
stages' feature maps shallow to deep and lists their ``channels`` (``space.build_backbone``, see
`nasforge.search_spaces.backbone`). `DetectionTask.create_network` is what the platform calls to
turn a backbone into the task's network; the task's ``network`` is then the whole detector, so a
checkpoint's ``network.`` weights are everything a registry version needs.

Inputs are lists of images (3, H, W) in [0, 1] of any size (the detector resizes them to
``min_size``..``max_size`` and normalises them with ImageNet statistics) and targets
{"boxes": (N, 4) xyxy, "labels": (N,) in 1..K}. Logged: ``train/loss`` (and FCOS's parts
``train/classification``, ``train/bbox_regression``, ``train/bbox_ctrness``), and per
validation epoch torchmetrics' `MeanAveragePrecision` (COCO's protocol, pycocotools backend):
``val/map`` (IoU 0.50:0.95), ``val/map_50``, ``val/map_75``, ``val/map_small|medium|large`` and
``val/mar_100``. ``extra_callbacks(trial_dir)`` draws predicted boxes on a few validation images
(`box_drawings.py`).
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from typing import Sequence

import lightning as L
import torch
from torch import nn
from torchmetrics.detection import MeanAveragePrecision

from .box_drawings import BoxDrawings
from .optim import ScheduledOptimizer, check_optimizer

MAP_KEYS = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_100")
# the module options that shape the detector (create_network) rather than the training; their
# defaults are DetectionTask's
DETECTOR_OPTIONS = (
    "fpn_channels",
    "min_size",
    "max_size",
    "score_thresh",
    "nms_thresh",
    "detections_per_img",
)


class FeaturePyramid(nn.Module):
    """Backbone + torchvision FPN, the ``BackboneWithFPN`` arrangement for a backbone that returns
    a list of stage maps: (B, 3, H, W) -> OrderedDict of ``out_channels``-wide maps, strides
    8, 16, 32 (the last three stages), 64 and 128 (P6, P7)."""

    def __init__(self, body: nn.Module, out_channels: int, levels: int = 3):
        from torchvision.ops import FeaturePyramidNetwork
        from torchvision.ops.feature_pyramid_network import LastLevelP6P7

        super().__init__()
        channels = list(body.channels)
        if len(channels) < levels:
            raise ValueError(
                f"the backbone gives {len(channels)} stage maps; the pyramid needs {levels}"
            )
        self.body = body
        self.levels = levels
        self.fpn = FeaturePyramidNetwork(
            channels[-levels:], out_channels, extra_blocks=LastLevelP6P7(out_channels, out_channels)
        )
        self.out_channels = out_channels  # read by torchvision's detectors

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        feats = self.body(x)[-self.levels :]  # shallow to deep
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(feats)))


def create_detector(backbone: nn.Module, num_classes: int, **options):
    """torchvision FCOS on ``backbone`` for ``num_classes`` object classes (labels 1..K; FCOS's
    class 0, the background, is never predicted). ``options``: `DETECTOR_OPTIONS`, with the
    defaults of `DetectionTask` (its signature is the one place they are written)."""
    from torchvision.models.detection import FCOS
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    o = DetectionTask.detector_options(options)
    pyramid = FeaturePyramid(backbone, o.pop("fpn_channels"))
    # one anchor point per location and level; FCOS assigns objects by size: 8..128 px at P3..P7
    anchors = AnchorGenerator(
        sizes=((8,), (16,), (32,), (64,), (128,)), aspect_ratios=((1.0,),) * 5
    )
    return FCOS(pyramid, num_classes=num_classes + 1, anchor_generator=anchors, **o)


class DenseDetector(nn.Module):
    """The part of a torchvision FCOS that exports to ONNX or TorchScript: normalisation, backbone,
    FPN and head. (B, 3, H, W) in [0, 1], already at the detector's size -> per location of every
    pyramid level (L in all): class logits (B, L, K + 1), box regression (B, L, 4), centerness
    (B, L, 1). Not in it (Python, torchvision's ``FCOS.postprocess_detections``): resizing the
    image, the anchor points, decoding boxes, the score threshold and non-maximum suppression."""

    output_names = ("cls_logits", "bbox_regression", "bbox_ctrness")
    NOTE = (
        "exported: normalisation + backbone + FPN + FCOS head (dense per-location class logits, "
        "box regression, centerness); not exported: image resizing, anchor points, box decoding, "
        "score threshold and NMS (torchvision FCOS.postprocess_detections)"
    )

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.backbone = detector.backbone
        self.head = detector.head
        self.register_buffer("mean", torch.tensor(detector.transform.image_mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(detector.transform.image_std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feats = list(self.backbone((x - self.mean) / self.std).values())  # P3..P7
        out = self.head(feats)
        return out["cls_logits"], out["bbox_regression"], out["bbox_ctrness"]


class DetectionTask(ScheduledOptimizer, L.LightningModule):
    def __init__(
        self,
        network: nn.Module,
        num_classes: int,
        optimizer: str = "sgd",
        lr: float = 0.01,
        weight_decay: float = 1e-4,
        momentum: float = 0.9,
        nesterov: bool = False,
        warmup_epochs: float = 0.0,
        min_lr_factor: float = 0.0,
        fpn_channels: int = 64,
        min_size: int = 160,
        max_size: int = 320,
        score_thresh: float = 0.05,
        nms_thresh: float = 0.6,
        detections_per_img: int = 100,
        class_names: Sequence[str] | None = None,
        box_images: int = 4,
    ):
        """``network`` is the detector (`create_network` builds it from a backbone); the
        detector options are recorded here so that a checkpoint says how it was built."""
        super().__init__()
        check_optimizer(optimizer)
        if num_classes < 1:
            raise ValueError(f"num_classes (object categories) must be >= 1, got {num_classes}")
        if not hasattr(network, "transform") or not hasattr(network, "head"):
            raise ValueError(
                "network must be a torchvision detector; build it from a backbone with "
                "DetectionTask.create_network(backbone, num_classes)"
            )
        self.save_hyperparameters(ignore=["network"])
        self.network = network
        self.val_map = MeanAveragePrecision(
            box_format="xyxy", iou_type="bbox", backend="pycocotools"
        )

    @classmethod
    def detector_options(cls, options: dict) -> dict:
        """`DETECTOR_OPTIONS` from ``options``, this class's defaults for those not given."""
        unknown = sorted(set(options) - set(DETECTOR_OPTIONS))
        if unknown:
            raise ValueError(f"unknown detector option(s) {', '.join(unknown)}; valid: {', '.join(DETECTOR_OPTIONS)}")
        defaults = inspect.signature(cls.__init__).parameters
        return {k: options.get(k, defaults[k].default) for k in DETECTOR_OPTIONS}

    @classmethod
    def create_network(cls, backbone: nn.Module, num_classes: int, **options) -> nn.Module:
        """The task's network from a searched backbone; ``options`` are the task's options (only
        the detector's own, `DETECTOR_OPTIONS`, are used)."""
        return create_detector(
            backbone, num_classes, **{k: v for k, v in options.items() if k in DETECTOR_OPTIONS}
        )

    @classmethod
    def export_module(cls, network: nn.Module) -> tuple[nn.Module, str]:
        """(the exportable part of the detector, a note saying what is and is not in it)."""
        return DenseDetector(network).eval(), DenseDetector.NOTE

    @classmethod
    def extra_callbacks(cls, trial_dir: str | None) -> list[L.Callback]:
        """Predicted boxes on a few fixed validation images, every validation epoch."""
        return [BoxDrawings(trial_dir)]

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """Detections per image: {"boxes" (M, 4) xyxy, "scores" (M,), "labels" (M,)} (eval mode)."""
        return self.network(images)

    # -- steps ------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        images, targets = batch
        losses = self.network(images, targets)  # FCOS: classification, box regression, centerness
        loss = sum(losses.values())
        n = len(images)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=n)
        for name, value in losses.items():
            self.log(f"train/{name}", value, on_step=False, on_epoch=True, batch_size=n)
        return loss

    def _eval_step(self, batch):
        images, targets = batch
        preds = self.network(images)  # eval mode: detections, rescaled to the input images' sizes
        self.val_map.update(preds, targets)

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch)

    def test_step(self, batch, batch_idx):
        self._eval_step(batch)

    def _log_map(self, stage: str) -> None:
        result = self.val_map.compute()  # synced over DDP ranks by torchmetrics
        for key in MAP_KEYS:
            self.log(
                f"{stage}/{key}",
                float(result[key]),
                on_epoch=True,
                prog_bar=key == "map",
                sync_dist=False,
            )
        self.val_map.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_map("val")

    def on_test_epoch_end(self) -> None:
        self._log_map("test")
