"""The `nasnet` space (NASNet cells, Zoph et al. 2018): 50 random samples train a step on real
CIFAR-10; genotypes and networks are reproducible; broken cells raise the typed error; the op
registry, ScheduledDropPath and the cell diagram behave as documented."""
from __future__ import annotations

import json

import pytest
import torch
from arch_helpers import cifar_batch, enumerate_samples, random_samples, train_one_step

from nasforge.platform.engine.cost import measure_cost
from nasforge.search_spaces import SampleValidationError, create_composite, create_space
from timm.layers import drop_path

from nasforge.search_spaces.drop_path import scheduled_drop_path_prob, set_drop_path_prob
from nasforge.search_spaces.nasnet import NASNET_OPS
from nasforge.search_spaces.nasnet_network import unused_blocks
from nasforge.search_spaces.ops import OPS, create_op

torch.set_num_threads(1)
SMALL = dict(C=8, N=1)


def _sample(seed: int = 0, **options) -> dict:
    return random_samples(create_space("nasnet", **options), 1, seed=seed)[0]


@pytest.mark.slow
def test_fifty_random_samples_build_train_one_step_on_real_cifar10_and_report_cost(cifar10_zip):
    space = create_space("nasnet", **SMALL)
    x, y = cifar_batch(cifar10_zip, n=8)  # (8, 3, 32, 32), real images of 8 classes
    samples = random_samples(space, 50, seed=0)
    params, flops, keys = [], [], set()
    for sample in samples:
        net = space.build(sample, (3, 32, 32), 10)
        loss = train_one_step(net, x, y)
        cost = measure_cost(net, (3, 32, 32), latency_runs=1, warmup_runs=0)
        assert loss > 0 and cost["cost/params"] > 0 and cost["cost/flops"] > 0
        params.append(cost["cost/params"])
        flops.append(cost["cost/flops"])
        keys.add(space.key(sample))
    print(f"nasnet C=8 N=1, 50 samples: params {min(params):,}..{max(params):,}, "
          f"MFLOPs {min(flops) / 1e6:.1f}..{max(flops) / 1e6:.1f}")
    assert len(keys) == 50  # random cells from a 1e30 space do not collide
    assert len(set(params)) > 10 and len(set(flops)) > 10  # the cell really changes the network


def test_same_sample_gives_same_genotype_and_same_network():
    space = create_space("nasnet", **SMALL)
    sample = _sample(3, **SMALL)
    assert space.key(sample) == space.key(dict(reversed(list(sample.items()))))
    assert space.from_json(space.to_json(sample)) == sample
    x = torch.randn(2, 3, 32, 32)  # inputs only need to be equal for both networks
    outs = []
    for _ in range(2):
        torch.manual_seed(0)
        net = space.build(sample, (3, 32, 32), 10).eval()
        outs.append((sum(p.numel() for p in net.parameters()), net(x)))
    assert outs[0][0] == outs[1][0]
    assert torch.equal(outs[0][1], outs[1][1])


def test_key_is_canonical_the_two_inputs_of_a_block_commute():
    space = create_space("nasnet", blocks=1, ops=["identity", "max_pool_3x3"])
    samples = enumerate_samples(space)
    # per cell: 2 inputs x 2 ops for each of the two operands -> 16 ordered, 10 unordered pairs
    assert len(samples) == 256 == space.size()
    assert len({space.key(s) for s in samples}) == 100
    s = samples[37]
    swapped = dict(s)
    for part in ("input", "op"):
        swapped[f"normal/block0/{part}0"], swapped[f"normal/block0/{part}1"] = (
            s[f"normal/block0/{part}1"], s[f"normal/block0/{part}0"])
    assert space.key(swapped) == space.key(s)


def test_every_declared_input_is_a_real_state():
    space = create_space("nasnet")
    for d in space.dims:
        if "/input" in d.label:
            k = int(d.label.split("/")[1].removeprefix("block"))
            assert d.choices == tuple(range(k + 2)), d.label  # h(i-2), h(i-1), blocks 0..k-1
        else:
            assert d.choices == NASNET_OPS
    assert len(space.dims) == 2 * 5 * 4


def test_a_cell_that_references_a_missing_block_raises_the_typed_error_with_a_reason():
    space = create_space("nasnet")
    sample = _sample(1)
    with pytest.raises(SampleValidationError) as err:
        space.validate({**sample, "normal/block1/input0": 5})
    assert err.value.label == "normal/block1/input0"
    assert "block3" in err.value.reason and "after block1" in err.value.reason
    assert "0 = h(i-2), 1 = h(i-1), 2 = block0" in err.value.reason
    with pytest.raises(SampleValidationError, match="block5, which does not exist"):
        space.build({**sample, "reduce/block4/input1": 7}, (3, 32, 32), 10)
    with pytest.raises(SampleValidationError, match="block2 itself"):
        space.key({**sample, "normal/block2/input0": 4})
    with pytest.raises(SampleValidationError, match="not one of"):
        space.validate({**sample, "normal/block0/op1": "conv_9x9"})
    # the same reason when nasnet is searched together with hyperparameters
    both = create_composite([{"name": "nasnet"}, {"name": "hparams"}])
    joint = random_samples(both, 1, seed=2)[0]
    with pytest.raises(SampleValidationError, match="references block3, which is computed after block1"):
        both.validate({**joint, "normal/block1/input0": 5})
    with pytest.raises(SampleValidationError, match="missing value"):
        space.validate({k: v for k, v in sample.items() if k != "reduce/block3/op0"})


def test_cell_output_concatenates_exactly_the_unused_blocks():
    space = create_space("nasnet", C=4, N=1)
    sample = _sample(5, C=4, N=1)
    cells = space.cells(sample)
    net = space.build(sample, (3, 32, 32), 10)
    first_normal, first_reduce = net.cells[0], net.cells[1]
    assert first_normal.out_channels == 4 * len(unused_blocks(cells["normal"]))
    assert first_reduce.out_channels == 8 * len(unused_blocks(cells["reduce"]))
    assert len(unused_blocks(cells["normal"])) >= 1  # the last block is never used by another
    s = net.stem(torch.randn(2, 3, 32, 32))  # (2, 12, 32, 32)
    h1 = first_normal(s, s)
    assert h1.shape == (2, first_normal.out_channels, 32, 32)
    assert first_reduce(s, h1).shape == (2, first_reduce.out_channels, 16, 16)


def test_builds_for_digits_and_trains_a_step_on_real_digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images[:8], dtype=torch.float32).unsqueeze(1) / 16.0  # (8, 1, 8, 8)
    y = torch.tensor(digits.target[:8])
    space = create_space("nasnet", C=4, N=1)
    for seed in range(3):
        net = space.build(_sample(seed, C=4, N=1), (1, 8, 8), 10)
        train_one_step(net, x, y)


def test_every_op_keeps_channels_and_stride_two_halves_any_size():
    assert set(NASNET_OPS) <= set(OPS)
    for name in NASNET_OPS:
        for h, w in ((8, 8), (7, 5)):
            x = torch.randn(2, 6, h, w)
            assert create_op(name, 6, 1)(x).shape == (2, 6, h, w), name
            assert create_op(name, 6, 2)(x).shape == (2, 6, (h + 1) // 2, (w + 1) // 2), name
    with pytest.raises(ValueError, match="valid: identity, sep_conv_3x3"):
        create_op("sep_conv_9x9", 6, 1)
    with pytest.raises(ValueError, match="valid: identity"):
        create_space("nasnet", ops=["identity", "zero"])


def test_scheduled_drop_path_grows_linearly_and_only_acts_in_training():
    assert [scheduled_drop_path_prob(e, 10, 0.3) for e in (0, 5, 10, 12)] == [0.0, 0.15, 0.3, 0.3]
    space = create_space("nasnet", C=4, drop_path=0.4)
    net = space.build(_sample(2, C=4), (3, 32, 32), 10)
    assert net.drop_path_prob == 0.0 and net.drop_path_max == 0.4
    assert set_drop_path_prob(net, 5, 10) == pytest.approx(0.2)
    assert net.drop_path_prob == pytest.approx(0.2)

    class Wrapper(torch.nn.Module):  # a task holding the network as `.network`
        def __init__(self, network):
            super().__init__()
            self.network = network

    assert set_drop_path_prob(Wrapper(net), 10, 10) == pytest.approx(0.4)
    assert set_drop_path_prob(torch.nn.Linear(2, 2), 1, 2) is None

    x = torch.ones(4000, 1, 1, 1)
    dropped = drop_path(x, 0.25, training=True)
    assert 0.2 < (dropped == 0).float().mean() < 0.3
    assert dropped.mean().item() == pytest.approx(1.0, abs=0.06)  # rescaled: expectation kept
    assert torch.equal(drop_path(x, 0.25, training=False), x)
    net.eval()
    inp = torch.randn(2, 3, 32, 32)
    assert torch.equal(net(inp), net(inp))  # eval: no paths dropped


def test_diagram_draws_both_cells_as_png_and_svg(tmp_path):
    from PIL import Image

    space = create_space("nasnet")
    files = space.draw(_sample(0), str(tmp_path / "cells"))
    assert sorted(files) == [str(tmp_path / "cells.png"), str(tmp_path / "cells.svg")]
    for f in files:
        assert (tmp_path / f).stat().st_size > 10_000
    with Image.open(files[0]) as img:
        w, h = img.size
    assert w > 800 and h > 500  # two panels of a 5-block cell at 150 dpi
    svg = (tmp_path / "cells.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg


def test_genotype_json_lists_both_cells():
    space = create_space("nasnet", blocks=2)
    sample = _sample(4, blocks=2)
    data = json.loads(space.genotype_json(sample))
    assert set(data) == {"normal", "reduce"} and len(data["normal"]) == 2
    (i0, op0), (i1, op1) = data["reduce"][1]
    assert op0 == sample["reduce/block1/op0"] and i1 == sample["reduce/block1/input1"]
