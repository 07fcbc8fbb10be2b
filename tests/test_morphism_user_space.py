"""A user's own space opts in to network morphism by implementing the `MorphismSpace` operations.

`ConvChainSpace` is written here as a user would write it, with nothing of `morphable`: a chain of
3x3 conv-ReLU layers (no batch norm) and a linear head, whose children deepen by an identity conv
and widen Net2Net-style. A 3-trial `morphism` sweep on real CIFAR-10 images starts each child
from its parent's transformed checkpoint at its parent's accuracy; a space that lacks an
operation is one line naming what is missing, exit 2, nothing written.
"""
from __future__ import annotations

import random
import sys

import pytest
import torch
import yaml
from torch import nn

from arch_helpers import cifar_batch
from nasforge.search_spaces import Categorical, Int, SampleValidationError, Space
from nasforge.search_spaces.morph_arch import Layer
from nasforge.search_spaces.morphism import Morph, MorphismSpace

WIDTHS = (8, 16, 24, 32)


class ConvChain(nn.Module):
    def __init__(self, widths, c_in: int, num_classes: int):
        super().__init__()
        self.convs = nn.ModuleList()
        for w in widths:
            self.convs.append(nn.Conv2d(c_in, w, 3, padding=1))
            c_in = w
        self.head = nn.Linear(c_in, num_classes)

    def forward(self, x):  # (B, C, H, W)
        for conv in self.convs:
            x = torch.relu(conv(x))
        return self.head(x.mean(dim=(2, 3)))  # (B, classes)


class ConvChainSpace(Space):
    """``depth`` conv-ReLU layers of ``width<i>`` channels; one stage in the morphism's terms."""

    name = "user_convchain"
    builds_network = True

    def dimensions(self):
        dims = [Int("depth", low=1, high=3)]
        for i in range(3):
            dims.append(Categorical(f"width{i}", choices=WIDTHS, when={"depth": list(range(i + 1, 4))}))
        return dims

    def build(self, sample, input_shape, num_classes):
        return ConvChain([sample[f"width{i}"] for i in range(sample["depth"])], input_shape[0], num_classes)

    # -- the morphism operations (nasforge.search_spaces.morphism.MorphismSpace) --------------
    def seed_arch(self):
        return ((Layer(8),),)

    def arch(self, sample):
        s = self.validate(sample)
        return (tuple(Layer(s[f"width{i}"]) for i in range(s["depth"])),)

    def sample_of(self, arch):
        (layers,) = arch
        return self.validate({"depth": len(layers), **{f"width{i}": x.width for i, x in enumerate(layers)}})

    def random_morph(self, arch, rng):
        n = len(arch[0])
        for _ in range(50):
            m = rng.choice([Morph("deepen", 0, rng.randint(1, n), 3),
                            Morph("widen", 0, rng.randrange(n), rng.choice(WIDTHS), rng.randrange(2 ** 31))])
            try:
                self.sample_of(self.morph_arch(arch, m))
                return m
            except ValueError:  # SampleValidationError is one
                continue
        raise SampleValidationError("no deepen or widen keeps this chain in the space")

    def morph_arch(self, arch, m):
        layers = list(arch[0])
        if m.kind == "deepen" and 1 <= m.layer <= len(layers):
            layers.insert(m.layer, Layer(layers[m.layer - 1].width))
        elif m.kind == "widen" and 0 <= m.layer < len(layers) and m.value > layers[m.layer].width:
            layers[m.layer] = Layer(m.value)
        else:
            raise ValueError(f"cannot {m.kind} layer {m.layer}")
        return (tuple(layers),)

    def morph_state(self, arch, state, m):
        if m.kind == "deepen":  # an identity conv after a ReLU: the ReLU after it changes nothing
            out = {}
            for k, v in state.items():
                parts = k.split(".")
                if parts[0] == "convs" and int(parts[1]) >= m.layer:
                    parts[1] = str(int(parts[1]) + 1)
                out[".".join(parts)] = v
            w = arch[0][m.layer - 1].width
            out[f"convs.{m.layer}.weight"] = nn.init.dirac_(torch.empty(w, w, 3, 3))
            out[f"convs.{m.layer}.bias"] = torch.zeros(w)
            return out
        # widen: replicate random units; the consumer divides each unit's weight among its copies
        old = arch[0][m.layer].width
        gen = torch.Generator().manual_seed(int(m.seed))
        units = list(range(old)) + torch.randint(old, (m.value - old,), generator=gen).tolist()
        copies = torch.bincount(torch.tensor(units), minlength=old).float()[units]
        out = dict(state)
        out[f"convs.{m.layer}.weight"] = state[f"convs.{m.layer}.weight"][units]
        out[f"convs.{m.layer}.bias"] = state[f"convs.{m.layer}.bias"][units]
        nxt = f"convs.{m.layer + 1}.weight" if m.layer + 1 < len(arch[0]) else "head.weight"
        w = state[nxt]
        out[nxt] = w[:, units] / copies.view(1, -1, *([1] * (w.dim() - 2)))
        return out


class NoWeightsSpace(ConvChainSpace):
    """Genotype edits only: a child could not inherit its parent's weights."""

    name = "user_convchain_genotype_only"
    morph_state = None


def sweep_file(folder, cifar10_zip, space: str):
    data = {
        "name": "userspace", "seed": 0,
        "task": {"name": "classification",
                 "data": {"name": "cifar10", "path": str(cifar10_zip), "subset": 256, "val_subset": 256},
                 "options": {"batch_size": 64, "warmup_epochs": 0}},
        "space": [{"class_path": f"{__name__}.{space}"}],
        "strategy": {"name": "morphism", "options": {"child_epochs": 1, "expansions": 6}},
        "budget": {"trials": 3}, "pruner": {"name": "none"},
        "objectives": [{"metric": "val/acc", "direction": "maximize"}],
        "trainer": {"accelerator": "cpu", "devices": 1, "max_epochs": 1, "cpu_threads": 1},
        "tracking": {"mode": "disabled"},
    }
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_the_user_space_operations_preserve_the_function_on_real_images(cifar10_zip):
    space, rng = ConvChainSpace(), random.Random(0)
    arch = space.seed_arch()
    torch.manual_seed(0)
    net = space.build(space.sample_of(arch), (3, 32, 32), 10).eval()
    x, _ = cifar_batch(cifar10_zip, 16)
    with torch.no_grad():
        want = net(x)
    state = net.state_dict()
    for _ in range(5):
        m = space.random_morph(arch, rng)
        state, arch = space.morph_state(arch, state, m), space.morph_arch(arch, m)
    child = space.build(space.sample_of(arch), (3, 32, 32), 10).eval()
    child.load_state_dict(state)
    assert isinstance(space, MorphismSpace) and len(arch[0]) > 1 and arch[0][0].width > 8
    with torch.no_grad():
        assert torch.allclose(child(x), want, atol=1e-5)


@pytest.mark.slow
def test_a_morphism_sweep_over_a_user_space_inherits(cifar10_zip, tmp_path, monkeypatch):
    from nasforge.platform.engine.config import load_sweep
    from nasforge.platform.engine.sweep import run_sweep

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the sweep puts its folder first; undo after the test
    study = run_sweep(load_sweep(str(sweep_file(tmp_path, cifar10_zip, "ConvChainSpace"))), root="runs",
                      show_progress=False)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3, [t.user_attrs.get("fail_reason")
                                                                      for t in study.trials]
    space = ConvChainSpace()
    assert space.arch(study.trials[0].user_attrs["sample"]) == space.seed_arch()
    for child in study.trials[1:]:
        parent = study.trials[child.user_attrs["parent"]]
        first = child.user_attrs["inherited_metrics"]["val/acc"]
        assert abs(first - parent.user_attrs["metrics"]["val/acc"]) <= 0.005, (child.number, parent.number)
        assert child.user_attrs["inherited_from"] == parent.user_attrs["checkpoint"]


def test_a_space_without_an_operation_is_one_line_exit_2_and_writes_nothing(cifar10_zip, tmp_path, capsys,
                                                                            monkeypatch):
    from nasforge.platform.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    code = main(["sweep", "run", str(sweep_file(tmp_path, cifar10_zip, "NoWeightsSpace")), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.endswith("'user_convchain_genotype_only' lacks morph_state"), err
    assert not (tmp_path / "runs").exists()
