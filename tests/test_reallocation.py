"""The `reallocation` space (CR-NAS): stage depths under a fixed block budget, and dilations."""
from __future__ import annotations

import math

import pytest
import torch
from arch_helpers import cifar_batch, enumerate_samples, random_samples, train_one_step
from torch import nn

from nasforge.platform.engine.cost import measure_cost
from nasforge.search_spaces import SampleValidationError, create_space
from nasforge.search_spaces.reallocation import compositions

torch.set_num_threads(1)


def per_stage(depths: str, dil=(1, 1, 1, 1)) -> dict:
    return {"realloc/depths": depths, **{f"realloc/stage{i + 1}/dilation": d for i, d in enumerate(dil)}}


@pytest.mark.slow
def test_fifty_random_samples_build_and_train_on_real_cifar(cifar10_zip):
    x, y = cifar_batch(cifar10_zip, 8)
    rows = []
    for per_block in (False, True):
        space = create_space("reallocation", width=8, per_block=per_block)
        for sample in random_samples(space, 25, seed=int(per_block)):
            torch.manual_seed(0)
            net = space.build(sample, (3, 32, 32), 10)
            cost = measure_cost(net, (3, 32, 32), latency_runs=1, warmup_runs=0)
            loss = train_one_step(net, x, y)
            assert [len(getattr(net, f"layer{i}")) for i in range(1, 5)] == space.depths(sample)
            assert sum(space.depths(sample)) == 8
            assert cost["cost/params"] == sum(p.numel() for p in net.parameters()) > 0
            assert cost["cost/flops"] > 0
            rows.append((space.key(sample), cost["cost/params"], cost["cost/flops"], loss))
    for key, params, flops, loss in rows:
        print(f"{key:32s} params={params:>8d} flops={flops / 1e6:6.2f}M loss={loss:.3f}")
    assert len({r[0].split("@")[0] for r in rows}) > 15  # many different compositions were drawn
    assert len({r[1] for r in rows}) > 10  # and moving blocks between stages changes the size


def test_depths_that_break_the_budget_raise_a_readable_error():
    space = create_space("reallocation", width=8)
    with pytest.raises(SampleValidationError) as e:
        space.validate(per_stage("1-1-1-1"))
    assert str(e.value) == "stage depths 1+1+1+1 = 4, but the budget is 8 blocks"
    assert e.value.label == "realloc/depths"
    with pytest.raises(SampleValidationError, match=r"stage depths 3\+3\+3\+3 = 12, but the budget is 8 blocks"):
        space.build(per_stage([3, 3, 3, 3]), (3, 32, 32), 10)  # a list, given by hand, to build
    with pytest.raises(SampleValidationError, match="stage 2 has 0 blocks; every stage needs at least 1"):
        space.validate(per_stage("4-0-2-2"))
    with pytest.raises(SampleValidationError, match="expected 4 stage depths, got 3"):
        space.validate(per_stage("3-3-2"))
    with pytest.raises(SampleValidationError, match="not stage depths like"):
        space.validate(per_stage("two-two-two-two"))
    with pytest.raises(SampleValidationError, match=r"realloc/stage2/dilation=4 is not one of \[1, 2, 3\]"):
        space.validate(per_stage("2-2-2-2", (1, 4, 1, 1)))
    # a list given by hand is accepted and canonicalised
    assert space.validate(per_stage([1, 2, 3, 2]))["realloc/depths"] == "1-2-3-2"


def test_only_valid_compositions_are_declared():
    for total, expected in ((8, math.comb(7, 3)), (16, math.comb(15, 3))):
        comps = compositions(total, 4)
        assert len(comps) == expected and len(set(comps)) == expected
        assert all(sum(c) == total and min(c) >= 1 for c in comps)
        space = create_space("reallocation", total_blocks=total)
        dim = space.dims[0]
        assert dim.label == "realloc/depths" and len(dim.grid()) == expected
        assert "2-2-2-2" in dim.grid() or total != 8
        assert "3-4-6-3" in dim.grid() or total != 16  # ResNet-50's own allocation


def test_tpe_only_proposes_compositions_within_the_budget():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = create_space("reallocation", total_blocks=10, width=8, per_block=True)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=5))
    for _ in range(20):
        trial = study.ask()
        sample = space.validate(space.suggest(trial))
        depths = space.depths(sample)
        assert sum(depths) == 10 and min(depths) >= 1
        # exactly one dilation per existing block
        assert sum(k.endswith("/dilation") for k in sample) == 10
        study.tell(trial, float(depths[2]))


def test_per_block_dilations_exist_only_for_existing_blocks():
    space = create_space("reallocation", width=8, per_block=True)
    sample = {"realloc/depths": "1-1-1-5", "realloc/stage1/block0/dilation": 2,
              "realloc/stage2/block0/dilation": 1, "realloc/stage3/block0/dilation": 3,
              **{f"realloc/stage4/block{b}/dilation": b % 3 + 1 for b in range(5)}}
    assert space.key(sample) == "1-1-1-5@2-1-3-1,2,3,1,2"
    net = space.build(sample, (3, 32, 32), 10)
    assert [blk.conv2.dilation[0] for blk in net.layer4] == [1, 2, 3, 1, 2]
    with pytest.raises(SampleValidationError, match="inactive") as e:
        space.validate({**sample, "realloc/stage1/block1/dilation": 2})
    assert e.value.label == "realloc/stage1/block1/dilation"
    small = create_space("reallocation", total_blocks=5, dilations=[1, 2], per_block=True)
    samples = enumerate_samples(small)
    assert len(samples) == small.size() == 4 * 2**5  # C(4, 3) compositions x 2 dilations per block
    assert len({small.key(s) for s in samples}) == len(samples)


def test_same_sample_gives_same_genotype_and_network():
    space = create_space("reallocation", width=8)
    sample = per_stage("1-3-3-1", (1, 2, 3, 1))
    assert space.from_json(space.to_json(sample)) == space.validate(sample)
    assert space.key(sample) == "1-3-3-1@1-2-3-1"
    nets = []
    for _ in range(2):
        torch.manual_seed(5)
        nets.append(space.build(sample, (3, 32, 32), 10))
    assert repr(nets[0]) == repr(nets[1])
    a, b = nets[0].state_dict(), nets[1].state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def stage_shapes(net, x) -> list[tuple[int, ...]]:
    seen = []
    hooks = [getattr(net, f"layer{i}").register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape[1:])))
             for i in range(1, 5)]
    with torch.no_grad():
        net.eval()(x)
    for h in hooks:
        h.remove()
    return seen


@pytest.mark.parametrize("block,total", [("basic", 8), ("bottleneck", 16)])
def test_dilation_keeps_resolutions_and_flops(block, total):
    space = create_space("reallocation", width=8, block=block, total_blocks=total)
    depths = "2-2-2-2" if total == 8 else "3-4-6-3"
    x = torch.randn(1, 3, 32, 32)
    expansion = 4 if block == "bottleneck" else 1
    expected = [(8 * expansion * 2**i, 32 // 2**i, 32 // 2**i) for i in range(4)]
    flops = set()
    for dil in ((1, 1, 1, 1), (3, 2, 3, 2), (2, 3, 1, 3)):
        net = space.build(per_stage(depths, dil), (3, 32, 32), 10)
        assert stage_shapes(net, x) == expected
        for i, d in enumerate(dil):
            for blk in getattr(net, f"layer{i + 1}"):
                convs = [m for m in blk.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
                assert convs and all(c.dilation == (d, d) and c.padding == (d, d) for c in convs)
        flops.add(measure_cost(net, (3, 32, 32), latency_runs=1, warmup_runs=0)["cost/flops"])
    assert len(flops) == 1  # spatial reallocation moves receptive field, not computation


def receptive_field(net, stage: int) -> int:
    """Rows of the input that reach the centre pixel of a stage's output (by gradient)."""
    net = net.double().eval()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)  # undo timm's zero-init of the last BN so branches contribute
    out = {}
    h = getattr(net, f"layer{stage}").register_forward_hook(lambda m, i, o: out.setdefault("y", o))
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64, requires_grad=True)
    net(x)
    h.remove()
    y = out["y"]
    y[0, :, y.shape[2] // 2, y.shape[3] // 2].sum().backward()
    rows = (x.grad[0].abs().sum(dim=(0, 2)) > 0).nonzero().flatten()
    return int(rows.max() - rows.min() + 1)


def test_dilation_grows_the_receptive_field():
    space = create_space("reallocation", width=8)
    fields = {}
    for d in (1, 2, 3):
        torch.manual_seed(0)
        fields[d] = receptive_field(space.build(per_stage("1-2-2-3", (d, 1, 1, 1)), (3, 32, 32), 10), stage=1)
    # stem 3x3 (3 pixels) + one block of two 3x3 convs dilated by d (2d pixels each)
    assert fields == {1: 3 + 4 * 1, 2: 3 + 4 * 2, 3: 3 + 4 * 3}


def test_options_are_checked():
    with pytest.raises(ValueError, match="total_blocks"):
        create_space("reallocation", total_blocks=3)
    with pytest.raises(ValueError, match="dilations"):
        create_space("reallocation", dilations=[0, 1])
    with pytest.raises(ValueError, match="valid: auto, cifar, imagenet"):
        create_space("reallocation", stem="tiny")
    space = create_space("reallocation", total_blocks=16, block="bottleneck")
    assert space.size() == math.comb(15, 3) * 3**4
    labels = [row[0] for row in space.describe()]
    assert labels[0] == "realloc/depths" and "realloc/stage4/dilation" in labels


def test_draw_writes_a_stage_table(tmp_path):
    space = create_space("reallocation", width=8, per_block=True)
    sample = {"realloc/depths": "2-2-3-1", **{f"realloc/stage1/block{b}/dilation": 1 for b in range(2)},
              **{f"realloc/stage2/block{b}/dilation": 2 for b in range(2)},
              **{f"realloc/stage3/block{b}/dilation": b + 1 for b in range(3)}, "realloc/stage4/block0/dilation": 3}
    files = space.draw(sample, str(tmp_path / "sub" / "arch"))
    assert sorted(p.rsplit(".", 1)[1] for p in files) == ["png", "svg"]
    assert (tmp_path / "sub" / "arch.png").stat().st_size > 1000


def test_sweep_file_loads_and_its_space_builds():
    from pathlib import Path

    from nasforge.platform.engine.config import load_sweep
    from nasforge.search_spaces import create_composite

    cfg = load_sweep(Path(__file__).resolve().parents[1] / "sweeps" / "cifar10_reallocation.yaml")
    assert (cfg.task.name, cfg.task.data.name, cfg.strategy.name, cfg.budget.trials) == ("classification", "cifar10", "tpe", 20)
    assert [c.metric for c in cfg.constraints] == ["cost/params"]
    space = create_composite([{"name": p.name, "options": p.options} for p in cfg.space])
    assert space.name == "reallocation+hparams"
    sample = random_samples(space, 1, seed=0)[0]
    assert space.build(sample, (3, 32, 32), 10)(torch.randn(2, 3, 32, 32)).shape == (2, 10)
