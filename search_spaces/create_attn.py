"""Look attention modules up by name: nasforge's own blocks first, then timm's ``create_attn``.

The pattern of timm's ``timm/layers/create_attn.py``, extended with the attention systems timm
lacks. Every block takes ``channels`` first and keeps the input's shape:

* ``ra``   Residual Attention, (1 + mask) x trunk (Wang et al., CVPR 2017; `residual_attention.py`)
* ``fpa``  Feature Pyramid Attention of PAN (Li et al., BMVC 2018; `pyramid_attention.py`)
* ``stn``  Spatial Transformer (Jaderberg et al., NeurIPS 2015; `spatial_transformer.py`)
* any name timm's ``create_attn`` knows (se, eca, cbam, gc, nl, ...); ``none`` gives None.

Skip-connection attention reads two tensors (the skip and the coarser decoder map), so it has
its own look-up, `create_skip_attn(name, channels, gate_channels)`:

* ``ag``   the attention gate of Attention U-Net (Oktay et al., MIDL 2018; `attention_gate.py`)
* ``gau``  Global Attention Upsample of PAN (Li et al., BMVC 2018; `pyramid_attention.py`)
* ``none`` gives None.

Unknown names raise ValueError listing the valid ones. The block modules are imported on use.
"""
from __future__ import annotations

import importlib

from torch import nn

# name -> (module, class) of the blocks timm does not have
ATTN_BLOCKS: dict[str, tuple[str, str]] = {
    "ra": ("residual_attention", "ResidualAttention"),
    "fpa": ("pyramid_attention", "FeaturePyramidAttention"),
    "stn": ("spatial_transformer", "SpatialTransformer"),
}
SKIP_ATTNS: dict[str, tuple[str, str]] = {
    "ag": ("attention_gate", "AttentionGate"),
    "gau": ("pyramid_attention", "GlobalAttentionUpsample"),
}


def _load(table: dict[str, tuple[str, str]], name: str) -> type[nn.Module]:
    module, cls = table[name]
    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)


def create_attn(name: str, channels: int, **kwargs) -> nn.Module | None:
    """The attention block ``name`` for ``channels`` channels (None for ``none``)."""
    if name == "none":
        return None
    if name in ATTN_BLOCKS:
        return _load(ATTN_BLOCKS, name)(channels, **kwargs)
    from timm.layers import create_attn as timm_create_attn

    try:
        return timm_create_attn(name, channels, **kwargs)
    except AssertionError:  # timm asserts on an unknown name
        raise ValueError(f"unknown attention {name!r}; valid: none, {', '.join(ATTN_BLOCKS)} "
                         "or a timm create_attn name (se, eca, cbam, gc, nl, ...)") from None


def create_skip_attn(name: str, channels: int, gate_channels: int) -> nn.Module | None:
    """The skip-connection attention ``name``: ``module(skip, coarser_map)`` keeps the skip's
    shape (B, channels, H, W). None for ``none``."""
    if name == "none":
        return None
    if name not in SKIP_ATTNS:
        raise ValueError(f"unknown skip attention {name!r}; valid: none, {', '.join(SKIP_ATTNS)}")
    return _load(SKIP_ATTNS, name)(channels, gate_channels)
