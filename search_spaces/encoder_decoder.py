"""An encoder-decoder segmentation network (U-Net style) built from a config.

The encoder returns feature maps at increasing strides: a timm backbone by name with
``features_only=True`` (strides 2, 4, 8, 16, 32; never pretrained, since nothing is downloaded),
a searched backbone handed in as a module (``encoder=``, e.g. the `attention` or `reallocation`
space's ``build_backbone``: strides 4..32), or the built-in U-Net encoder (Ronneberger et al.
2015: two 3x3 conv-BN-ReLU per level and 2x2 max-pooling between levels; strides 1, 2, 4, 8,
16). The decoder walks back up through ``len(stages)`` stages; stage ``j`` upsamples the running
map to the next shallower skip's size, optionally passes the skip through an attention gate
(Attention U-Net, Oktay et al. 2018) or PAN's Global Attention Upsample (Li et al. 2018) driven
by the running map, concatenates, applies two 3x3 conv-BN-ReLU to the stage's width and then an
optional channel/spatial attention block (``create_attn``: timm's se, eca, cbam, gc, ...).
Optionally PAN's Feature Pyramid Attention sits on the encoder's deepest map (the bottleneck),
before the decoder. A 1x1 head gives the class logits, upsampled bilinearly to the input size,
so any (H, W) works.
Variants are data (`EncDecConfig`), handed to one builder.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .create_attn import create_attn, create_skip_attn

BUILTIN_ENCODER = "unet"


@dataclass(frozen=True)
class StageConfig:
    width: int  # output channels of the stage
    gate: bool  # attention gate on the skip connection
    attn: str  # "none" or a timm create_attn name
    gau: bool = False  # PAN's Global Attention Upsample on the skip connection (instead of a gate)


@dataclass(frozen=True)
class EncDecConfig:
    encoder: str  # "unet" or a timm model name
    stages: tuple[StageConfig, ...]  # deepest first
    unet_width: int = 16  # first-level width of the built-in encoder
    bottleneck: str = "none"  # "none" or "fpa" (PAN's Feature Pyramid Attention on the deepest map)


def conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class UNetEncoder(nn.Module):
    """The U-Net contracting path: ``levels`` feature maps of widths w, 2w, 4w, ... at strides
    1, 2, 4, ...; ``channels`` and ``reductions`` describe them like timm's ``feature_info``."""

    def __init__(self, in_channels: int, width: int = 16, levels: int = 5):
        super().__init__()
        self.channels = [width * 2 ** i for i in range(levels)]
        self.reductions = [2 ** i for i in range(levels)]
        blocks, c = [], in_channels
        for w in self.channels:
            blocks.append(nn.Sequential(conv_bn_relu(c, w), conv_bn_relu(w, w)))
            c = w
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for i, block in enumerate(self.blocks):
            if i > 0:
                x = F.max_pool2d(x, 2, ceil_mode=True)  # (B, C, ceil(H/2), ceil(W/2))
            x = block(x)
            feats.append(x)
        return feats  # shallow to deep


def create_encoder(name: str, in_channels: int, levels: int, unet_width: int = 16) -> tuple[nn.Module, list[int]]:
    """(encoder, channels of its ``levels`` deepest feature maps, shallow to deep)."""
    if name == BUILTIN_ENCODER:
        enc = UNetEncoder(in_channels, unet_width, levels)
        return enc, enc.channels
    import timm

    if not timm.is_model(name):
        raise ValueError(f"unknown encoder {name!r}; valid: {BUILTIN_ENCODER!r} or a timm model name "
                         "with features_only support (e.g. resnet10t, resnet18, mobilenetv3_small_100)")
    try:
        enc = timm.create_model(name, features_only=True, pretrained=False, in_chans=in_channels,
                                out_indices=tuple(range(-levels, 0)))  # the `levels` deepest maps
    except (IndexError, RuntimeError, ValueError) as e:
        raise ValueError(f"encoder {name!r} cannot give {levels} feature levels: {e}") from None
    return enc, list(enc.feature_info.channels())


def create_block_attention(name: str, channels: int) -> nn.Module:
    """An attention block by name (`create_attn`: ours, then timm's); "none" is the identity."""
    return create_attn(name, channels) or nn.Identity()


class DecoderStage(nn.Module):
    def __init__(self, in_channels: int, skip_channels: int, cfg: StageConfig):
        super().__init__()
        skip_attn = "gau" if cfg.gau else "ag" if cfg.gate else "none"
        self.gate = create_skip_attn(skip_attn, skip_channels, in_channels)
        self.convs = nn.Sequential(conv_bn_relu(in_channels + skip_channels, cfg.width),
                                   conv_bn_relu(cfg.width, cfg.width))
        self.attn = create_block_attention(cfg.attn, cfg.width)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        # x (B, Cin, h, w) from the deeper stage; skip (B, Cs, H, W) from the encoder
        if self.gate is not None:
            skip = self.gate(skip, x)
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        x = self.convs(torch.cat([x, skip], 1))  # (B, width, H, W)
        return self.attn(x)


class EncoderDecoderNet(nn.Module):
    """``encoder``, when given, replaces ``cfg.encoder``: any module returning feature maps
    shallow to deep with a ``channels`` list, e.g. a searched `backbone.StageBackbone`
    (``space.build_backbone``); the decoder uses its ``len(cfg.stages) + 1`` deepest maps."""

    def __init__(self, cfg: EncDecConfig, in_channels: int, num_classes: int, encoder: nn.Module | None = None):
        super().__init__()
        self.cfg = cfg
        levels = len(cfg.stages) + 1
        if encoder is None:
            self.encoder, channels = create_encoder(cfg.encoder, in_channels, levels, cfg.unet_width)
        else:
            channels = list(encoder.channels)
            if len(channels) < levels:
                raise ValueError(f"the encoder gives {len(channels)} feature maps; {len(cfg.stages)} "
                                 f"decoder stages need {levels}")
            self.encoder, channels = encoder, channels[-levels:]
        self.bottleneck = create_block_attention(cfg.bottleneck, channels[-1])
        stages, c = [], channels[-1]
        for j, st in enumerate(cfg.stages):
            skip_c = channels[-2 - j]
            stages.append(DecoderStage(c, skip_c, st))
            c = st.width
        self.decoder = nn.ModuleList(stages)
        self.head = nn.Conv2d(c, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)[-(len(self.decoder) + 1):]  # shallow to deep, len(stages) + 1 maps
        y = self.bottleneck(feats[-1])
        for j, stage in enumerate(self.decoder):
            y = stage(y, feats[-2 - j])
        logits = self.head(y)  # (B, K, H/s, W/s), s = stride of the shallowest skip
        if logits.shape[-2:] != x.shape[-2:]:
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits  # (B, K, H, W)
