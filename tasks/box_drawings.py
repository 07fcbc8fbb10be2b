"""Predicted boxes drawn on a few fixed validation images, after every validation epoch.

Each picture is the image with its true boxes in green and the detector's boxes scoring at least
``min_score`` in red, each labelled with its class and score
(`torchvision.utils.draw_bounding_boxes`).
The images are the data module's ``box_samples(n)`` (the same evenly spaced validation images
every epoch, so a run's pictures show the detector learning). Pictures go to
``<trial_dir>/boxes/epoch<E>_<i>.png`` and, with a `WandbLogger`, to W&B as ``val/boxes``.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch

from .seg_overlays import publish_pictures

TRUTH, PREDICTION = (40, 220, 40), (240, 40, 40)


def draw_boxes(
    image: torch.Tensor,
    truth: torch.Tensor,
    pred: dict[str, torch.Tensor],
    names: list[str],
    min_score: float = 0.3,
):
    """``image`` uint8 (3, H, W), ``truth`` (N, 4) xyxy, ``pred`` one detector output ->
    (H, W, 3) uint8 numpy picture."""
    from torchvision.utils import draw_bounding_boxes

    out = image
    if len(truth):
        out = draw_bounding_boxes(out, truth, colors=[TRUTH] * len(truth), width=2)
    keep = pred["scores"] >= min_score
    labels = [
        f"{names[int(k) - 1] if 0 < int(k) <= len(names) else int(k)} {float(s):.2f}"
        for k, s in zip(pred["labels"][keep], pred["scores"][keep])
    ]
    if labels:
        out = draw_bounding_boxes(
            out, pred["boxes"][keep], labels=labels, colors=[PREDICTION] * len(labels), width=2
        )
    return out.permute(1, 2, 0).numpy()


def pad_to_common_size(pictures: list[np.ndarray]) -> list[np.ndarray]:
    """Pad (H, W, 3) pictures with white to the largest height and width (W&B shows a list of
    images of one size)."""
    h = max(p.shape[0] for p in pictures)
    w = max(p.shape[1] for p in pictures)
    return [
        np.pad(p, ((0, h - p.shape[0]), (0, w - p.shape[1]), (0, 0)), constant_values=255)
        for p in pictures
    ]


class BoxDrawings(L.Callback):
    def __init__(
        self,
        out_dir: str | None,
        num_images: int | None = None,
        min_score: float = 0.3,
        key: str = "val/boxes",
    ):
        self.out_dir = out_dir
        self.num_images = num_images
        self.min_score = min_score
        self.key = key

    @torch.no_grad()
    def on_validation_epoch_end(self, trainer, pl_module):
        dm = trainer.datamodule
        if trainer.sanity_checking or not trainer.is_global_zero or not hasattr(dm, "box_samples"):
            return
        n = (
            self.num_images
            if self.num_images is not None
            else pl_module.hparams.get("box_images", 4)
        )
        samples = dm.box_samples(int(n)) if n else []
        if not samples:
            return
        names = list(getattr(dm, "class_names", []))
        was_training = pl_module.training
        pl_module.eval()
        pictures, captions = [], []
        for i, (image, boxes, _labels) in enumerate(samples):
            pred = pl_module([image.to(pl_module.device, torch.float32) / 255.0])[0]
            pred = {k: v.cpu() for k, v in pred.items()}
            pictures.append(draw_boxes(image, boxes, pred, names, self.min_score))
            captions.append(
                f"val image {i}: truth green, predictions red (score >= {self.min_score}; "
                f"epoch {trainer.current_epoch})"
            )
        pl_module.train(was_training)
        publish_pictures(
            trainer, self.out_dir, "boxes", self.key, pad_to_common_size(pictures), captions
        )
