"""The `attention` space: timm attention modules per stage / per block of a timm ResNet."""
from __future__ import annotations

import json

import pytest
import torch
from arch_helpers import cifar_batch, enumerate_samples, random_samples, train_one_step
from timm.layers.cbam import CbamModule
from timm.layers.eca import EcaModule
from timm.layers.global_context import GlobalContext
from timm.layers.non_local_attn import NonLocalAttn
from timm.layers.squeeze_excite import SEModule

from nasforge.platform.engine.cost import measure_cost
from nasforge.search_spaces import SampleValidationError, create_space
from nasforge.search_spaces.attention import ATTENTIONS

TIMM_CLASS = {"se": SEModule, "eca": EcaModule, "cbam": CbamModule, "gc": GlobalContext, "nl": NonLocalAttn}
SMALL = dict(layers=[1, 1, 1, 1], width=16)

torch.set_num_threads(1)


def stage_sample(attn: list[str], red: list[int | None]) -> dict:
    s = {}
    for i, (a, r) in enumerate(zip(attn, red)):
        s[f"stage{i + 1}/attn"] = a
        if r is not None:
            s[f"stage{i + 1}/reduction"] = r
    return s


def attention_in(block) -> str:
    for name, cls in TIMM_CLASS.items():
        if isinstance(block.se, cls):
            return name
    assert block.se is None, f"unexpected attention module {type(block.se).__name__}"
    return "none"


def hidden_width(module) -> int:
    """The bottleneck width of a timm attention module (channels // reduction)."""
    if isinstance(module, SEModule):
        return module.fc1.out_channels
    if isinstance(module, CbamModule):
        return module.channel.fc1.out_channels
    if isinstance(module, GlobalContext):
        return module.mlp_scale.fc1.out_channels
    if isinstance(module, NonLocalAttn):
        return module.t.out_channels
    raise AssertionError(f"no reduction in {type(module).__name__}")


@pytest.mark.slow
def test_fifty_random_samples_build_and_train_on_real_cifar(cifar10_zip):
    x, y = cifar_batch(cifar10_zip, 8)
    space = create_space("attention", **SMALL)
    seen, rows = set(), []
    for sample in random_samples(space, 50, seed=0):
        torch.manual_seed(0)
        net = space.build(sample, (3, 32, 32), 10)
        cost = measure_cost(net, (3, 32, 32), latency_runs=1, warmup_runs=0)
        loss = train_one_step(net, x, y)
        assert cost["cost/params"] == sum(p.numel() for p in net.parameters()) > 0
        assert cost["cost/flops"] > 0
        rows.append((space.key(sample), cost["cost/params"], cost["cost/flops"], loss))
        seen.update(sample[f"stage{i}/attn"] for i in range(1, 5))
    for key, params, flops, loss in rows:
        print(f"{key:28s} params={params:>8d} flops={flops / 1e6:7.2f}M loss={loss:.3f}")
    assert seen == {"none", "se", "eca", "cbam", "gc", "nl"}  # 50 draws reach every module
    assert len({r[0] for r in rows}) > 40  # and mostly distinct architectures


@pytest.mark.slow
def test_per_block_random_samples_train_on_real_cifar(cifar10_zip):
    x, y = cifar_batch(cifar10_zip, 8)
    space = create_space("attention", layers=[2, 1, 1, 2], width=8, per_block=True)
    for sample in random_samples(space, 10, seed=1):
        net = space.build(sample, (3, 32, 32), 10)
        train_one_step(net, x, y)
        plan = space.plan(sample)
        for st in range(4):
            found = [attention_in(blk) for blk in getattr(net, f"layer{st + 1}")]
            assert found == [name for name, _r in plan[st]]


def test_same_sample_gives_same_genotype_and_network():
    space = create_space("attention", **SMALL)
    sample = stage_sample(["se", "nl", "eca", "cbam"], [8, 4, None, 16])
    text = space.to_json(sample)
    assert json.loads(text)["sample"] == space.validate(sample)
    assert space.from_json(text) == space.validate(sample)
    assert space.key(sample) == space.key(space.from_json(text)) == "se8|nl4|eca|cbam16"
    nets = []
    for _ in range(2):
        torch.manual_seed(3)
        nets.append(space.build(sample, (3, 32, 32), 10))
    assert repr(nets[0]) == repr(nets[1])
    a, b = nets[0].state_dict(), nets[1].state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("attn", ["se", "eca", "cbam", "gc", "nl"])
def test_built_network_carries_the_sampled_modules(attn):
    layers = [2, 1, 3, 1]
    space = create_space("attention", layers=layers, width=16)
    reducible = ATTENTIONS[attn][1]
    # the searched module in stages 1 and 3, none in 2, SE (r=4) in 4
    sample = stage_sample([attn, "none", attn, "se"], [8 if reducible else None, None, 8 if reducible else None, 4])
    net = space.build(sample, (3, 32, 32), 10)
    for s, stage in enumerate([net.layer1, net.layer2, net.layer3, net.layer4]):
        found = [attention_in(blk) for blk in stage]
        assert found == [sample[f"stage{s + 1}/attn"]] * layers[s]
        for blk in stage:
            if blk.se is not None and ATTENTIONS[attention_in(blk)][1]:
                channels = 16 * 2**s
                assert hidden_width(blk.se) == channels // sample[f"stage{s + 1}/reduction"]
    out = net(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)


def test_reduction_exists_only_for_modules_that_have_one():
    space = create_space("attention", **SMALL)
    ok = stage_sample(["eca", "none", "se", "gc"], [None, None, 16, 4])
    space.validate(ok)
    with pytest.raises(SampleValidationError, match="inactive") as e:
        space.validate({**ok, "stage1/reduction": 8})
    assert e.value.label == "stage1/reduction"
    missing = dict(ok)
    del missing["stage3/reduction"]
    with pytest.raises(SampleValidationError, match="missing value for 'stage3/reduction'"):
        space.validate(missing)
    with pytest.raises(SampleValidationError, match="is not one of"):
        space.validate({**ok, "stage2/attn": "transformer"})


def test_size_matches_the_samples_a_discrete_strategy_can_reach():
    space = create_space("attention", layers=[1, 1, 1, 1], width=8, choices=["none", "eca", "se"], reductions=[4, 16])
    samples = enumerate_samples(space)
    assert len(samples) == space.size() == (1 + 1 + 2) ** 4
    assert len({space.key(s) for s in samples}) == len(samples)
    for s in samples[:: max(1, len(samples) // 20)]:
        space.validate(s)
    per_block = create_space("attention", layers=[2, 1, 1, 1], width=8, choices=["none", "gc"], reductions=[8], per_block=True)
    assert len(enumerate_samples(per_block)) == per_block.size() == 2**5


def test_options_are_checked_and_name_the_valid_values():
    with pytest.raises(ValueError, match="valid: none, se"):
        create_space("attention", choices=["se", "transformer"])
    with pytest.raises(ValueError, match="stage depths"):
        create_space("attention", layers=[2, 2, 2])
    with pytest.raises(ValueError, match="even"):
        create_space("attention", width=15)
    with pytest.raises(ValueError, match="valid: basic, bottleneck"):
        create_space("attention", block="wide")


def test_cifar_stem_keeps_32x32_and_imagenet_stem_downsamples():
    sample = stage_sample(["none"] * 4, [None] * 4)
    sizes = {}
    for stem, shape in (("auto", (3, 32, 32)), ("imagenet", (3, 64, 64))):
        net = create_space("attention", stem=stem, **SMALL).build(sample, shape, 10).eval()
        seen = []
        hooks = [getattr(net, f"layer{i}").register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape[1:]))) for i in range(1, 5)]
        with torch.no_grad():
            assert net(torch.randn(1, *shape)).shape == (1, 10)
        for h in hooks:
            h.remove()
        sizes[stem] = seen
    assert sizes["auto"] == [(16, 32, 32), (32, 16, 16), (64, 8, 8), (128, 4, 4)]
    assert sizes["imagenet"] == [(16, 16, 16), (32, 8, 8), (64, 4, 4), (128, 2, 2)]


def test_bottleneck_blocks_and_one_channel_input():
    space = create_space("attention", layers=[1, 1, 1, 1], width=8, block="bottleneck")
    sample = stage_sample(["cbam", "gc", "se", "eca"], [4, 4, 4, None])
    net = space.build(sample, (1, 8, 8), 10)  # digits-sized input
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    assert hidden_width(net.layer1[0].se) == 8 * 4 // 4  # bottleneck output = 4 x planes


def test_tpe_proposes_valid_samples():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = create_space("attention", **SMALL)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=5))
    for i in range(15):
        trial = study.ask()
        sample = space.validate(space.suggest(trial))
        study.tell(trial, float(sum(sample[f"stage{k}/attn"] == "se" for k in range(1, 5))))


def test_draw_writes_a_stage_table(tmp_path):
    space = create_space("attention", per_block=True, **SMALL)
    sample = {"stage1/block0/attn": "se", "stage1/block0/reduction": 16, "stage2/block0/attn": "eca",
              "stage3/block0/attn": "none", "stage4/block0/attn": "nl", "stage4/block0/reduction": 8}
    files = space.draw(sample, str(tmp_path / "arch"))
    assert sorted(p.rsplit(".", 1)[1] for p in files) == ["png", "svg"]
    assert "<svg" in (tmp_path / "arch.svg").read_text()
    assert (tmp_path / "arch.png").stat().st_size > 1000


def test_sweep_file_loads_and_its_space_builds():
    from pathlib import Path

    from nasforge.platform.engine.config import load_sweep
    from nasforge.search_spaces import create_composite

    cfg = load_sweep(Path(__file__).resolve().parents[1] / "sweeps" / "cifar10_attention.yaml")
    assert (cfg.task.name, cfg.task.data.name, cfg.strategy.name, cfg.budget.trials) == ("classification", "cifar10", "tpe", 20)
    space = create_composite([{"name": p.name, "options": p.options} for p in cfg.space])
    assert space.name == "attention+hparams"
    sample = random_samples(space, 1, seed=0)[0]
    assert space.build(sample, (3, 32, 32), 10)(torch.randn(2, 3, 32, 32)).shape == (2, 10)
