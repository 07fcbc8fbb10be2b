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


# ----------------------------------------------------------------------------- from a sweep file
def test_encdec_takes_the_sweeps_backbone_space_as_its_encoder():
    """`space: [reallocation, encdec with encoders: [backbone]]`: the network's encoder is exactly
    the backbone the reallocation space builds for its part of the sample (same modules, same
    weights' shapes, same feature maps), and the mistakes are one ValueError at load."""
    from nasforge.search_spaces import create_composite

    parts = [
        {"name": "reallocation", "options": {"total_blocks": 4, "width": 8, "stem": "imagenet"}},
        {"name": "encdec", "options": {"encoders": ["backbone"], "stages": 3, "widths": [8]}},
    ]
    space = create_composite(parts)
    assert space.arch.name == "encdec" and space.backbone.name == "reallocation"
    for sample in random_samples(space, 3, seed=0):
        net = space.build(sample, (1, 64, 64), 2)
        torch.manual_seed(0)
        own = space.backbone.build_backbone(space.part_sample(space.backbone, sample), (1, 64, 64))
        assert {k: v.shape for k, v in net.encoder.state_dict().items()} == \
            {k: v.shape for k, v in own.state_dict().items()}
        net.encoder.load_state_dict(own.state_dict())
        x = torch.randn(2, 1, 64, 64)
        with torch.no_grad():
            assert all(torch.equal(a, b) for a, b in zip(net.encoder.eval()(x), own.eval()(x)))
            assert net.eval()(x).shape == (2, 2, 64, 64)
    with pytest.raises(ValueError, match=r"set encoders: \[backbone\]"):
        create_composite([parts[0], {"name": "encdec"}])  # a backbone space but a timm/U-Net encoder
    with pytest.raises(ValueError, match="add one to space"):
        create_composite([{"name": "encdec", "options": {"encoders": ["backbone"]}}])
    with pytest.raises(ValueError, match="at most one architecture space"):
        create_composite([{"name": "attention"}, parts[0]])


def test_a_missing_backbone_space_is_named_from_the_registry_and_each_named_one_builds_a_backbone():
    """The error a user gets for encoder ``backbone`` without a backbone space lists the spaces
    that would do (the registry's, not a list typed into the message), and each of them does."""
    from nasforge.search_spaces import backbone_spaces, create_composite

    names = backbone_spaces()
    assert {"attention", "convnet", "reallocation"} <= set(names) and "nb201" not in names
    with pytest.raises(ValueError, match="add one to space") as e:
        create_composite([{"name": "encdec", "options": {"encoders": ["backbone"]}}])
    assert f"({', '.join(names)})" in str(e.value)
    for name in names:
        space = create_space(name)
        sample = random_samples(space, 1, seed=0)[0]
        backbone = space.build_backbone(sample, (3, 32, 32))
        maps = backbone(torch.randn(1, 3, 32, 32))
        assert [m.shape[1] for m in maps] == list(backbone.channels)


@pytest.mark.slow
def test_isbi_crnas_encdec_sweep_file_runs_end_to_end_and_promotes(isbi_zip, tmp_path):
    """The shipped sweep file: reallocation backbone + decoder searched together on real ISBI
    images; both parts' decisions are in each trial, both tables are drawn, and the promoted
    network loads back with the trial's weights."""
    from pathlib import Path

    from nasforge.platform.engine.config import load_sweep
    from nasforge.platform.engine.sweep import run_sweep
    from nasforge.platform.registry import load, promote

    repo = Path(__file__).resolve().parents[1]
    cfg = load_sweep(repo / "sweeps" / "isbi_crnas_encdec.yaml", {
        "budget.trials": 2, "trainer.max_epochs": 1, "tracking.mode": "disabled",
        "task.data.path": str(isbi_zip), "task.data.options.repeats": 1, "task.data.subset": 8,
        "task.data.val_subset": 2,
    })
    study = run_sweep(cfg, root=tmp_path / "runs", show_progress=False)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) == 2, [(t.state.name, t.user_attrs.get("fail_reason")) for t in study.trials]
    for t in done:
        assert 0.0 <= t.user_attrs["metrics"]["val/miou"] <= 1.0
        assert "realloc/depths" in t.params and t.params["encdec/encoder"] == "backbone"
        names = sorted(Path(d).name for d in t.user_attrs["diagrams"])
        assert "architecture-backbone.png" in names and "architecture.png" in names
    promotion = promote(cfg.name, best=True, root=str(tmp_path / "runs"), registry=tmp_path / "registry")
    net = load(promotion.version.ref, registry=tmp_path / "registry")
    assert net(torch.randn(1, 1, 128, 128)).shape == (1, 2, 128, 128)


# ----------------------------------------------------------------------------- convnet as a backbone
def test_convnet_backbone_is_its_classifier_without_the_head_and_feeds_every_task():
    """The quickstart's plain CNN: stage maps at strides 1, 2, 4, 8 with its widths announced before
    data; the same stages as its classifier (same weights' names, so the classifier's weights give
    the backbone's maps); a decoder and a detector put their heads on it."""
    from nasforge.search_spaces import create_composite
    from nasforge.tasks.detection import DetectionTask

    space = create_space("convnet", stages=4, widths=[8, 16])
    for sample in random_samples(space, 3, seed=4):
        bb = space.build_backbone(sample, (3, 40, 56))
        w = sample["convnet/width"]
        assert bb.channels == [w, 2 * w, 4 * w, 8 * w] and bb.reductions == [1, 2, 4, 8]
        feats = bb(torch.randn(2, 3, 40, 56))
        assert [tuple(f.shape) for f in feats] == [(2, c, 40 // r, 56 // r) for c, r in zip(bb.channels, bb.reductions)]

        model = space.build(sample, (3, 40, 56), 10).eval()
        layers = torch.nn.Sequential(*[m for stage in bb.stages for m in stage])  # the backbone's modules
        layers.load_state_dict({k: v for k, v in model.state_dict().items() if int(k.split(".")[0]) < len(layers)})
        head = torch.nn.Sequential(*list(model)[len(layers):])  # pool, flatten, dropout, linear
        x = torch.randn(2, 3, 40, 56)
        with torch.no_grad():
            assert torch.equal(head(bb.eval()(x)[-1]), model(x))

    parts = [{"name": "convnet", "options": {"stages": 4, "widths": [8]}},
             {"name": "encdec", "options": {"encoders": ["backbone"], "stages": 3, "widths": [8]}}]
    seg = create_composite(parts)
    assert seg.backbone.name == "convnet"
    sample = random_samples(seg, 1, seed=5)[0]
    with torch.no_grad():
        assert seg.build(sample, (1, 48, 48), 2).eval()(torch.randn(2, 1, 48, 48)).shape == (2, 2, 48, 48)

    det = DetectionTask.create_network(space.build_backbone(random_samples(space, 1, seed=6)[0], (3, 64, 64)), 1)
    det.eval()
    with torch.no_grad():
        (out,) = det([torch.rand(3, 64, 64)])
    assert set(out) == {"boxes", "scores", "labels"}
