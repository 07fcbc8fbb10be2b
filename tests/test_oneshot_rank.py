"""One-shot searches ranked by the supernet, by zero-cost proxies or by both: a ``mode: one_shot``
sweep on real CIFAR-10 images records every search trial's supernet and proxy scores, retrains
the top k and resumes without scoring again; a sample's score is a function of the sample alone
(ranked in a fixed reference pool, not among the trials that happen to come before it); bad
values of the new keys are one line, exit 2, nothing written."""
from __future__ import annotations

import json
import math
import random
import subprocess
import sys

import pytest
import yaml

from nasforge.platform.engine.config import parse_sweep
from nasforge.platform.errors import ConfigError

from nasforge.platform.strategies.proxy_prior import DEFAULT_MEMBERS as MEMBERS  # what a sweep scores by default


def _cfg(cifar10_zip, name: str, rank_by: str, **oneshot):
    return parse_sweep({
        "name": name, "seed": 0, "mode": "one_shot",
        "task": {"name": "classification",
                 "data": {"name": "cifar10", "path": str(cifar10_zip), "subset": 256, "val_subset": 64},
                 "options": {"batch_size": 32}},
        "space": [{"name": "nb201", "options": {"C": 4, "N": 1}}],
        "strategy": {"name": "evolution"}, "pruner": {"name": "none"},
        "oneshot": {"epochs": 1, "search_trials": 6, "top_k": 2, "calib_batches": 1, "val_batches": 1,
                    "rank": rank_by, "reference": 5, **oneshot},
        "trainer": {"accelerator": "cpu", "max_epochs": 1, "limit_train_batches": 2, "limit_val_batches": 1,
                    "cpu_threads": 1},
        "tracking": {"mode": "disabled"},
    })


def _sweep(cifar10_zip, run_root, rank, capsys, monkeypatch):
    from nasforge.platform.cli import main
    from nasforge.platform.engine import oneshot_rank
    from nasforge.platform.engine.oneshot import run_oneshot, top_samples
    from nasforge.platform.engine.run_folder import open_run
    from nasforge.platform.views.leaderboard import leaderboard_rows
    from nasforge.platform.views.report import write_report

    name = f"tiny_{rank}"
    cfg = _cfg(cifar10_zip, name, rank)
    out = run_oneshot(cfg, str(run_root), show_progress=False)
    search = out["search"]
    value = oneshot_rank.VALUE_METRIC[rank]
    assert search.metric_names == [value]
    done = [t for t in search.trials if t.state.name == "COMPLETE"]
    by_number = {t.number: t for t in done}
    assert len(done) == 6
    want = {"supernet/val_acc", "proxy/ensemble", *(f"proxy/{m}" for m in MEMBERS)}
    if rank == "both":
        want |= {"supernet/quantile", "oneshot/both"}
    for t in done:
        m = t.user_attrs["metrics"]
        assert set(m) == want and all(math.isfinite(v) for v in m.values())
        assert t.value == m[value] and 0.0 < m["proxy/ensemble"] <= 1.0 and 0.0 <= m["supernet/val_acc"] <= 1.0
        if rank == "both":
            assert m["oneshot/both"] == pytest.approx((m["supernet/quantile"] + m["proxy/ensemble"]) / 2)
    reference = (run_root / name / "supernet" / "reference.jsonl").read_text().splitlines()
    assert len(reference) == 5 and {"supernet", *MEMBERS} <= set(json.loads(reference[0])["scores"])

    run = open_run(name, str(run_root))  # the top 2 by the rank's value, retrained for real
    trials = sorted(run.study.trials, key=lambda t: t.number)
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    top = top_samples(search, 2)
    assert [t.user_attrs["sample"] for t in trials] == [s for s, _ in top]
    assert [t.user_attrs[value] for t in trials] == [v for _, v in top]

    view, columns, _ = oneshot_rank.search_view(cfg)  # the leaderboards show the supernet's and proxies' scores
    rows = leaderboard_rows(search, view, include_unfinished=False, columns=columns)
    assert [r[value] for r in rows] == sorted((t.value for t in done), reverse=True)
    assert all(r["supernet/val_acc"] == by_number[r["trial"]].user_attrs["metrics"]["supernet/val_acc"]
               for r in rows)
    capsys.readouterr()
    assert main(["sweep", "status", name, "--root", str(run_root)]) == 0
    assert f"(ranked by {rank})" in capsys.readouterr().out
    page = open(write_report(name, root=str(run_root)), encoding="utf-8").read()
    section = page.split("Search on the supernet (inherited weights)</h2>")[1].split("<h2>")[0]
    assert all(f"{c}</th>" in section for c in (f"{value} ↑", "supernet/val_acc", "proxy/synflow"))

    def refuse(*a, **k):
        raise AssertionError("a resumed one-shot sweep scored again")

    monkeypatch.setattr(oneshot_rank.RankedScorer, "raw", refuse)  # neither the pool nor the search
    again = run_oneshot(cfg, str(run_root), show_progress=False)
    assert len(again["search"].trials) == len(search.trials) and len(again["retrain"].trials) == 2
    with pytest.raises(ConfigError, match=r"^oneshot.rank: the search in .* ranked by"):
        run_oneshot(_cfg(cifar10_zip, name, "supernet"), str(run_root), show_progress=False)


def test_a_one_shot_sweep_ranked_by_both_records_supernet_and_proxy_scores_and_retrains_the_top_k(
        cifar10_zip, run_root, capsys, monkeypatch):
    _sweep(cifar10_zip, run_root, "both", capsys, monkeypatch)


@pytest.mark.slow
def test_a_one_shot_sweep_ranked_by_proxies_records_supernet_and_proxy_scores_and_retrains_the_top_k(
        cifar10_zip, run_root, capsys, monkeypatch):
    _sweep(cifar10_zip, run_root, "proxies", capsys, monkeypatch)


def test_a_sample_scores_the_same_whatever_else_was_scored(cifar10_zip, tmp_path):
    """Ranks are taken in the fixed reference pool: scoring other samples in between, or in
    another order, leaves a sample's value as it was."""
    from nasforge.platform.engine.oneshot import train_supernet
    from nasforge.platform.engine.oneshot_rank import RankedScorer, create_ranked_scorer
    from nasforge.platform.engine.trial import TrialContext

    ctx = TrialContext.create(_cfg(cifar10_zip, "stationary", "both"), str(tmp_path))
    module, dm = train_supernet(ctx)
    scorer = create_ranked_scorer(ctx, module, dm, str(tmp_path))
    rng = random.Random(7)
    samples = [ctx.space.sample(rng) for _ in range(5)]
    first = scorer.score(samples[0])
    for s in samples[1:]:
        scorer.score(s)
    assert scorer.score(samples[0]) == first
    fresh = RankedScorer("both", scorer.supernet, scorer.proxies, scorer.members, scorer.pool)
    for s in reversed(samples):  # another scorer, another order: the same values
        assert fresh.score(s) == scorer.score(s)
    assert len({scorer.score(s)["oneshot/both"] for s in samples}) > 1  # ... that do tell samples apart


@pytest.mark.parametrize("key,value,match", [
    ("rank", "darts", r"oneshot.rank.*darts.*supernet.*proxies.*both"),
    ("reference", 1, r"^oneshot.reference: quantiles need >= 2"),
    ("members", ["synflow", "zen"], r"^oneshot.members: unknown proxy 'zen'; valid: params"),
    ("members", ["ensemble"], r"^oneshot.members: list the ensemble's proxies"),
])
def test_one_shot_rank_keys_are_checked(key, value, match, cifar10_zip):
    with pytest.raises(ConfigError, match=match):
        _cfg(cifar10_zip, "bad", "supernet", **{key: value})


def test_an_unknown_rank_is_one_line_exit_2_before_anything_is_written(cifar10_zip, tmp_path):
    data = yaml.safe_load(yaml.safe_dump(_cfg(cifar10_zip, "bad_rank", "both").to_dict()))
    data["oneshot"]["rank"] = "darts"
    path = tmp_path / "bad_rank.yaml"
    path.write_text(yaml.safe_dump(data))
    res = subprocess.run([sys.executable, "-m", "nasforge.platform.cli", "sweep", "check", str(path),
                          "--root", str(tmp_path / "runs")], check=False, capture_output=True, text=True)
    assert res.returncode == 2, res.stderr[-2000:]
    assert res.stderr.strip().count("\n") == 0 and "oneshot.rank" in res.stderr and "proxies" in res.stderr
    assert not (tmp_path / "runs").exists()
