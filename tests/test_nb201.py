"""The NAS-Bench-201 space and the tabular task: what a user relies on when searching nb201."""
from __future__ import annotations

import pytest

from nasforge.search_spaces import SampleValidationError, create_space
from nasforge.search_spaces.nb201 import LABELS, OPS, from_string
from nasforge.tasks.tabular import TabularBenchmark

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"


def test_space_has_six_edges_of_five_ops_and_15625_cells():
    space = create_space("nb201")
    assert space.labels() == ["edge/1<-0", "edge/2<-0", "edge/2<-1", "edge/3<-0", "edge/3<-1", "edge/3<-2"]
    assert all(d.choices == OPS for d in space.decisions())
    assert space.size() == 15625


def test_every_cell_is_distinct_and_found_in_the_table(nb201_csv):
    space = create_space("nb201")
    keys = [space.key(s) for s in space.enumerate()]
    assert len(keys) == 15625 and len(set(keys)) == 15625
    bench = TabularBenchmark(str(nb201_csv))
    missing = [k for k in keys if k not in bench]
    assert not missing, f"{len(missing)} cells not in the table, e.g. {missing[:2]}"
    assert len(bench) == 15625


def test_key_is_nas_bench_201_string_and_round_trips():
    space = create_space("nb201")
    sample = from_string(BEST)
    assert sample["edge/3<-1"] == "nor_conv_1x1" and sample["edge/3<-0"] == "skip_connect"
    assert space.key(sample) == BEST
    assert space.from_string(space.key(sample)) == sample
    assert space.from_json(space.to_json(sample)) == sample


@pytest.mark.parametrize("bad", [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|",  # node 2 lacks an input
    "|conv_5x5~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|",  # unknown op
    "|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|",  # bad input
])
def test_malformed_strings_raise_a_typed_error(bad):
    with pytest.raises(SampleValidationError):
        from_string(bad)


def test_unknown_op_in_a_sample_names_the_edge():
    space = create_space("nb201")
    sample = dict(from_string(BEST), **{"edge/2<-1": "sep_conv_3x3"})
    with pytest.raises(SampleValidationError) as e:
        space.validate(sample)
    assert e.value.label == "edge/2<-1"


def test_canonical_key_merges_isomorphic_cells_only():
    space = create_space("nb201")
    # nodes 1 and 2 swap roles when there is no 2<-1 edge
    a = dict(zip(LABELS, ["nor_conv_3x3", "avg_pool_3x3", "none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3"]))
    b = dict(zip(LABELS, ["avg_pool_3x3", "nor_conv_3x3", "none", "skip_connect", "nor_conv_3x3", "nor_conv_1x1"]))
    assert space.key(a) != space.key(b) and space.canonical_key(a) == space.canonical_key(b)
    # an edge out of a node that never reaches the output does not matter
    c = dict(zip(LABELS, ["nor_conv_3x3", "nor_conv_3x3", "skip_connect", "nor_conv_3x3", "none", "none"]))
    d = dict(c, **{"edge/1<-0": "avg_pool_3x3", "edge/2<-0": "none", "edge/2<-1": "none"})
    assert space.canonical_key(c) == space.canonical_key(d)
    # cells whose output never sees the input are one computation
    zero1 = dict(zip(LABELS, ["nor_conv_3x3"] * 3 + ["none"] * 3))
    zero2 = dict(zip(LABELS, ["none"] * 6))
    assert space.canonical_key(zero1) == space.canonical_key(zero2) == "zero"
    # different computations stay apart
    assert space.canonical_key(from_string(BEST)) != space.canonical_key(a)
    assert len({space.canonical_key(s) for s in space.enumerate()}) < 15625


def test_builds_the_macro_network_and_trains_a_step():
    import torch

    torch.manual_seed(0)
    space = create_space("nb201", N=1)
    net = space.build(from_string(BEST), (3, 32, 32), 10)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    loss = torch.nn.functional.cross_entropy(net(x), y)
    loss.backward()
    assert net(x).shape == (4, 10)
    # three stages of N cells at C, 2C, 4C, two residual reductions
    assert [type(m).__name__ for m in net.cells] == ["NB201Cell", "ResidualReduction", "NB201Cell",
                                                     "ResidualReduction", "NB201Cell"]
    assert net.classifier.in_features == 64
    # more cells per stage: more parameters; the all-zero cell has no cell parameters
    deeper = create_space("nb201", N=2).build(from_string(BEST), (3, 32, 32), 10)
    params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert params(deeper) > params(net)
    empty = space.build(dict(zip(LABELS, ["none"] * 6)), (3, 32, 32), 10)
    assert params(empty) < params(net)
    assert empty(x).shape == (4, 10)


def test_draw_writes_png_and_svg(tmp_path):
    files = create_space("nb201").draw(from_string(BEST), str(tmp_path / "cell"))
    assert sorted(p.rsplit(".", 1)[1] for p in files) == ["png", "svg"]


# ----------------------------------------------------------------------------- tabular task
def test_tabular_evaluates_signal_and_report(nb201_csv):
    bench = TabularBenchmark(str(nb201_csv))
    m = bench.evaluate(BEST)
    assert set(m) == {"val_acc_12ep", "test_acc_200ep"}
    assert 80 < m["val_acc_12ep"] < 100 and 90 < m["test_acc_200ep"] < 100
    # the table is read once per process and path
    again = TabularBenchmark(str(nb201_csv), signal="test_acc_200ep", report=None)
    assert again._rows is bench._rows
    assert again.evaluate(BEST) == {"test_acc_200ep": m["test_acc_200ep"]}


def test_tabular_unknown_key_and_column_errors(nb201_csv):
    bench = TabularBenchmark(str(nb201_csv))
    with pytest.raises(KeyError, match="not in"):
        bench.evaluate("|conv~0|")
    with pytest.raises(ValueError, match="valid columns: val_acc_12ep, test_acc_200ep"):
        TabularBenchmark(str(nb201_csv), signal="val_acc_200ep")
    with pytest.raises(ValueError, match="does not exist"):
        TabularBenchmark(str(nb201_csv) + ".missing")


def test_tasks_do_not_import_optuna_or_platform():
    import ast
    import pathlib

    src = pathlib.Path(__file__).resolve().parents[1] / "tasks" / "tabular.py"
    names = set()
    for node in ast.walk(ast.parse(src.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module or "")
    assert not any(n.startswith(("optuna", "nasforge.platform")) for n in names)


def test_paper_sized_network_matches_nas_bench_201_parameter_counts():
    # NAS-Bench-201 (C=16, N=5) reports 0.07 M parameters for the all-zero cell and 1.53 M for
    # the largest (all nor_conv_3x3); the same macro network must give the same counts.
    space = create_space("nb201", C=16, N=5)
    params = lambda ops: sum(p.numel() for p in space.build(dict.fromkeys(LABELS, ops), (3, 32, 32), 10).parameters())  # noqa: E731
    assert round(params("nor_conv_3x3") / 1e6, 2) == 1.53
    assert round(params("none") / 1e6, 2) == 0.07
