"""scikit-learn's bundled handwritten digits: 1,797 grey 8x8 images of 10 classes.

The embedded default data set: it ships inside scikit-learn, so the quickstart needs no
network and no files. Pixel values 0-16 are scaled to uint8 0-255. There is no separate test
split; ``val_fraction`` of the images (seeded) are held out for validation. No flips (a
mirrored 2 is not a 2).
"""
from __future__ import annotations

import numpy as np

from .image_data import ImageArrayDataModule


class DigitsDataModule(ImageArrayDataModule):
    input_shape = (1, 8, 8)
    num_classes = 10
    mean = (0.3,)
    std = (0.38,)
    flip = False

    def __init__(self, path: str | None = None, **kwargs):
        if path is not None:
            raise ValueError("the digits data set ships with scikit-learn; it takes no path")
        super().__init__(path=None, **kwargs)

    def load_arrays(self):
        from sklearn.datasets import load_digits

        d = load_digits()
        x = np.clip(d.images * 16.0, 0, 255).astype(np.uint8)[..., None]  # (N, 8, 8, 1)
        return x, d.target.astype(np.int64), None, None
