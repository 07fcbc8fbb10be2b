"""Property-based tests (hypothesis): the sweep-file loader either accepts a document or gives one
line with exit 2, never a traceback; every sample a space accepts round-trips through its genotype.

Bounded (a fixed number of examples, no deadline: the machine is shared) so the file stays quick.
"""
from __future__ import annotations

import copy
import math

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nasforge.platform.cli import main
from nasforge.platform.engine.config import load_sweep
from nasforge.platform.errors import ConfigError
from nasforge.search_spaces import Categorical, Float, Int, SampleValidationError, create_composite, list_spaces

from tiny_sweeps import REPO

QUICKSTART = yaml.safe_load((REPO / "sweeps" / "quickstart.yaml").read_text())
SETTINGS = settings(max_examples=120, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=8)


def _paths(node, prefix=()):
    """Every dotted path of a document (mappings only), leaves and inner nodes."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))


PATHS = sorted(set(_paths(QUICKSTART)) | {("budget", "max_failures"), ("trainer", "cpu_threads"),
                                          ("task", "data", "path"), ("storage",), ("constraints",)})


@st.composite
def documents(draw):
    """The quickstart with a few keys set to random values (known paths or random new keys)."""
    doc = copy.deepcopy(QUICKSTART)
    doc["tracking"]["mode"] = "disabled"
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.one_of(st.sampled_from(PATHS), st.lists(st.text(min_size=1, max_size=6), min_size=1,
                                                                  max_size=3).map(tuple)))
        node = doc
        for k in path[:-1]:
            if not isinstance(node.get(k) if isinstance(node, dict) else None, dict):
                if isinstance(node, dict):
                    node[k] = {}
                else:
                    break
            node = node[k]
        if isinstance(node, dict):
            node[path[-1]] = draw(values)
    return doc


def _outcome(path, capsys) -> None:
    """Accepted, or one line and exit 2 from the CLI's loader; anything else fails the test."""
    try:
        load_sweep(path)
    except ConfigError as e:
        assert e.exit_code == 2 and "\n" not in str(e), repr(str(e))


@SETTINGS
@given(doc=documents())
def test_a_random_sweep_document_is_accepted_or_one_line_exit_2(doc, tmp_path_factory, capsys):
    path = tmp_path_factory.mktemp("doc") / "s.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    _outcome(path, capsys)


@SETTINGS
@given(text=st.text(alphabet=st.sampled_from(list("abc:-[]{}#&*!|>'\" \n\t0123456789.,")), max_size=80))
def test_random_yaml_text_is_accepted_or_one_line_exit_2(text, tmp_path_factory, capsys):
    path = tmp_path_factory.mktemp("doc") / "s.yaml"
    path.write_text(text)
    _outcome(path, capsys)


@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=documents())
def test_the_cli_turns_every_rejection_into_one_line_and_exit_2(doc, tmp_path_factory, capsys):
    folder = tmp_path_factory.mktemp("cli")
    path = folder / "s.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    try:
        load_sweep(path)
    except ConfigError:
        code = main(["sweep", "run", str(path), "--root", str(folder / "runs")])
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.startswith("nasforge: error:") and "\n" not in err
        assert not (folder / "runs").exists()


# ----------------------------------------------------------------------------- the space API
SPACES = []
for _name in list_spaces():
    try:
        SPACES.append(create_composite([{"name": _name, "options": {}}]))
    except (TypeError, ValueError):  # a space that needs options is covered by its own tests
        pass


def _value(draw, dim):
    if isinstance(dim, Categorical):
        return draw(st.sampled_from(dim.choices))
    if isinstance(dim, Int):
        return draw(st.integers(dim.low - 1, dim.high + 1))  # one step outside, now and then
    if isinstance(dim, Float):
        lo, hi = dim.low, dim.high
        return draw(st.floats(lo, hi) if dim.log else st.floats(lo - 1, hi + 1, allow_nan=False))
    return draw(scalars)


@st.composite
def samples(draw, space):
    sample = {}
    for dim in space.dims:
        if dim.is_active(sample):
            sample[dim.label] = _value(draw, dim)
    return sample


def test_there_are_spaces_to_test():
    assert len(SPACES) >= 5, [s.name for s in SPACES]


@pytest.mark.parametrize("space", SPACES, ids=[s.name for s in SPACES])
def test_every_accepted_sample_round_trips_through_its_genotype(space):
    @settings(max_examples=60, deadline=None, derandomize=True)
    @given(data=st.data())
    def check(data):
        sample = data.draw(samples(space))
        try:
            canonical = space.validate(sample)
        except SampleValidationError as e:
            assert str(e) and "\n" not in str(e)
            return
        back = space.from_json(space.to_json(canonical))
        assert back == canonical and space.key(back) == space.key(canonical)
        for label, value in canonical.items():  # nothing is lost or changed on the way
            if isinstance(value, float):
                assert math.isclose(back[label], value, rel_tol=0, abs_tol=0)

    check()
