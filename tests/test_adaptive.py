"""Adaptive inference (BlockDrop / SkipNet / ConvNet-AIG): blocks really skipped per input, the
FLOPs counted for what ran, the policy learning to spend less as the price grows, and adaptive
versions in the registry (load in a fresh process, evaluate reproduces the record)."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from arch_helpers import random_samples
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nasforge.search_spaces.gated import AdaptiveResNet, GatedResNet, skip_block
from nasforge.search_spaces.resnet import build_resnet, iter_blocks


def _backbone(layers=(2, 2, 2, 2), width=8, seed=0) -> nn.Module:
    """A timm CIFAR ResNet with non-trivial BN affine weights (timm zero-inits the last BN of
    each residual branch, which would make a block and its skip agree at init)."""
    torch.manual_seed(seed)
    net = build_resnet(list(layers), width, (3, 32, 32), 10)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.1, 0.1)
    return net.eval()


def _call_log(net: nn.Module) -> dict[int, list[int]]:
    """Block index -> batch sizes it was called with (forward hooks on every residual block)."""
    log: dict[int, list[int]] = {}
    for k, (_, _, blk) in enumerate(iter_blocks(net)):
        log[k] = []
        blk.register_forward_hook(lambda m, inp, out, k=k: log[k].append(len(inp[0])))
    return log


def test_all_gates_open_is_exactly_the_static_network():
    bb = _backbone()
    x = torch.randn(6, 3, 32, 32)
    with torch.no_grad():
        static = bb(x)
        gated = GatedResNet(bb)
        assert torch.equal(gated(x), static)
        assert torch.equal(gated(x, lambda k, h: torch.ones(len(h), dtype=torch.bool)), static)
        for kind in ("policy", "gates"):
            ada = AdaptiveResNet(bb, kind).eval()
            assert torch.equal(ada(x, keep=torch.ones(6, ada.num_blocks, dtype=torch.bool)), static)


def test_a_dropped_block_is_not_called_and_partial_drops_run_only_the_kept_inputs():
    bb = _backbone()
    ada = AdaptiveResNet(bb, "policy").eval()
    log = _call_log(bb)
    projected = bb.layer2[0]  # the first block of stage 2 has a projection shortcut
    conv_calls = []
    projected.conv1.register_forward_hook(lambda m, i, o: conv_calls.append(1))
    x = torch.randn(6, 3, 32, 32)
    keep = torch.ones(6, 8, dtype=torch.bool)
    keep[:, 3] = False  # layer2.1: identity shortcut
    keep[:, 2] = False  # layer2.0: projection shortcut only
    keep[:, 1] = torch.tensor([True, False, True, False, False, False])
    with torch.no_grad():
        out = ada(x, keep)
        every = ada(x, keep | torch.arange(8).eq(1))  # the same but block 1 kept for all
        none = ada(x, keep & ~torch.arange(8).eq(1))  # ... dropped for all
    assert log[3] == [] and log[2] == [] and conv_calls == []
    assert log[1][0] == 2  # only the two inputs that keep block 1 went through it
    assert log[0] == [6, 6, 6]
    rows = keep[:, 1]
    assert torch.allclose(out[rows], every[rows], atol=1e-5) and torch.allclose(out[~rows], none[~rows], atol=1e-5)
    assert ada.last_keep.equal(keep & ~torch.arange(8).eq(1))


@pytest.mark.parametrize("kind", ["policy", "gates"])
def test_flops_per_input_are_those_of_the_blocks_that_ran(kind):
    bb = _backbone()
    ada = AdaptiveResNet(bb, kind).eval()
    with torch.no_grad():  # decisions that differ per input and per block
        if kind == "policy":
            ada.policy.fc.weight.normal_(0, 20.0)
            ada.policy.fc.bias.zero_()
        else:
            for g in ada.gates:
                g.net[-1].weight.normal_(0, 5.0)
                g.net[-1].bias.zero_()
    table = ada.cost_table((3, 32, 32))
    x = torch.randn(16, 3, 32, 32) + 2 * torch.randn(16, 3, 1, 1)  # inputs that differ when pooled
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        ada(x)
    keep = ada.last_keep
    assert 0 < keep.float().mean() < 1 and len({tuple(r.tolist()) for r in keep}) > 1
    assert counter.get_total_flops() == int(table.per_input(keep).sum())  # what ran, counted
    assert table.static == FlopCounterMode_total(bb, (3, 32, 32))
    assert table.per_input(torch.zeros(1, 8, dtype=torch.bool))[0] < table.static


def FlopCounterMode_total(net: nn.Module, shape) -> int:  # noqa: N802 - reads as the tool it calls
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(torch.zeros(1, *shape))
    return counter.get_total_flops()


def test_gates_learn_through_the_straight_through_estimator():
    bb = _backbone()
    ada = AdaptiveResNet(bb, "gates")
    ada.gates.train()
    x = torch.randn(8, 3, 32, 32)
    out = ada(x)
    assert set(ada.last_soft.detach().unique().tolist()) <= {0.0, 1.0}  # hard forward
    (out.square().mean() + ada.last_soft.sum()).backward()
    assert all(g.net[2].weight.grad.abs().sum() > 0 for g in ada.gates)  # soft backward


def test_the_adaptive_task_refuses_a_network_without_the_adaptive_interface():
    from nasforge.tasks.adaptive import AdaptiveTask

    with pytest.raises(TypeError, match="the adaptive task needs an adaptive network .*; ResNet has no kind, "
                                        "num_blocks, backbone, decider, cost_table"):
        AdaptiveTask(_backbone(), num_classes=10)
    AdaptiveTask(AdaptiveResNet(_backbone(), "gates"), num_classes=10)  # duck typing: the space's network passes


def test_the_adaptive_task_loads_base_from_a_file_and_says_what_a_registry_reference_needs(tmp_path):
    from nasforge.tasks.adaptive import AdaptiveTask

    bb, other = _backbone(seed=0), _backbone(seed=1)
    torch.save(other.state_dict(), tmp_path / "weights.pt")
    task = AdaptiveTask(AdaptiveResNet(bb, "policy"), num_classes=10, base=str(tmp_path / "weights.pt"))
    task.on_fit_start()
    assert all(torch.equal(a, b) for a, b in zip(bb.state_dict().values(), other.state_dict().values()))
    task = AdaptiveTask(AdaptiveResNet(_backbone(layers=(1, 1, 1, 1)), "policy"), num_classes=10,
                        base=str(tmp_path / "weights.pt"))
    with pytest.raises(ValueError, match="does not fit the backbone .*Unexpected key.*layer1.1.*; the space's "
                                         "backbone genotype must be that model's genotype.json"):
        task.on_fit_start()
    task = AdaptiveTask(AdaptiveResNet(_backbone(), "policy"), num_classes=10, base="cifar10_resnet:latest")
    with pytest.raises(FileNotFoundError, match="base 'cifar10_resnet:latest' is not a file: .*`nasforge sweep run` "
                                                "resolves a registered model"):
        task.on_fit_start()


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown adaptive kind 'skip'; valid: policy, gates"):
        AdaptiveResNet(_backbone(), "skip")


def test_stochastic_depth_grows_with_depth_in_training_and_is_off_at_eval():
    """The base a skipping policy starts from: timm's DropPath in every residual branch, the rate
    linear in depth (0 at the first block, ``drop_path`` at the last); at eval every block runs,
    so the network gives exactly the output of the same weights built without it; a branch it
    drops leaves exactly what a skipped block outputs."""
    from timm.layers import DropPath

    from nasforge.search_spaces import create_space

    torch.manual_seed(0)
    net = build_resnet([2, 2, 2, 2], 8, (3, 32, 32), 10, drop_path=0.5)
    net.load_state_dict(_backbone().state_dict())  # non-zero residual branches
    rates = [blk.drop_path.drop_prob if isinstance(blk.drop_path, DropPath) else 0.0
             for _, _, blk in iter_blocks(net)]
    assert rates == pytest.approx([0.5 * k / 7 for k in range(8)])
    plain = _backbone()
    x = torch.randn(16, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(net.eval()(x), plain.eval()(x))
        assert torch.equal(net(x), net(x))
        net.train()
        torch.manual_seed(1)
        first = net(x)
        assert not torch.equal(first, net(x))  # training: another draw of dropped branches
        h = torch.relu(torch.randn(4, 8, 32, 32))  # a block's input follows a ReLU
        for blk in (net.layer1[1], net.layer2[0]):  # identity and projection shortcut
            blk.drop_path.drop_prob = 1.0  # stochastic depth drops the branch for every input
            assert torch.equal(blk(h), skip_block(blk, h))  # = what a skipped block outputs
            h = blk(h)
    for name in ("attention", "reallocation"):  # a space option, searchable like the others
        space = create_space(name, width=8, drop_path=0.2)
        built = space.build(random_samples(space, 1)[0], (3, 32, 32), 10)
        assert max(blk.drop_path.drop_prob for _, _, blk in iter_blocks(built)
                   if isinstance(blk.drop_path, DropPath)) == pytest.approx(0.2)
        with pytest.raises(ValueError, match=r"drop_path must be a number in \[0, 1\), got 1.5"):
            create_space(name, drop_path=1.5)


# ----------------------------------------------------------------------------- on real CIFAR-10
@pytest.fixture(scope="module")
def cifar_trained(cifar10_zip):
    """A small CIFAR ResNet trained one epoch on 2048 real images, and its data module."""
    import lightning as L

    from nasforge.platform.engine.trial import quiet_libraries
    from nasforge.tasks.cifar10 import CIFAR10DataModule
    from nasforge.tasks.classification import ClassificationTask

    quiet_libraries()
    torch.set_num_threads(1)
    L.seed_everything(0, verbose=False)
    dm = CIFAR10DataModule(path=str(cifar10_zip), subset=2048, val_subset=256, batch_size=64, seed=0)
    net = build_resnet([1, 1, 1, 1], 8, (3, 32, 32), 10)
    L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
              enable_progress_bar=False, enable_model_summary=False).fit(
        ClassificationTask(net, 10, lr=0.05), datamodule=dm)
    return net.eval(), dm


@pytest.mark.slow  # trains a CIFAR ResNet (2048 images), then the policy at three prices
def test_the_policy_uses_fewer_blocks_as_the_cost_weight_grows(cifar_trained):
    from nasforge.platform.engine.adaptive_cost import measure
    from nasforge.platform.registry.adaptive import AdaptiveOptions, train_adaptive

    bb, dm = cifar_trained
    used = []
    for weight in (0.0, 1.0, 4.0):
        o = AdaptiveOptions(kind="policy", cost_weight=weight, decide_epochs=1, finetune_epochs=0,
                            lr=0.01, curriculum=0.0, limit_train_batches=24)
        net = train_adaptive(copy.deepcopy(bb), dm, o)
        used.append(measure(net, dm)["blocks_mean"])
    print("blocks used at cost weights 0, 1, 4:", used)
    assert used[0] > used[1] > used[2], used


# ----------------------------------------------------------------------------- registry and sweep
TINY_BACKBONE = {"space": [{"name": "reallocation",
                            "options": {"total_blocks": 4, "block": "basic", "width": 8, "dilations": [1]}}],
                 "sample": {"realloc/depths": "1-1-1-1", **{f"realloc/stage{i}/dilation": 1 for i in range(1, 5)}}}


@pytest.fixture(scope="module")
def promoted_base(cifar10_zip, tmp_path_factory):
    """A real 1-trial CIFAR-10 sweep of a small ResNet (512 images, 1 epoch), promoted as
    ``cifar-resnet:v1`` into a fresh registry. Returns (runs root, registry folder)."""
    from nasforge.platform.engine.config import parse_sweep
    from nasforge.platform.registry import promote
    from nasforge.platform.engine.sweep import run_sweep

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("adaptive")
    cfg = parse_sweep({
        "name": "cifar-base", "seed": 0,
        "task": {"name": "classification",
                 "data": {"name": "cifar10", "path": str(cifar10_zip), "subset": 512, "val_subset": 256},
                 "options": {"batch_size": 64, "lr": 0.05}},
        "space": TINY_BACKBONE["space"], "strategy": {"name": "random"}, "budget": {"trials": 1},
        "pruner": {"name": "none"}, "objectives": [{"metric": "val/acc", "direction": "maximize"}],
        "trainer": {"max_epochs": 1, "accelerator": "cpu", "cpu_threads": 1}, "tracking": {"mode": "disabled"},
    })
    run_sweep(cfg, root=str(root / "runs"), show_progress=False)
    promote("cifar-base", best=True, model="cifar-resnet", root=str(root / "runs"), registry=root / "reg")
    return root / "runs", root / "reg"


@pytest.mark.slow  # trains the decider and fine-tunes the backbone, then evaluates in a second process
def test_an_adaptive_version_loads_in_a_fresh_process_and_evaluate_reproduces_it(promoted_base, capsys):
    from nasforge.platform.cli import main
    from nasforge.platform.registry import Registry

    _, reg = promoted_base
    rc = main(["registry", "adapt", "cifar-resnet:v1", "--kind", "policy", "--cost-weight", "4",
               "--lr", "0.01", "--curriculum", "0", "--decide-epochs", "1", "--finetune-epochs", "1",
               "--registry", str(reg)])  # curriculum 0: every block decided from the first of 8 steps
    assert rc == 0
    assert "registered as cifar-resnet:v2" in capsys.readouterr().out
    v = Registry(reg).resolve("cifar-resnet")
    meta = v.meta()
    rec = meta["metrics"]
    assert v.version == "v2" and meta["adaptive"]["base"] == "cifar-resnet:v1"
    assert "adaptive.json" in v.manifest()["files"]
    assert rec["blocks_mean"] < 1.0  # a price of 4 drops blocks (in 8 decide steps, not always
    # enough to outweigh the decider's own FLOPs: 7 % of this tiny backbone)
    script = (
        "import json, torch\n"
        "from torch.utils.flop_counter import FlopCounterMode\n"
        "from nasforge.platform.registry import Registry, create_datamodule, evaluate, load\n"
        f"m = load('cifar-resnet:v2', registry={str(reg)!r})\n"
        f"dm = create_datamodule(Registry({str(reg)!r}).resolve('cifar-resnet:v2').meta())\n"
        "dm.setup('validate')\n"
        "x, _ = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)  # real images\n"
        "c = FlopCounterMode(display=False)\n"
        "with torch.no_grad(), c:\n"
        "    m(x)\n"
        "table = m.cost_table((3, 32, 32))\n"
        f"out = evaluate('cifar-resnet:v2', registry={str(reg)!r})\n"
        "print(json.dumps({'type': type(m).__name__, 'training': m.training, 'flops': c.get_total_flops(),\n"
        "                  'table_flops': float(table.per_input(m.last_keep).sum()),\n"
        "                  'all_blocks_flops': len(x) * (table.fixed + sum(table.run)), 'eval': out}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["type"] == "AdaptiveResNet" and got["training"] is False
    assert got["flops"] == got["table_flops"] < got["all_blocks_flops"]  # the loaded forward skips blocks
    assert got["eval"]["val/acc"] == pytest.approx(rec["val/acc"], abs=1e-6)
    assert got["eval"]["cost/flops_mean"] == pytest.approx(rec["cost/flops_mean"], rel=1e-9)
    assert "cost/flops_p90" in got["eval"]


def test_adapt_refuses_bad_options_in_one_line_before_writing(promoted_base, capsys):
    from nasforge.platform.cli import main
    from nasforge.platform.registry import Registry

    _, reg = promoted_base
    before = [v.version for v in Registry(reg).versions("cifar-resnet", complete_only=False)]
    rc = main(["registry", "adapt", "cifar-resnet:v1", "--alpha", "0.3", "--registry", str(reg)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "alpha must be in (0.5, 1]" in err
    assert [v.version for v in Registry(reg).versions("cifar-resnet", complete_only=False)] == before


def test_the_cifar10_adaptive_sweep_file_searches_cost_weight_and_kind(promoted_base, cifar10_zip, monkeypatch):
    """sweeps/cifar10_adaptive.yaml, cut to 3 tiny trials on the promoted base: every trial
    reports accuracy and mean FLOPs, and the two-objective study has a Pareto front."""
    import yaml

    from nasforge.platform.engine.config import parse_sweep
    from nasforge.platform.registry.weight_refs import resolve_weight_refs
    from nasforge.platform.views.leaderboard import leaderboard_rows
    from nasforge.platform.engine.sweep import run_sweep

    runs, reg = promoted_base
    monkeypatch.setenv("NASFORGE_REGISTRY", str(reg))
    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "sweeps" / "cifar10_adaptive.yaml").read_text())
    raw["task"]["data"].update(path=str(cifar10_zip), subset=256, val_subset=128)
    raw["task"]["options"].update(base="cifar-resnet:v1", decide_epochs=1, batch_size=64)
    raw["space"][0]["options"]["backbone"] = TINY_BACKBONE
    raw.update(budget={"trials": 3}, tracking={"mode": "disabled"})
    raw["trainer"]["max_epochs"] = 2
    (ref,) = resolve_weight_refs(parse_sweep(raw), runs)  # what `sweep run` does before anything runs
    raw["task"]["options"]["base"] = ref.path
    cfg = parse_sweep(raw)
    study = run_sweep(cfg, root=str(runs), show_progress=False)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) == 3, [(t.state.name, t.user_attrs.get("error")) for t in study.trials]
    for t in done:
        acc, mflops = t.values
        assert 0 <= acc <= 1 and 0 < mflops
        assert t.params["adaptive/kind"] in ("policy", "gates") and 0.1 <= t.params["hp/cost_weight"] <= 4.0
    rows = leaderboard_rows(study, cfg)
    assert study.best_trials and any(r["rank"] == 1 for r in rows)


# ----------------------------------------------------------------------------- base: a registered model
def _adaptive_sweep_file(tmp_path: Path, cifar10_zip, base: str, name: str = "ada-base") -> Path:
    """sweeps/cifar10_adaptive.yaml cut to one tiny trial on TINY_BACKBONE that only trains the
    decider (one decide epoch of one), so the backbone keeps the weights it started from."""
    import yaml

    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "sweeps" / "cifar10_adaptive.yaml").read_text())
    raw["name"] = name
    raw["task"]["data"].update(path=str(cifar10_zip), subset=128, val_subset=64)
    raw["task"]["options"].update(base=base, decide_epochs=1, batch_size=64)
    raw["space"][0]["options"].update(backbone=TINY_BACKBONE, kinds=["policy"])
    raw.update(budget={"trials": 1}, tracking={"mode": "disabled"}, strategy={"name": "random"})
    raw["trainer"]["max_epochs"] = 1
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("base, message", [
    ("no-such-model:latest", "task.options.base: no model named 'no-such-model' in the registry"),
    ("cifar-resnet:nosuch", "task.options.base: cifar-resnet has no alias 'nosuch'"),
    ("weights/none.pt", "task.options.base: 'weights/none.pt' is neither a file nor a registered model"),
])
def test_an_unknown_base_is_one_line_before_anything_is_written(promoted_base, cifar10_zip, tmp_path, monkeypatch,
                                                                  capsys, base, message):
    from nasforge.platform.cli import main

    _, reg = promoted_base
    monkeypatch.setenv("NASFORGE_REGISTRY", str(reg))
    file = _adaptive_sweep_file(tmp_path, cifar10_zip, base)
    capsys.readouterr()
    rc = main(["sweep", "run", str(file), "--root", str(tmp_path / "runs"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow  # three tiny trials, two of them in worker processes
def test_base_starts_every_trial_from_the_registered_weights_and_a_resume_keeps_its_version(
        promoted_base, cifar10_zip, tmp_path, monkeypatch, capsys):
    """``base: MODEL:latest`` is resolved once, by the command line: the run folder records the
    version's weights file, the trial's backbone starts from exactly those weights, and a resume
    (with ``--workers``) after ``latest`` moved to a new version keeps the version the sweep
    started with."""
    import shutil

    import yaml

    from nasforge.platform.cli import main
    from nasforge.platform.engine.config import load_sweep
    from nasforge.platform.engine.inheritance import network_state
    from nasforge.platform.engine.storage import load_study
    from nasforge.platform.registry import Registry
    from nasforge.platform.registry.weight_refs import resolve_weight_refs

    _, shared = promoted_base
    reg = tmp_path / "reg"  # this test's own registry: v1 of the promoted base, then a v2
    shutil.copytree(shared / "cifar-resnet" / "versions" / "v1", reg / "cifar-resnet" / "versions" / "v1")
    monkeypatch.setenv("NASFORGE_REGISTRY", str(reg))
    v1 = Registry(reg).resolve("cifar-resnet:v1")
    weights = torch.load(os.path.join(v1.path, "weights.pt"), weights_only=True)
    file = _adaptive_sweep_file(tmp_path, cifar10_zip, "cifar-resnet:latest")
    runs = tmp_path / "runs"

    def run(trials: int, *more: str) -> tuple[str, list]:
        capsys.readouterr()
        rc = main(["sweep", "run", str(file), "--root", str(runs), "--trials", str(trials), "--no-progress", *more])
        err = capsys.readouterr().err
        assert rc == 0, err[-2000:]
        study = load_study("ada-base", runs)
        return err, [t for t in study.trials if t.state.name == "COMPLETE"]

    def backbone(trial) -> dict:
        state = network_state(trial.user_attrs["checkpoint"])
        return {k.removeprefix("net.backbone."): v for k, v in state.items() if k.startswith("net.backbone.")}

    def same(a: dict, b: dict) -> bool:
        return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    err, done = run(1)
    assert "task.options.base cifar-resnet:latest is cifar-resnet:v1" in err
    recorded = yaml.safe_load((runs / "ada-base" / "sweep.yaml").read_text())["task"]["options"]["base"]
    assert recorded == os.path.join(v1.path, "weights.pt")
    assert len(done) == 1 and same(backbone(done[0]), weights)  # bit-identical: the decide phase froze it

    v2 = Registry(reg).allocate("cifar-resnet")  # a new latest, with other weights
    for name in ("model.json", "genotype.json", "config.yaml"):
        shutil.copyfile(os.path.join(v1.path, name), os.path.join(v2.path, name))
    torch.save({k: v + 1 if v.is_floating_point() else v for k, v in weights.items()}, os.path.join(v2.path, "weights.pt"))
    Registry.seal(v2)
    (new,) = resolve_weight_refs(load_sweep(file, {"name": "ada-new"}), runs)
    assert new.version == "cifar-resnet:v2"  # a new sweep reads the new latest ...
    err, done = run(2, "--workers", "2")  # ... a resumed one, in worker processes, the version it started with
    assert "cifar-resnet:latest is cifar-resnet:v1, the version this sweep started with" in err
    assert len(done) == 2 and all(same(backbone(t), weights) for t in done)
