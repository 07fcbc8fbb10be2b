"""The attention systems timm lacks: Residual Attention, PAN's FPA and GAU, the STN stem.

What a user relies on: each block keeps the shape it promises (odd sizes and 1x1 maps included)
and trains on a real batch (CIFAR-10 for the classification blocks, ISBI-2012 for the
segmentation ones); residual attention with a zero mask is exactly its trunk; an untrained
spatial transformer leaves the image unchanged; the new choices are searched (conditional
dimensions, sizes, typed errors), priced (params and FLOPs count them) and drawn; a sampled
network with each new choice round-trips through its genotype and rebuilds identically; the two
sweep files that search them run end to end (marked slow).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from arch_helpers import cifar_batch, enumerate_samples, random_samples, train_one_step
from tiny_sweeps import REPO

from nasforge.platform.engine.cost import measure_cost
from nasforge.search_spaces import SampleValidationError, create_space, diagrams
from nasforge.search_spaces.create_attn import create_attn, create_skip_attn
from nasforge.search_spaces.pyramid_attention import (
    FeaturePyramidAttention,
    GlobalAttentionUpsample,
)
from nasforge.search_spaces.residual_attention import ResidualAttention
from nasforge.search_spaces.spatial_transformer import SpatialTransformer


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def attention_space(**kw):
    opts = dict(
        layers=[1, 1, 1, 1], width=8, choices=["none", "se", "cbam", "ra"], stn=[False, True]
    )
    return create_space("attention", **{**opts, **kw})


def cls_sample(attn=("ra", "none", "ra", "se"), depths=(3, None, 1, None), stn=True) -> dict:
    s = {"stem/stn": stn}
    for i, (a, d) in enumerate(zip(attn, depths)):
        s[f"stage{i + 1}/attn"] = a
        if a == "ra":
            s[f"stage{i + 1}/mask_depth"] = d
        elif a in ("se", "cbam"):
            s[f"stage{i + 1}/reduction"] = 8
    return s


def encdec_space(**kw):
    opts = dict(
        encoders=["unet", "resnet10t"],
        unet_widths=[8],
        widths=[8],
        gates=["none", "ag", "gau"],
        attns=["none", "se"],
        bottlenecks=["none", "fpa"],
    )
    return create_space("encdec", **{**opts, **kw})


def seg_sample(encoder="unet", bottleneck="fpa", gates=("gau", "ag", "none", "gau")) -> dict:
    s = {"encdec/encoder": encoder, "encdec/bottleneck": bottleneck, "encdec/decoder/width": 8}
    if encoder == "unet":
        s["encdec/unet/width"] = 8
    for j, g in enumerate(gates, 1):
        s[f"encdec/stage{j}/gate"] = g
        s[f"encdec/stage{j}/attn"] = "none"
    return s


@pytest.fixture(scope="module")
def isbi_batch(isbi_zip):
    """4 real ISBI crops (4, 1, 96, 96), normalised, and their masks (4, 96, 96)."""
    from nasforge.tasks.isbi import ISBIDataModule

    dm = ISBIDataModule(path=str(isbi_zip), batch_size=4, crop_size=96, seed=0)
    dm.setup("fit")
    return dm.on_after_batch_transfer(
        next(iter(dm.train_dataloader())), 0
    )  # normalised, int64 masks


def moved(module: torch.nn.Module, before: list[torch.Tensor]) -> bool:
    return any(not torch.equal(b, p) for b, p in zip(before, module.parameters()))


# ----------------------------------------------------------------------------- the blocks
@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("size", [(9, 7), (1, 1), (32, 32)])
def test_residual_attention_keeps_shape_and_mask_in_unit_interval(depth, size):
    ra = ResidualAttention(6, depth=depth)
    x = torch.randn(2, 6, *size)
    assert ra(x).shape == x.shape
    m = ra.mask(x)
    assert m.shape == x.shape and m.min() >= 0 and m.max() <= 1


@pytest.mark.parametrize("trunk", [None, "conv"])
def test_residual_attention_with_a_zero_mask_is_its_trunk(trunk):
    torch.manual_seed(0)
    t = torch.nn.Conv2d(8, 8, 3, padding=1) if trunk else None
    ra = ResidualAttention(8, depth=2, trunk=t).eval()
    with torch.no_grad():  # the mask's last conv says "no attention" everywhere: sigmoid(-1e4) == 0
        ra.head[-1].weight.zero_()
        ra.head[-1].bias.fill_(-1e4)
    x = torch.randn(2, 8, 11, 13)
    assert torch.equal(ra.mask(x), torch.zeros_like(x))
    assert torch.equal(ra(x), ra.trunk(x))
    if trunk:
        assert not torch.equal(ra(x), x)


def test_untrained_spatial_transformer_leaves_real_images_unchanged(cifar10_zip):
    x, _ = cifar_batch(cifar10_zip, 8)  # (8, 3, 32, 32)
    stn = SpatialTransformer(3)
    assert torch.equal(stn.theta(x), torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).expand(8, 2, 3))
    assert torch.allclose(stn(x), x, atol=1e-5)
    gray = x[:, :1, ::4, ::4]  # (8, 1, 8, 8): a digits-sized input
    assert torch.allclose(SpatialTransformer(1)(gray), gray, atol=1e-5)


def test_spatial_transformer_applies_the_predicted_transform():
    stn = SpatialTransformer(1)
    x = torch.arange(16.0).view(1, 1, 4, 4)
    with torch.no_grad():  # theta = a horizontal flip: x' = -x
        stn.fc[-1].bias.copy_(torch.tensor([-1.0, 0, 0, 0, 1, 0]))
    assert torch.allclose(stn(x), x.flip(-1), atol=1e-5)


@pytest.mark.parametrize("size", [(5, 4), (1, 1), (16, 16)])
def test_fpa_and_gau_keep_their_shapes(size):
    fpa = FeaturePyramidAttention(12)
    x = torch.randn(2, 12, *size)
    assert fpa(x).shape == x.shape and fpa.attention(x).shape == (2, 1, *size)
    assert FeaturePyramidAttention(12, out_channels=5)(x).shape == (2, 5, *size)
    gau = GlobalAttentionUpsample(6, gate_channels=12)
    skip = torch.randn(2, 6, 2 * size[0] + 1, 2 * size[1])
    w = gau.channel_weights(x)
    assert w.shape == (2, 6, 1, 1) and w.min() > 0 and w.max() < 1
    assert torch.allclose(gau(skip, x), gau.low(skip) * w)
    if size != (1, 1):  # a batch of one trains: no BatchNorm on the pyramid's 1x1 maps deep down
        fpa.train()(torch.randn(1, 12, *size)).sum().backward()


def test_blocks_are_looked_up_by_name_with_timms():
    from timm.layers.squeeze_excite import SEModule

    from nasforge.search_spaces.attention_gate import AttentionGate

    assert (
        isinstance(create_attn("ra", 8, depth=2), ResidualAttention)
        and create_attn("ra", 8, depth=2).depth == 2
    )
    assert isinstance(create_attn("fpa", 8), FeaturePyramidAttention)
    assert isinstance(create_attn("stn", 3), SpatialTransformer)
    assert isinstance(create_attn("se", 8), SEModule)
    assert create_attn("none", 8) is None and create_skip_attn("none", 8, 16) is None
    assert isinstance(create_skip_attn("gau", 8, 16), GlobalAttentionUpsample)
    assert isinstance(create_skip_attn("ag", 8, 16), AttentionGate)
    with pytest.raises(ValueError, match="valid: none, ra, fpa, stn"):
        create_attn("transformer", 8)
    with pytest.raises(ValueError, match="valid: none, ag, gau"):
        create_skip_attn("se", 8, 16)


# ----------------------------------------------------------------------------- trained on real data
def test_classification_blocks_train_a_step_on_real_cifar(cifar10_zip):
    x, y = cifar_batch(cifar10_zip, 8)
    space = attention_space()
    net = space.build(cls_sample(), (3, 32, 32), 10)
    stn, ras = net.conv1.stn, [net.layer1[0].se, net.layer3[0].se]
    assert isinstance(stn, SpatialTransformer) and all(
        isinstance(m, ResidualAttention) for m in ras
    )
    assert [m.depth for m in ras] == [3, 1]
    shapes = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: shapes.append((tuple(i[0].shape), tuple(o.shape))))
        for m in (stn, *ras)
    ]
    before = [[p.detach().clone() for p in m.parameters()] for m in (stn, *ras)]
    train_one_step(net, x, y)
    for h in hooks:
        h.remove()
    assert all(i == o for i, o in shapes) and shapes[0][0] == (8, 3, 32, 32)
    # The last BN of each residual branch starts at zero (timm's init), so the mask branch gets
    # gradients from the second step on; the transformer's from the first.
    assert moved(stn, before[0])
    train_one_step(net, x, y)
    assert all(moved(m, b) for m, b in zip(ras, before[1:]))


@pytest.mark.parametrize("encoder", ["unet", "resnet10t"])
def test_segmentation_blocks_train_a_step_on_real_isbi(isbi_batch, encoder):
    x, y = isbi_batch  # (4, 1, 96, 96), (4, 96, 96)
    space = encdec_space()
    net = space.build(seg_sample(encoder), (1, 96, 96), 2)
    fpa, gaus = (
        net.bottleneck,
        [st.gate for st in net.decoder if isinstance(st.gate, GlobalAttentionUpsample)],
    )
    assert isinstance(fpa, FeaturePyramidAttention) and len(gaus) == 2
    shapes = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: shapes.append((tuple(i[0].shape), tuple(o.shape))))
        for m in (fpa, *gaus)
    ]
    before = [[p.detach().clone() for p in m.parameters()] for m in (fpa, *gaus)]
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    logits = net(x)
    for h in hooks:
        h.remove()
    assert logits.shape == (4, 2, 96, 96) and len(shapes) == 3
    loss = F.cross_entropy(logits, y, ignore_index=255)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert all(i == o for i, o in shapes)
    assert all(moved(m, b) for m, b in zip((fpa, *gaus), before))


# ----------------------------------------------------------------------------- the spaces
def test_attention_space_declares_mask_depth_and_stn():
    space = attention_space(mask_depths=[1, 2])
    s = cls_sample(depths=(2, None, 1, None))
    assert space.validate(s) == s
    assert space.key(s) == "stn/ra_d2|none|ra_d1|se8"
    with pytest.raises(SampleValidationError, match="inactive") as e:
        space.validate({**s, "stage2/mask_depth": 1})
    assert e.value.label == "stage2/mask_depth"
    with pytest.raises(SampleValidationError, match="is not one of"):
        space.validate({**s, "stage1/mask_depth": 3})
    no_stn = dict(s)
    del no_stn["stem/stn"]
    with pytest.raises(SampleValidationError, match="missing value for 'stem/stn'"):
        space.validate(no_stn)
    # the defaults keep the space as it was: no ra, no stem/stn decision
    plain = create_space("attention", layers=[1, 1, 1, 1], width=8)
    assert not any(lab.startswith("stem/") or lab.endswith("/mask_depth") for lab in plain.labels())
    small = attention_space(choices=["none", "ra"], mask_depths=[1, 2])
    samples = enumerate_samples(small)
    assert len(samples) == small.size() == 2 * (1 + 2) ** 4
    assert len({small.key(x) for x in samples}) == len(samples)
    per_block = attention_space(
        layers=[2, 1, 1, 1], choices=["none", "ra"], mask_depths=[3], stn=[True], per_block=True
    )
    assert len(enumerate_samples(per_block)) == per_block.size() == 2**5


def test_encdec_space_declares_fpa_and_gau():
    space = encdec_space()
    s = seg_sample()
    assert space.validate(s) == s
    cfg = space.config(s)
    assert cfg.bottleneck == "fpa"
    assert [(st.gate, st.gau) for st in cfg.stages] == [
        (False, True),
        (True, False),
        (False, False),
        (False, True),
    ]
    with pytest.raises(SampleValidationError, match="is not one of"):
        space.validate({**s, "encdec/bottleneck": "aspp"})
    # by default neither is searched: no encdec/bottleneck, gates none/ag (old samples stay valid)
    default = create_space("encdec")
    assert "encdec/bottleneck" not in default.labels()
    assert default.dims[[d.label for d in default.dims].index("encdec/stage1/gate")].choices == (
        "none",
        "ag",
    )


def test_bad_options_are_one_line_errors_naming_the_valid_values():
    with pytest.raises(ValueError, match="mask_depths"):
        attention_space(mask_depths=[0])
    with pytest.raises(
        ValueError, match=r"attention.stn: give \[false\], \[true\] or \[false, true\]"
    ):
        attention_space(stn=["yes"])
    with pytest.raises(ValueError, match="valid: none, ag, gau"):
        create_space("encdec", gates=["none", "psa"])
    with pytest.raises(ValueError, match="give some of none, fpa"):
        create_space("encdec", bottlenecks=["aspp"])


def test_sampled_networks_round_trip_through_their_genotype_and_rebuild_identically():
    cases = [
        (attention_space(), cls_sample(), (3, 32, 32), 10),
        (
            attention_space(per_block=True, layers=[1, 2, 1, 1]),
            {
                "stem/stn": True,
                "stage1/block0/attn": "ra",
                "stage1/block0/mask_depth": 2,
                "stage2/block0/attn": "none",
                "stage2/block1/attn": "ra",
                "stage2/block1/mask_depth": 3,
                "stage3/block0/attn": "cbam",
                "stage3/block0/reduction": 16,
                "stage4/block0/attn": "ra",
                "stage4/block0/mask_depth": 1,
            },
            (3, 32, 32),
            10,
        ),
        (encdec_space(), seg_sample(), (1, 64, 64), 2),
        (encdec_space(), seg_sample("resnet10t", gates=("gau",) * 4), (3, 64, 64), 5),
    ]
    for space, sample, shape, classes in cases:
        text = space.to_json(sample)
        back = type(space)(**__import__("json").loads(text)["options"]).from_json(text)
        assert back == space.validate(sample) and space.key(back) == space.key(sample)
        nets = []
        for s in (sample, back):
            torch.manual_seed(5)
            nets.append(space.build(s, shape, classes).eval())
        assert repr(nets[0]) == repr(nets[1])
        a, b = nets[0].state_dict(), nets[1].state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        x = torch.randn(2, *shape)
        with torch.no_grad():
            assert torch.equal(nets[0](x), nets[1](x))


def test_random_samples_reach_every_new_choice_and_build(cifar10_zip):
    x, y = cifar_batch(cifar10_zip, 4)
    space = attention_space(choices=["none", "ra"], mask_depths=[1, 2, 3])
    seen = set()
    for s in random_samples(space, 12, seed=0):
        seen.update((s[f"stage{i}/attn"], s.get(f"stage{i}/mask_depth")) for i in range(1, 5))
        seen.add(("stn", s["stem/stn"]))
        assert space.build(s, (3, 32, 32), 10)(x).shape == (4, 10)
    assert {("ra", 1), ("ra", 2), ("ra", 3), ("none", None), ("stn", True), ("stn", False)} <= seen


def test_cost_counts_the_new_blocks():
    space = attention_space()
    base = measure_cost(
        space.build(cls_sample(("none",) * 4, (None,) * 4, False), (3, 32, 32), 10),
        (3, 32, 32),
        latency_runs=1,
        warmup_runs=0,
    )
    ra = ResidualAttention(8, depth=3)
    ra_net = space.build(
        cls_sample(("ra", "none", "none", "none"), (3, None, None, None), False), (3, 32, 32), 10
    )
    stn_net = space.build(cls_sample(("none",) * 4, (None,) * 4, True), (3, 32, 32), 10)
    for net, block, block_shape in (
        (ra_net, ra, (8, 32, 32)),
        (stn_net, SpatialTransformer(3), (3, 32, 32)),
    ):
        cost = measure_cost(net, (3, 32, 32), latency_runs=1, warmup_runs=0)
        alone = measure_cost(block, block_shape, latency_runs=1, warmup_runs=0)
        assert cost["cost/params"] == base["cost/params"] + alone["cost/params"]
        assert cost["cost/flops"] == base["cost/flops"] + alone["cost/flops"] > base["cost/flops"]
    seg = encdec_space()
    none = measure_cost(
        seg.build(seg_sample(bottleneck="none", gates=("none",) * 4), (1, 64, 64), 2),
        (1, 64, 64),
        latency_runs=1,
        warmup_runs=0,
    )
    pan = measure_cost(
        seg.build(seg_sample(gates=("gau",) * 4), (1, 64, 64), 2),
        (1, 64, 64),
        latency_runs=1,
        warmup_runs=0,
    )
    assert pan["cost/params"] > none["cost/params"] and pan["cost/flops"] > none["cost/flops"]


def test_stage_tables_draw_the_new_choices(tmp_path, monkeypatch):
    drawn = []
    real = diagrams.draw_stage_table

    def keep(header, rows, path, title):
        drawn.append((header, rows, title))
        return real(header, rows, path, title)

    monkeypatch.setattr(diagrams, "draw_stage_table", keep)
    files = attention_space().draw(cls_sample(), str(tmp_path / "cls"))
    files += encdec_space().draw(seg_sample(), str(tmp_path / "seg"))
    assert sorted(p.rsplit("/", 1)[1] for p in files) == [
        "cls.png",
        "cls.svg",
        "seg.png",
        "seg.svg",
    ]
    assert all((tmp_path / f).stat().st_size > 1000 for f in ("cls.png", "seg.png"))
    (_, cls_rows, title), (_, seg_rows, _) = drawn
    assert cls_rows[0] == ["stem", "-", "-", "spatial transformer"]
    assert [r[3] for r in cls_rows[1:]] == [
        "ra (mask depth 3)",
        "none",
        "ra (mask depth 1)",
        "se (r=8)",
    ]
    assert title.endswith("stn/ra_d3|none|ra_d1|se8")
    assert seg_rows[0] == ["bottleneck", "1/16", "-", "-", "FPA"]
    assert [r[2] for r in seg_rows[1:]] == ["GAU", "gate", "-", "GAU"]


def test_sweep_files_load_and_search_the_new_choices():
    from nasforge.platform.engine.config import load_sweep
    from nasforge.search_spaces import create_composite

    for name, labels in (
        ("cifar10_residual_attention", {"stem/stn", "stage1/mask_depth"}),
        ("isbi_pyramid_attention", {"encdec/bottleneck"}),
    ):
        cfg = load_sweep(REPO / "sweeps" / f"{name}.yaml")
        space = create_composite([{"name": p.name, "options": p.options} for p in cfg.space])
        assert labels <= set(space.labels())
    gates = space.dims[space.labels().index("encdec/stage1/gate")].choices
    assert "gau" in gates


# ----------------------------------------------------------------------------- sweeps end to end
@pytest.mark.slow
@pytest.mark.parametrize(
    "name,overrides",
    [
        ("cifar10_residual_attention", {"task.data.subset": 128, "task.data.val_subset": 128}),
        (
            "isbi_pyramid_attention",
            {"task.data.options.repeats": 1, "task.data.subset": 8, "task.data.val_subset": 2},
        ),
    ],
)
def test_sweep_file_runs_end_to_end(name, overrides, shared_data, tmp_path):
    from pathlib import Path

    from nasforge.platform.engine.config import load_sweep
    from nasforge.platform.engine.sweep import run_sweep

    data = {
        "cifar10_residual_attention": "cifar10-jpeg.zip",
        "isbi_pyramid_attention": "isbi2012-membrane.zip",
    }
    cfg = load_sweep(
        REPO / "sweeps" / f"{name}.yaml",
        {
            "budget.trials": 2,
            "trainer.max_epochs": 1,
            "tracking.mode": "disabled",
            "task.data.path": str(shared_data / data[name]),
            **overrides,
        },
    )
    study = run_sweep(cfg, root=tmp_path / "runs", show_progress=False)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) == 2, [(t.state.name, t.user_attrs.get("fail_reason")) for t in study.trials]
    metric = cfg.objectives[0].metric
    for t in done:
        m = t.user_attrs["metrics"]
        assert 0.0 <= m[metric] <= 1.0 and m["cost/params"] > 0 and m["cost/flops"] > 0
        assert Path(t.user_attrs["checkpoint"]).is_file()
        assert all(Path(d).stat().st_size > 0 for d in t.user_attrs["diagrams"])
    params = [t.params for t in done]
    if name.startswith("cifar10"):  # the seeded draws hold residual attention and the STN stem
        assert any(p[f"stage{i}/attn"] == "ra" for p in params for i in range(1, 5))
        assert any(p["stem/stn"] for p in params)
    else:
        assert any(p["encdec/bottleneck"] == "fpa" for p in params)
        assert any(p[f"encdec/stage{j}/gate"] == "gau" for p in params for j in range(1, 5))
