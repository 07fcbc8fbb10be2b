"""timm's ResNet (He et al., CVPR 2016) as the backbone of the `attention` and `reallocation`
spaces, adapted to small inputs and opened up block by block.

`build_resnet` builds ``timm.models.resnet.ResNet`` with 4 stages of widths ``(w, 2w, 4w, 8w)``
and the given stage depths. With the *cifar* stem (the default for inputs of 64 pixels or less)
timm's stem is replaced by one 3x3 stride-1 conv and no max-pool, so a 32x32 image reaches the
stages at 32x32 (stage outputs 32, 16, 8, 4), as in the CIFAR ResNets; with the *imagenet* stem
timm's own 3-conv "deep" stem and max-pool are kept (output stride 32).

The blocks are timm's `BasicBlock` / `Bottleneck`; nothing of them is rewritten. Two per-block
edits are offered to the spaces:

* `set_attention(block, name, reduction)` puts a timm attention module (``create_attn``) in
  the block's own attention slot ``block.se`` - where timm's ``attn_layer`` argument puts it:
  after the last conv-BN of the residual branch, before the addition (SE-ResNet, CBAM, GCNet);
* `set_dilation(block, d)` sets the dilation of the block's 3x3 convs with padding = d, so the
  resolution is unchanged and only the receptive field grows (the spatial reallocation of
  CR-NAS, Liang et al. ICLR 2020).

``drop_path`` > 0 trains with stochastic depth (Huang et al., ECCV 2016): each block's residual
branch is dropped per sample with a probability that grows linearly with depth, from 0 at the
first block to ``drop_path`` at the last (timm's ``drop_path_rate`` and ``DropPath``; the
"linear decay" rule of the paper). At eval every block runs (timm's ``DropPath`` is the
identity outside training). A network trained so tolerates skipped blocks (see `gated.py`).

Call `finish(model)` after the edits: it re-runs timm's own weight init so inserted modules
are initialised as timm initialises them in e.g. ``seresnet18``. torch and timm are imported
inside the functions, so importing this module is cheap.
"""
from __future__ import annotations

from typing import Iterator, Sequence

STEMS = ("auto", "cifar", "imagenet")
BLOCKS = ("basic", "bottleneck")
NUM_STAGES = 4


def resolve_stem(stem: str, input_shape: Sequence[int]) -> str:
    """``auto`` -> ``cifar`` for inputs of at most 64x64 pixels, else ``imagenet``."""
    if stem not in STEMS:
        raise ValueError(f"unknown stem {stem!r}; valid: {', '.join(STEMS)}")
    if stem != "auto":
        return stem
    return "cifar" if max(int(input_shape[1]), int(input_shape[2])) <= 64 else "imagenet"


def check_backbone_options(width: int, block: str, stem: str) -> None:
    """Raise ValueError for options `build_resnet` cannot honour."""
    if isinstance(width, bool) or not isinstance(width, int) or width < 2 or width % 2:
        raise ValueError(f"width must be an even integer >= 2 (the stem is 2 x width/2 wide), got {width!r}")
    if block not in BLOCKS:
        raise ValueError(f"unknown block {block!r}; valid: {', '.join(BLOCKS)}")
    if stem not in STEMS:
        raise ValueError(f"unknown stem {stem!r}; valid: {', '.join(STEMS)}")


def check_drop_path(drop_path: float) -> None:
    """Raise ValueError unless ``drop_path`` (stochastic depth's last-block rate) is in [0, 1)."""
    if isinstance(drop_path, bool) or not isinstance(drop_path, (int, float)) or not 0 <= drop_path < 1:
        raise ValueError(f"drop_path must be a number in [0, 1), got {drop_path!r}")


def stage_channels(width: int, block: str) -> list[int]:
    """Output channels of each stage: (w, 2w, 4w, 8w) times the block's expansion."""
    expansion = 4 if block == "bottleneck" else 1
    return [width * 2**i * expansion for i in range(NUM_STAGES)]


def build_resnet(layers: Sequence[int], width: int, input_shape: Sequence[int], num_classes: int,
                 block: str = "basic", stem: str = "auto", drop_path: float = 0.0):
    """A timm ResNet with stage depths ``layers``, base width ``width`` and the given stem;
    ``drop_path``: stochastic depth's rate at the last block (0: off). Input (B, C, H, W) ->
    logits (B, num_classes)."""
    from timm.models.resnet import BasicBlock, Bottleneck, ResNet
    from torch import nn

    check_backbone_options(width, block, stem)
    check_drop_path(drop_path)
    if len(layers) != NUM_STAGES or any(int(n) < 1 for n in layers):
        raise ValueError(f"layers must be {NUM_STAGES} stage depths >= 1, got {list(layers)}")
    in_chans = int(input_shape[0])
    model = ResNet(
        block=BasicBlock if block == "basic" else Bottleneck,
        layers=[int(n) for n in layers],
        num_classes=num_classes,
        in_chans=in_chans,
        channels=tuple(width * 2**i for i in range(NUM_STAGES)),
        stem_type="deep",  # stem output = 2 * stem_width = width, so layer1 needs no projection
        stem_width=width // 2,
        drop_path_rate=float(drop_path),  # linear in depth: 0 at block 0, drop_path at the last
    )
    if resolve_stem(stem, input_shape) == "cifar":
        # (B, C, H, W) -> (B, width, H, W): one 3x3 stride-1 conv; bn1/act1 stay, no max-pool.
        model.conv1 = nn.Conv2d(in_chans, width, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    return model


def stages(model) -> list:
    """The 4 stages (``layer1`` .. ``layer4``) of a timm ResNet."""
    return [getattr(model, f"layer{i + 1}") for i in range(NUM_STAGES)]


def iter_blocks(model) -> Iterator[tuple[int, int, object]]:
    """(stage index 0..3, block index within the stage, block) for every residual block."""
    for s, stage in enumerate(stages(model)):
        for b, blk in enumerate(stage):
            yield s, b, blk


def block_out_channels(block) -> int:
    """Channels of the residual branch's output (where the attention module sits)."""
    last_bn = block.bn3 if hasattr(block, "bn3") else block.bn2
    return int(last_bn.num_features)


def set_attention(block, name: str, reduction: int | None = None, **options) -> None:
    """Put ``create_attn(name, channels, ...)`` (nasforge's blocks, then timm's) in the block's
    attention slot (``block.se``; ``none`` empties it). ``reduction`` r sets ``rd_ratio = 1/r``
    with ``rd_divisor = 1``, so the bottleneck is exactly ``channels // r`` wide (at least 1);
    ``options`` go to the block as they are (e.g. residual attention's ``depth``)."""
    from .create_attn import create_attn

    channels = block_out_channels(block)
    if name == "none":
        block.se = None
        return
    kwargs = dict(options)
    if reduction is not None:
        kwargs.update(rd_ratio=1.0 / reduction, rd_divisor=1)
    block.se = create_attn(name, channels, **kwargs)


def set_stn_stem(model) -> None:
    """Put a spatial transformer (Jaderberg et al. 2015) in front of the stem's first conv:
    ``model.conv1`` becomes ``Sequential(stn=SpatialTransformer(in_chans), conv=conv1)``. Call it
    after `finish`, so the transformer keeps its identity start."""
    from collections import OrderedDict

    from torch import nn

    from .create_attn import create_attn

    first = model.conv1[0] if isinstance(model.conv1, nn.Sequential) else model.conv1  # deep stem
    stn = create_attn("stn", int(first.in_channels))
    model.conv1 = nn.Sequential(OrderedDict(stn=stn, conv=model.conv1))


def set_dilation(block, dilation: int) -> None:
    """Dilate every 3x3 conv of the block's residual branch with padding = dilation: the
    output size is that of the undilated conv (stride included), the receptive field grows."""
    for conv_name in ("conv1", "conv2", "conv3"):
        conv = getattr(block, conv_name, None)
        if conv is not None and tuple(conv.kernel_size) == (3, 3):
            conv.dilation = (dilation, dilation)
            conv.padding = (dilation, dilation)
    block.dilation = dilation


def finish(model):
    """Re-run timm's ResNet weight init (kaiming for every conv, zero-init of the last BN of each
    residual branch) after blocks were edited; return the model."""
    model.init_weights(zero_init_last=True)
    return model

