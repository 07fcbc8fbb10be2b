"""Zero-cost sweeps and proxy metrics of ordinary trials: a ``mode: zero_cost`` sweep scores its
samples on real CIFAR-10 images, trains the best and ends promotable, and resumes without
scoring again; an ordinary trial (built-in or a user's own space) logs ``proxy/*`` measured on
its network before training."""
from __future__ import annotations

import json
import math

import pytest
import torch

from nasforge.platform.engine.config import parse_sweep
from nasforge.platform.errors import ConfigError
from tiny_sweeps import quickstart_file


def _zero_cost_cfg(cifar10_zip, name="tiny_zero_cost"):
    return parse_sweep({
        "name": name, "seed": 0, "mode": "zero_cost",
        "zero_cost": {"samples": 6, "top_k": 2, "proxies": ["params", "synflow", "jacob_cov", "naswot", "snip"]},
        "task": {"name": "classification",
                 "data": {"name": "cifar10", "path": str(cifar10_zip), "subset": 256, "val_subset": 128},
                 "options": {"batch_size": 32}},
        "space": [{"name": "nb201", "options": {"C": 4, "N": 1}}],
        "strategy": {"name": "random"}, "pruner": {"name": "none"},
        "trainer": {"accelerator": "cpu", "max_epochs": 1, "limit_train_batches": 2, "cpu_threads": 1},
        "tracking": {"mode": "disabled"},
    })


@pytest.mark.slow
def test_a_zero_cost_sweep_scores_trains_the_top_two_promotes_and_resumes_without_rescoring(
        cifar10_zip, run_root, tmp_path, capsys, monkeypatch):
    from nasforge.platform.cli import main
    from nasforge.platform.engine import proxies
    from nasforge.platform.engine.oneshot import top_samples
    from nasforge.platform.engine.run_folder import open_run
    from nasforge.platform.engine.zero_cost import run_zero_cost, zero_cost_study_name
    from nasforge.platform.registry import load, promote

    cfg = _zero_cost_cfg(cifar10_zip)
    out = run_zero_cost(cfg, str(run_root), show_progress=False)
    scores = out["scores"]
    assert scores.study_name == zero_cost_study_name("tiny_zero_cost")
    scored = [t for t in scores.trials if t.state.name == "COMPLETE"]
    assert len(scored) == 6 and len({t.user_attrs["key"] for t in scored}) == 6
    for t in scored:
        m = t.user_attrs["metrics"]
        assert set(m) == {f"proxy/{p}" for p in ("params", "synflow", "jacob_cov", "naswot", "snip", "ensemble")}
        assert all(math.isfinite(v) for v in m.values()) and t.value == m["proxy/ensemble"]

    run = open_run("tiny_zero_cost", str(run_root))  # the top 2 by the ensemble, trained for real
    trials = sorted(run.study.trials, key=lambda t: t.number)
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert [t.user_attrs["sample"] for t in trials] == [s for s, _ in top_samples(scores, 2)]
    assert [t.user_attrs["zero_cost_rank"] for t in trials] == [1, 2]
    promotion = promote("tiny_zero_cost", best=True, root=str(run_root), registry=tmp_path / "registry")
    assert promotion.meta["trial"]["number"] == run.study.best_trial.number
    model = load(promotion.version.ref, registry=tmp_path / "registry")
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)

    capsys.readouterr()  # status: the scored samples beside the trained ones
    assert main(["sweep", "status", "tiny_zero_cost", "--root", str(run_root)]) == 0
    assert "zero-cost scores: tiny_zero_cost.zero_cost" in capsys.readouterr().out
    from nasforge.platform.views.report import write_report  # the report: the scores beside the trained

    page = open(write_report("tiny_zero_cost", root=str(run_root)), encoding="utf-8").read()
    assert "Zero-cost scores (untrained networks)</h2>" in page
    assert "6 samples of study tiny_zero_cost.zero_cost scored by proxy/ensemble" in page

    def refuse(*a, **k):
        raise AssertionError("a resumed zero-cost sweep scored again")

    monkeypatch.setattr(proxies, "score_network", refuse)
    again = run_zero_cost(cfg, str(run_root), show_progress=False)
    assert len(again["scores"].trials) == 6 and len(again["retrain"].trials) == 2


@pytest.mark.parametrize("key,value,match", [
    ("proxies", ["naswot", "zen"], r"^proxies: unknown proxy 'zen'; valid: params, flops, .*ensemble$"),
    ("proxies", ["ensemble"], r"^proxies: ensemble ranks among many samples"),
    ("zero_cost", {"rank_by": "naswot", "proxies": ["params"]}, r"^zero_cost.proxies: rank_by naswot needs naswot"),
    ("zero_cost", {"samples": 0}, r"^zero_cost.samples: must be >= 1"),
])
def test_proxy_keys_of_a_sweep_file_are_checked_in_one_line(key, value, match):
    data = {"name": "z", "mode": "zero_cost", key: value, "tracking": {"mode": "disabled"}}
    with pytest.raises(ConfigError, match=match):
        parse_sweep(data)


def test_the_proxy_callback_scores_the_network_as_it_is_before_training():
    import lightning as L

    from nasforge.platform.engine.proxies import first_batch, score_network
    from nasforge.platform.engine.proxy_callback import ProxyCallback
    from nasforge.tasks.classification import ClassificationTask
    from nasforge.tasks.digits import DigitsDataModule

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    dm = DigitsDataModule(batch_size=32)
    expected = score_network(net, first_batch(dm), ["naswot", "snip", "params"], seed=0)
    cb = ProxyCallback(["naswot", "snip", "params"], seed=0)
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=3, limit_val_batches=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[cb])
    trainer.fit(ClassificationTask(network=net, num_classes=10), datamodule=dm)
    assert cb.scores == {f"proxy/{k}": v for k, v in expected.items()}


@pytest.mark.slow
def test_ordinary_trials_log_proxies_for_built_in_and_users_own_spaces(run_root, tmp_path):
    from nasforge.platform.engine.config import load_sweep
    from nasforge.platform.engine.run_folder import open_run
    from nasforge.platform.engine.sweep import run_sweep
    from test_byo import project

    asked = ["params", "synflow", "naswot", "jacob_cov"]
    runs = [(load_sweep(quickstart_file(tmp_path, "proxied"), {"budget.trials": 1, "proxies": asked}), "proxied")]
    proj = project(tmp_path, **{"budget.trials": 1, "trainer.max_epochs": 1})
    runs.append((load_sweep(proj / "sweep.yaml", {"proxies": asked}), "digitlab"))
    for cfg, name in runs:
        run_sweep(cfg, root=str(run_root), show_progress=False)
        (trial,) = open_run(name, str(run_root)).study.trials
        metrics = trial.user_attrs["metrics"]
        assert all(math.isfinite(metrics[f"proxy/{p}"]) for p in asked), (name, metrics)
        assert "val/acc" in metrics


@pytest.mark.parametrize("strategy", ["local_search", "evolution", "controller"])
def test_a_warm_started_strategy_evaluates_the_best_proxy_scored_samples_first(strategy, tmp_path):
    import random

    import optuna

    from nasforge.platform.strategies import create_sampler
    from nasforge.search_spaces import create_space

    space = create_space("nb201")
    cells = [space.sample(random.Random(i)) for i in range(20)]
    path = tmp_path / "scores.csv"
    path.write_text("arch,naswot\n" + "".join(f"{space.key(c)},{i}\n" for i, c in enumerate(cells)))
    options = {"proxy_scores": str(path), "proxy": "naswot", "warm_start": 20, "warm_top": 2}
    sampler = create_sampler({"name": strategy, "options": options}, space, 0, ["maximize"])
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: float(len(space.key(space.suggest(t)))), n_trials=3)
    assert [space.key(space.validate(t.params)) for t in study.trials[:2]] == [space.key(cells[19]),
                                                                                space.key(cells[18])]
    with pytest.raises(ConfigError, match="warm_start: give proxy_scores"):
        create_sampler({"name": strategy, "options": {"warm_start": 5}}, space, 0, ["maximize"])


def test_local_search_reads_the_proxy_quantile_as_a_feature_of_its_neighbour_model(tmp_path):
    import random

    from nasforge.platform.strategies import create_sampler
    from nasforge.search_spaces import create_space

    space = create_space("nb201")
    cells = [space.sample(random.Random(i)) for i in range(5)]
    path = tmp_path / "scores.csv"
    path.write_text("arch,synflow\n" + "".join(f"{space.key(c)},{10 * i}\n" for i, c in enumerate(cells)))
    options = {"proxy_scores": str(path), "proxy": "synflow", "proxy_feature": True}
    sampler = create_sampler({"name": "local_search", "options": options}, space, 0, ["maximize"])
    assert [sampler.features(c)["proxy"] for c in cells] == [0.0, 0.25, 0.5, 0.75, 1.0]
    unscored = next(s for s in (space.sample(random.Random(100 + i)) for i in range(50)) if s not in cells)
    assert sampler.features(unscored)["proxy"] == 0.5


@pytest.mark.slow
def test_the_shipped_cifar10_zero_cost_file_runs_through_the_command(cifar10_zip, run_root, capsys):
    from nasforge.platform.cli import main
    from nasforge.platform.engine.run_folder import open_run
    from tiny_sweeps import REPO

    sets = {"task.data.path": str(cifar10_zip), "task.data.subset": 256, "task.data.val_subset": 128,
            "space": [{"name": "nb201", "options": {"C": 4, "N": 1}}], "zero_cost.samples": 4,
            "zero_cost.top_k": 1, "trainer.max_epochs": 1, "trainer.limit_train_batches": 2,
            "trainer.accelerator": "cpu", "trainer.cpu_threads": 1, "tracking.mode": "disabled"}
    args = ["sweep", "run", str(REPO / "sweeps" / "cifar10_zero_cost_nb201.yaml"), "--root", str(run_root)]
    for k, v in sets.items():
        args += ["--set", f"{k}={json.dumps(v)}"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "zero-cost scores: cifar10_zero_cost_nb201.zero_cost" in out and "trained: cifar10_zero_cost_nb201" in out
    assert [t.state.name for t in open_run("cifar10_zero_cost_nb201", str(run_root)).study.trials] == ["COMPLETE"]


def _bench(name):
    import importlib.util
    import sys
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    sys.path.insert(0, str(folder))  # the scripts import their neighbours
    try:
        spec = importlib.util.spec_from_file_location(f"{name}_bench", folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module


def test_the_search_benchmark_charges_a_proxy_prior_for_every_cell_it_reads(tmp_path):
    scores = tmp_path / "scores.csv"
    scores.write_text("arch,params,seconds\n" + "".join(f"a{i},{i},{s}\n" for i, s in enumerate([1, 2, 3, 4])))
    bench = _bench("nb201_search")
    assert bench.proxy_seconds(str(scores), {"warm_start": 2}) == 5.0  # M cells at the file's mean 2.5 s
    assert bench.proxy_seconds(str(scores), {"warm_start": 10}) == 10.0  # at most the file's rows
    assert bench.proxy_seconds(str(scores), {"warm_start": 1, "proxy_feature": True}) == 10.0  # quantiles: all rows


def test_members_are_chosen_from_held_out_scores_by_kendall_tau(tmp_path, capsys):
    from nasforge.platform.engine.proxies import PROXIES

    rng = __import__("random").Random(0)
    cells = [f"cell{i}" for i in range(12)]
    acc = {c: float(i) for i, c in enumerate(cells)}
    (tmp_path / "table.csv").write_text("arch,test_acc_200ep\n" + "".join(f"{c},{acc[c]}\n" for c in cells))
    rows = {c: {p: rng.random() for p in PROXIES} for c in cells}
    for c in cells:  # two proxies that order the cells exactly as their accuracy
        rows[c]["synflow"], rows[c]["jacob_cov"] = acc[c], 2 * acc[c]
    (tmp_path / "scores.csv").write_text("arch," + ",".join(PROXIES) + "\n" + "".join(
        f"{c}," + ",".join(repr(rows[c][p]) for p in PROXIES) + "\n" for c in cells))
    bench = _bench("zero_cost_nb201")
    assert bench.main(["--from-scores", str(tmp_path / "scores.csv"), "--table", str(tmp_path / "table.csv"),
                       "--choose-members"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[-1] == {"chosen": ["synflow", "jacob_cov"], "by": "kendall_tau_mean_rank", "cells": 12}
    assert lines[0]["kendall_tau_mean_rank"] == 1.0 and len(lines) == 1 + sum(
        math.comb(len(PROXIES), k) for k in (2, 3, 4))
    with pytest.raises(SystemExit):  # held-out scores are read, never scored here
        bench.main(["--table", str(tmp_path / "table.csv"), "--choose-members"])
