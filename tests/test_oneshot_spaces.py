"""Supernets of `nasnet`, `attention` and `reallocation` (weight-sharing NAS beyond nb201): each
is built from its space's own declaration, one active path computes exactly the stand-alone
network of that sample with the weights the supernet hands it, and `mode: one_shot` runs on
them end to end (scikit-learn's digits, shipped with the dependencies).
"""

from __future__ import annotations

import random

import pytest
import torch

SHAPE = (3, 16, 16)
SPACES = {
    "nasnet": ("nasnet", {"C": 4, "N": 1, "blocks": 3}),
    "nasnet_N2_B5": ("nasnet", {"C": 4, "N": 2, "blocks": 5,
                                "ops": ["identity", "sep_conv_3x3", "max_pool_3x3", "dil_conv_3x3"]}),
    "attention": ("attention", {"layers": [1, 2, 1, 1], "width": 8, "stn": [False, True],
                                "choices": ["none", "se", "eca", "cbam", "gc", "nl", "ra"]}),
    "attention_per_block": ("attention", {"layers": [1, 2, 1, 1], "width": 8, "per_block": True}),
    "reallocation": ("reallocation", {"width": 8, "total_blocks": 6}),
    "reallocation_per_block": ("reallocation", {"width": 8, "total_blocks": 6, "per_block": True}),
}


def _space(key):
    from nasforge.search_spaces import create_space

    name, options = SPACES[key]
    return create_space(name, **options)


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("key", list(SPACES))
def test_one_active_path_equals_the_standalone_network_with_the_same_weights(key, seed):
    from arch_helpers import assert_path_equals_standalone

    torch.manual_seed(seed)
    assert_path_equals_standalone(_space(key), SHAPE, seed, batch=4)


@pytest.mark.parametrize("key", list(SPACES))
def test_every_decision_of_the_supernet_is_a_dimension_of_the_space(key):
    from nasforge.search_spaces.supernet import choices

    space = _space(key)
    labels = {c.label for _, c in choices(space.build_supernet(SHAPE, 10))}
    # attention's reduction and mask depth are read by the attention slot with its module
    assert labels == {d.label for d in space.dims if not d.label.endswith(("/reduction", "/mask_depth"))}


def test_a_reallocation_path_runs_the_first_blocks_of_each_stage_and_inherits_their_weights():
    from nasforge.search_spaces.supernet import subnet_state_dict

    space = _space("reallocation")  # 6 blocks: a stage holds at most 3
    sample = {"realloc/depths": "1-1-3-1", "realloc/stage1/dilation": 2, "realloc/stage2/dilation": 1,
              "realloc/stage3/dilation": 3, "realloc/stage4/dilation": 1}
    supernet = space.build_supernet(SHAPE, 10)
    state = subnet_state_dict(supernet, sample)
    assert [len(stage) for stage in (supernet.layer1, supernet.layer3)] == [3, 3]
    assert not any(k.startswith(("layer1.1.", "layer4.1.")) for k in state)
    assert torch.equal(state["layer3.2.conv1.weight"], supernet.layer3[2].conv1.weight)
    assert supernet.layer3[2].conv1.dilation == (3, 3)


def test_an_invalid_path_is_a_validation_error_naming_the_label():
    from nasforge.search_spaces import SampleValidationError
    from nasforge.search_spaces.supernet import activate

    space = _space("nasnet")
    net = space.build_supernet(SHAPE, 10)
    sample = space.sample(random.Random(0))
    sample["reduce/block2/input1"] = 9
    with pytest.raises(SampleValidationError, match="reduce/block2/input1"):
        activate(net, sample)


def test_a_one_shot_sweep_over_reallocation_runs_end_to_end(run_root):
    from nasforge.platform.engine.config import parse_sweep
    from nasforge.platform.engine.oneshot import run_oneshot

    cfg = parse_sweep({
        "name": "realloc_oneshot",
        "seed": 0,
        "mode": "one_shot",
        "task": {"name": "classification", "data": {"name": "digits", "subset": 128, "val_subset": 64},
                 "options": {"batch_size": 32}},
        "space": [{"name": "reallocation", "options": {"width": 8, "total_blocks": 5}}],
        "strategy": {"name": "evolution"},
        "pruner": {"name": "none"},
        "oneshot": {"epochs": 1, "search_trials": 4, "top_k": 1, "calib_batches": 1, "val_batches": 1,
                    "rank": "supernet"},
        "trainer": {"accelerator": "cpu", "max_epochs": 1, "limit_train_batches": 2, "cpu_threads": 1},
        "tracking": {"mode": "disabled"},
    })
    out = run_oneshot(cfg, str(run_root), show_progress=False)
    scored = [t for t in out["search"].trials if t.state.name == "COMPLETE"]
    assert len(scored) == 4 and all(0.0 <= t.value <= 1.0 for t in scored)
    (trial,) = out["retrain"].trials
    assert trial.state.name == "COMPLETE" and trial.user_attrs["oneshot_rank"] == 1
