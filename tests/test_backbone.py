"""Backbones with multi-scale features: one searched backbone, a head per task (DESIGN contract 11).

What a user relies on: a conv space's backbone returns each stage's map at strides 4..32 with the
channel counts it announced before any data was read; classification's pooling head on it gives
exactly the logits the space's classifier gives (existing samples behave as before); the
segmentation encoder-decoder takes it as its encoder and trains on real ISBI images; the
sampled dilations reach the backbone; a space with no stages says so.
"""

from __future__ import annotations

import pytest
import torch

from nasforge.search_spaces import create_space
from nasforge.search_spaces.encoder_decoder import EncDecConfig, EncoderDecoderNet, StageConfig

from arch_helpers import random_samples


pytestmark = pytest.mark.usefixtures("one_thread")


SPACES = [
    ("attention", {"width": 16, "stem": "imagenet"}),
    ("reallocation", {"width": 16, "stem": "imagenet", "per_block": True}),
]


@pytest.mark.parametrize("name, options", SPACES)
def test_backbone_gives_every_stage_at_strides_4_to_32_with_announced_channels(name, options):
    space = create_space(name, **options)
    for sample in random_samples(space, 3, seed=1):
        bb = space.build_backbone(sample, (3, 96, 128))
        assert bb.channels == [16, 32, 64, 128] and bb.reductions == [
            4,
            8,
            16,
            32,
        ]  # before any data
        feats = bb(torch.randn(2, 3, 96, 128))
        assert [tuple(f.shape) for f in feats] == [
            (2, c, 96 // r, 128 // r) for c, r in zip(bb.channels, bb.reductions)
        ]


@pytest.mark.parametrize("name, options", SPACES)
def test_classification_head_on_the_backbone_gives_the_classifier_logits(name, options):
    space = create_space(name, **options)
    sample = random_samples(space, 1, seed=2)[0]
    torch.manual_seed(0)
    model = space.build(sample, (3, 64, 64), 10).eval()
    from nasforge.search_spaces.backbone import resnet_backbone

    bb = resnet_backbone(model, "imagenet")  # the same modules, so the same weights
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model.forward_head(bb(x)[-1]), model(x))


def test_sampled_dilations_reach_the_backbone():
    space = create_space("reallocation", width=8, stem="imagenet", per_block=True)
    sample = {
        "realloc/depths": "1-2-4-1",
        "realloc/stage1/block0/dilation": 1,
        "realloc/stage2/block0/dilation": 2,
        "realloc/stage2/block1/dilation": 3,
        **{f"realloc/stage3/block{b}/dilation": 1 + b % 3 for b in range(4)},
        "realloc/stage4/block0/dilation": 3,
    }
    bb = space.build_backbone(sample, (3, 64, 64))
    got = [[blk.conv1.dilation[0] for blk in stage] for stage in bb.stages]
    assert got == space.dilation_plan(sample) == [[1], [2, 3], [1, 2, 3, 1], [3]]


def test_a_space_without_stages_says_so():
    space = create_space("nb201")
    with pytest.raises(NotImplementedError, match="does not build a backbone"):
        space.build_backbone({}, (3, 32, 32))


@pytest.mark.parametrize("name, options", SPACES)
def test_segmentation_encoder_from_a_searched_backbone_trains_a_step_on_isbi(
    name, options, isbi_zip
):
    from nasforge.tasks.isbi import ISBIDataModule
    from nasforge.tasks.segmentation import SegmentationTask

    space = create_space(name, **{**options, "width": 8})
    sample = random_samples(space, 1, seed=3)[0]
    encoder = space.build_backbone(sample, (1, 128, 128))  # ISBI is grayscale
    cfg = EncDecConfig(
        encoder="searched",
        stages=(
            StageConfig(32, True, "se"),
            StageConfig(16, False, "none"),
            StageConfig(8, True, "eca"),
        ),
    )
    net = EncoderDecoderNet(cfg, in_channels=1, num_classes=2, encoder=encoder)
    assert net.encoder is encoder
    dm = ISBIDataModule(path=str(isbi_zip), batch_size=2, crop_size=128, subset=2, val_subset=1)
    dm.setup("fit")
    x, y = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    task = SegmentationTask(net, num_classes=2)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    before = {k: v.clone() for k, v in encoder.state_dict().items() if v.is_floating_point()}
    logits = task(x)
    assert logits.shape == (2, 2, 128, 128)
    loss = task.loss(logits, y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    changed = [
        k for k, v in encoder.state_dict().items() if k in before and not torch.equal(v, before[k])
    ]
    assert any(k.startswith("stages.") for k in changed)  # the searched encoder itself learned
    with pytest.raises(ValueError, match="decoder stages need 5"):
        EncoderDecoderNet(
            EncDecConfig("searched", (StageConfig(8, False, "none"),) * 4), 1, 2, encoder=encoder
        )
