"""Prediction overlays: a few fixed validation images, drawn after every validation epoch.

Each picture is three panels side by side: the image, the ground truth blended over it, and the
model's prediction blended over it (void / ignored pixels are left uncoloured in the ground
truth). The images are the data module's ``overlay_samples(n)`` (the same evenly spaced
validation images every epoch, so a run's pictures show the model learning). Pictures go to
``<trial_dir>/overlays/epoch<E>_<i>.png`` and, when the trainer has a `WandbLogger`, to W&B as
``val/overlays`` via ``log_image``; W&B itself is never imported here.
"""
from __future__ import annotations

import os

import lightning as L
import numpy as np
import torch


def default_palette(n: int) -> np.ndarray:
    """``n`` distinct RGB colours (golden-angle hues), (n, 3) uint8."""
    import colorsys

    return np.array([[round(255 * c) for c in colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.75, 0.95)]
                     for i in range(n)], dtype=np.uint8)


def blend(image: np.ndarray, labels: np.ndarray, palette: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Colour ``labels`` (H, W) over ``image`` (H, W, 3) uint8; labels outside the palette
    (void, padding) leave the image as it is."""
    out = image.astype(np.float32)
    known = labels < len(palette)
    colours = palette[np.where(known, labels, 0)].astype(np.float32)  # (H, W, 3)
    out[known] = (1 - alpha) * out[known] + alpha * colours[known]
    return out.round().clip(0, 255).astype(np.uint8)


def overlay_panel(image: np.ndarray, target: np.ndarray, pred: np.ndarray, palette: np.ndarray,
                  alpha: float = 0.5) -> np.ndarray:
    """[image | ground truth | prediction], (H, 3W + 4, 3) uint8."""
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    gap = np.full((image.shape[0], 2, 3), 255, dtype=np.uint8)
    return np.concatenate([image, gap, blend(image, target, palette, alpha), gap,
                           blend(image, pred, palette, alpha)], axis=1)


class PredictionOverlays(L.Callback):
    def __init__(self, out_dir: str | None, num_images: int | None = None, alpha: float = 0.5,
                 key: str = "val/overlays"):
        self.out_dir = out_dir
        self.num_images = num_images
        self.alpha = alpha
        self.key = key
        self._warned = False

    def _samples(self, trainer, pl_module):
        dm = trainer.datamodule
        if dm is None or not hasattr(dm, "overlay_samples"):
            if not self._warned:
                self._warned = True
                print("PredictionOverlays: the data module has no overlay_samples(); no overlays drawn")
            return None, None
        n = self.num_images if self.num_images is not None else pl_module.hparams.get("overlay_images", 4)
        return dm, dm.overlay_samples(int(n)) if n else []

    @torch.no_grad()
    def on_validation_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        dm, samples = self._samples(trainer, pl_module)
        if not samples:
            return
        k = int(getattr(dm, "num_classes", 0) or pl_module.hparams.get("num_classes", 2))
        palette = np.array(getattr(dm, "palette", ()) or default_palette(k), dtype=np.uint8)
        was_training = pl_module.training
        pl_module.eval()
        panels, captions = [], []
        for i, (image, mask) in enumerate(samples):
            x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].to(pl_module.device)
            logits = pl_module(dm.normalize(x))  # (1, K, H, W)
            pred = logits.argmax(1)[0].cpu().numpy().astype(np.int64)
            panels.append(overlay_panel(image, mask.astype(np.int64), pred, palette, self.alpha))
            captions.append(f"val image {i}: image | truth | prediction (epoch {trainer.current_epoch})")
        pl_module.train(was_training)
        publish_pictures(trainer, self.out_dir, "overlays", self.key, panels, captions)


def publish_pictures(trainer, out_dir: str | None, folder: str, key: str, pictures: list[np.ndarray],
                     captions: list[str]) -> list[str]:
    """Save (H, W, 3) uint8 pictures as ``<out_dir>/<folder>/epoch<E>_<i>.png`` and log them to
    W&B under ``key`` when the trainer has a `WandbLogger`; return the files written."""
    files = []
    if out_dir:
        from PIL import Image

        where = os.path.join(out_dir, folder)
        os.makedirs(where, exist_ok=True)
        for i, p in enumerate(pictures):
            files.append(os.path.join(where, f"epoch{trainer.current_epoch:03d}_{i}.png"))
            Image.fromarray(p).save(files[-1])
    from lightning.pytorch.loggers import WandbLogger

    for lg in trainer.loggers:
        if isinstance(lg, WandbLogger):
            lg.log_image(key=key, images=pictures, caption=captions, step=trainer.global_step)
    return files
