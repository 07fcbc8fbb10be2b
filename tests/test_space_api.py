"""The generic space API (search_spaces/space.py, registry.py) on the `hparams` and `convnet`
spaces: dimension checks, conditional dimensions, Optuna suggestions, the decision list, the
JSON genotype, composition and look-up by name."""
from __future__ import annotations

import json
import math

import optuna
import pytest

from nasforge.search_spaces import (
    Categorical,
    CompositeSpace,
    Float,
    Int,
    SampleValidationError,
    create_composite,
    create_space,
    list_spaces,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _suggest(space, n: int, seed: int = 0) -> list[dict]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append(space.suggest(trial))
        study.tell(trial, 0.0)
    return out


# ----------------------------------------------------------------------------- dimensions
def test_categorical_accepts_its_choices_only_and_names_the_label():
    d = Categorical("stage1/attn", choices=("none", "se", 1))
    assert d.check("se") == "se" and d.check(1) == 1 and d.check(1.0) == 1
    with pytest.raises(SampleValidationError, match=r"stage1/attn='eca' is not one of \['none', 'se', 1\]") as e:
        d.check("eca")
    assert e.value.label == "stage1/attn"
    with pytest.raises(SampleValidationError):
        d.check(True)  # a bool is not the int 1
    with pytest.raises(ValueError, match="duplicate choices"):
        Categorical("x", choices=("a", "a"))
    with pytest.raises(ValueError, match="at least one choice"):
        Categorical("x", choices=())


def test_int_checks_type_range_and_step():
    d = Int("depth", low=2, high=10, step=2)
    assert d.check(4) == 4 and d.check(6.0) == 6 and isinstance(d.check(6.0), int)
    assert d.grid() == [2, 4, 6, 8, 10] and d.count() == 5
    for bad, msg in ((5, "step 2"), (12, "outside"), (4.5, "not an integer"), (True, "not an integer"),
                     ("4", "not an integer"), (math.nan, "not an integer"), (math.inf, "not an integer")):
        with pytest.raises(SampleValidationError, match=msg):
            d.check(bad)
    with pytest.raises(ValueError, match="high 1 < low 2"):
        Int("x", low=2, high=1)
    with pytest.raises(ValueError, match="log scale needs low >= 1"):
        Int("x", low=0, high=100, log=True)
    big = Int("width", low=1, high=1000, log=True)
    grid = big.grid()
    assert grid[0] == 1 and grid[-1] == 1000 and len(grid) <= 64 and grid == sorted(set(grid))


def test_float_checks_range_and_log_grid():
    d = Float("hp/lr", low=1e-4, high=1e-1, log=True, grid_points=4)
    assert d.check(0.01) == 0.01
    assert Float("p", low=0.0, high=2.0).check(1) == 1.0 and isinstance(Float("p", low=0.0, high=2.0).check(1), float)
    assert d.grid() == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1])
    assert d.count() == math.inf
    for bad in (0.5, math.nan, "0.01", False):
        with pytest.raises(SampleValidationError):
            d.check(bad)
    with pytest.raises(ValueError, match="log scale needs low > 0"):
        Float("x", low=0.0, high=1.0, log=True)
    assert Float("y", low=0.0, high=1.0, grid_points=3).grid() == [0.0, 0.5, 1.0]


# ----------------------------------------------------------------------------- conditions
def test_conditional_dimension_exists_only_when_enabled():
    space = create_space("hparams")
    sgd = {"hp/optimizer": "sgd", "hp/lr": 0.01, "hp/momentum": 0.9, "hp/weight_decay": 1e-4,
           "hp/label_smoothing": 0.1}
    assert space.validate(sgd) == sgd
    adamw = {**{k: v for k, v in sgd.items() if k != "hp/momentum"}, "hp/optimizer": "adamw"}
    assert space.validate(adamw) == adamw
    with pytest.raises(SampleValidationError, match="'hp/momentum' is inactive here") as e:
        space.validate({**adamw, "hp/momentum": 0.9})
    assert e.value.label == "hp/momentum"
    with pytest.raises(SampleValidationError, match="missing value for 'hp/momentum'"):
        space.validate({k: v for k, v in sgd.items() if k != "hp/momentum"})
    with pytest.raises(SampleValidationError, match="unknown label 'hp/lr_typo'"):
        space.validate({**sgd, "hp/lr_typo": 1.0})

    samples = _suggest(space, 40)
    for s in samples:
        assert ("hp/momentum" in s) == (s["hp/optimizer"] == "sgd")
        assert space.validate(s) == s
    assert {s["hp/optimizer"] for s in samples} == {"sgd", "adamw"}


def test_decisions_are_the_ordered_discrete_view_of_the_declaration():
    space = create_space("hparams")
    decisions = space.decisions()
    assert [d.label for d in decisions] == space.labels() == [
        "hp/optimizer", "hp/lr", "hp/momentum", "hp/weight_decay", "hp/label_smoothing"]
    by = {d.label: d for d in decisions}
    assert by["hp/optimizer"].choices == ("sgd", "adamw") and by["hp/optimizer"].n == 2
    lr = by["hp/lr"].choices
    assert len(lr) == 8 and lr[0] == pytest.approx(1e-4) and lr[-1] == pytest.approx(1e-1)
    assert not by["hp/momentum"].dim.is_active({"hp/optimizer": "adamw"})
    assert by["hp/momentum"].dim.is_active({"hp/optimizer": "sgd"})
    # a controller's picks, one index per active decision, always validate
    partial: dict = {}
    for i, d in enumerate(decisions):
        if d.dim.is_active(partial):
            partial[d.label] = d.choices[i % d.n]
    assert space.validate(partial) == partial


def test_a_random_sample_is_valid_seeded_and_redrawn_until_the_space_accepts_it():
    import random

    space = create_space("hparams")
    draws = [space.sample(random.Random(i)) for i in range(60)]
    assert all(space.validate(s) == s for s in draws)
    assert all(("hp/momentum" in s) == (s["hp/optimizer"] == "sgd") for s in draws)
    by = {d.label: d for d in space.decisions()}
    assert {s["hp/lr"] for s in draws} == set(by["hp/lr"].choices)  # every grid value is reached
    assert space.sample(random.Random(7)) == space.sample(random.Random(7))

    class EvenOnly(CompositeSpace):  # a structural rule that rejects most draws
        def check(self, sample):
            if sample["w"] % 4:
                raise SampleValidationError("w must be a multiple of 4", "w")

    class Widths(type(space)):
        name = "widths"

        def dimensions(self):
            return [Int("w", low=1, high=8)]

    picky = EvenOnly([Widths()])
    assert {picky.sample(random.Random(i))["w"] for i in range(40)} == {4, 8}

    class Never(Widths):
        def check(self, sample):
            raise SampleValidationError("never")

    with pytest.raises(SampleValidationError, match="no valid sample of space 'widths' in 5 random draws"):
        Never().sample(random.Random(0), max_tries=5)


# ----------------------------------------------------------------------------- genotype
def test_json_genotype_round_trips_and_checks_its_space():
    space = create_space("convnet", stages=3)
    for s in _suggest(space, 5, seed=1):
        text = space.to_json(s)
        assert json.loads(text)["space"] == "convnet" and json.loads(text)["options"]["stages"] == 3
        assert space.from_json(text) == space.validate(s)
        assert space.key(s) == space.key(space.from_json(text))
    other = create_space("hparams")
    with pytest.raises(SampleValidationError, match="genotype is for space 'convnet', not 'hparams'"):
        other.from_json(text)
    with pytest.raises(SampleValidationError, match="not JSON"):
        space.from_json("{not json")
    with pytest.raises(SampleValidationError, match="a genotype is a JSON object"):
        space.from_json("[1, 2]")
    broken = json.loads(text)
    broken["sample"]["convnet/stage2/depth"] = 99
    with pytest.raises(SampleValidationError, match=r"convnet/stage2/depth=99 is outside \[1, 3\]"):
        space.from_json(json.dumps(broken))


def test_convnet_sizes_and_builds_from_one_declaration():
    import torch

    space = create_space("convnet", stages=2, widths=[8], kernels=[3], max_dropout=0.0)
    assert space.size() == 3 * 3  # two depths in 1..3, everything else fixed
    s = {"convnet/width": 8, "convnet/stage1/depth": 2, "convnet/stage2/depth": 1,
         "convnet/kernel": 3, "convnet/dropout": 0.0}
    net = space.build(s, (1, 8, 8), 10)
    assert net(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    with pytest.raises(SampleValidationError):
        space.build({**s, "convnet/kernel": 5}, (1, 8, 8), 10)


# ----------------------------------------------------------------------------- composition
def test_composite_searches_architecture_and_hparams_together():
    space = create_composite([{"name": "convnet"}, {"name": "hparams", "options": {"lr": [1e-3, 1e-1]}}])
    assert isinstance(space, CompositeSpace) and space.name == "convnet+hparams" and space.builds_network
    assert space.labels()[:1] == ["convnet/width"] and space.labels()[-1] == "hp/lr"
    s = _suggest(space, 1)[0]
    assert space.validate(s) == s
    assert space.key(s).count("|") == 1
    assert space.from_json(space.to_json(s)) == s
    net = space.build(s, (3, 32, 32), 10)
    assert net is not None
    assert create_composite([{"name": "hparams"}]).name == "hparams"  # one part is itself


def test_composite_rejects_label_clashes_and_two_architectures():
    with pytest.raises(ValueError, match=r"duplicate labels \['hp/label_smoothing', 'hp/lr'"):
        CompositeSpace([create_space("hparams"), create_space("hparams")])
    with pytest.raises(ValueError, match="at most one architecture space.*; got convnet, nasnet"):
        CompositeSpace([create_space("convnet"), create_space("nasnet")])
    with pytest.raises(NotImplementedError, match="does not build a network"):
        create_space("hparams").build({}, (3, 32, 32), 10)


# ----------------------------------------------------------------------------- registry
def test_registry_lists_spaces_and_rejects_unknown_names_listing_the_valid_ones():
    names = list_spaces()
    assert {"hparams", "convnet", "nasnet"} <= set(names) and names == sorted(names)
    with pytest.raises(ValueError, match="unknown space 'nasnte'; valid: ") as e:
        create_space("nasnte")
    for name in names:
        assert name in str(e.value)
    with pytest.raises(ValueError, match=r"hparams.lrr: the short \[low, high\]/\[choices\] form is for optimizer, lr"):
        create_space("hparams", lrr=[0.1, 0.2])
    # any other setting is searched in the params syntax (warmup_epochs once could not be)
    assert "hp/warmup_epochs" in create_space("hparams", warmup_epochs={"float": [0.0, 2.0]}).labels()
