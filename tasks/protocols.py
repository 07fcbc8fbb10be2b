"""The two contracts between a user's Lightning code and a search space, as `typing.Protocol`s.

* `NetworkTask`: a LightningModule whose constructor takes the network a space built under one
  argument (``network`` unless the sweep file's ``task.model.network_arg`` names another), and
  keeps it as an attribute of the same name, so that the registry can take its weights back out
  of a checkpoint (``network.*`` keys). A module without that argument is a pure hyperparameter
  search: nothing is injected and no architecture space may be listed.
* `ShapedDataModule`: what a data module exposes so that a space can build a network for it:
  ``input_shape`` ``(C, H, W)`` and ``num_classes``. They may be class attributes known before
  any data is read, or attributes filled by ``prepare_data``/``setup`` (folder readers learn them
  from the data); `missing_shape` names what is still missing.

These are structural: a user's classes never import nasforge to satisfy them.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import nn


@runtime_checkable
class NetworkTask(Protocol):
    """``__init__(self, network: nn.Module, ..., num_classes: int = ...)``: ``num_classes`` is passed
    too when the constructor takes it and ``init_args`` does not set it."""

    network: nn.Module


@runtime_checkable
class ShapedDataModule(Protocol):
    input_shape: tuple[int, ...]  # (C, H, W) of one example as the network sees it
    num_classes: int  # outputs of the head (classes, or segmentation classes)


def missing_shape(dm: Any) -> list[str]:
    """The `ShapedDataModule` attributes ``dm`` lacks (or holds as None)."""
    return [name for name in ("input_shape", "num_classes") if getattr(dm, name, None) is None]
