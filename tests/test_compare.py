"""Replicated sweeps and `nasforge compare`: strategies x seeds from one command, compared on one page.

The replicates are the nb201 table sweep (it reads NAS-Bench-201's table instead of training, so
six sweeps take seconds). The comparison's numbers are checked against the studies themselves;
the page is opened in headless Chromium with DNS mapped to nowhere (as the report's test does).
Sweeps with other objectives or spaces are written straight with Optuna (benchmarks/compare.py's
writer), since only their studies and configs matter to a comparison.
"""
from __future__ import annotations

import importlib.util
import json
import math
import re
import statistics

import pytest
from test_report import _chromium, _run_chromium
from tiny_sweeps import REPO

from nasforge.platform.cli import main

SEEDS = [0, 1, 2]
STRATEGIES = ["tpe", "local_search"]


def _command(root, csv) -> list[str]:
    return ["sweep", "run", str(REPO / "sweeps" / "nb201_cifar10.yaml"), "--seeds", "0-2",
            "--set", "strategy.name=tpe,local_search", "--set", f"task.data.path={csv}", "--trials", "12",
            "--root", str(root), "--no-progress"]


@pytest.fixture(scope="module")
def replicated(tmp_path_factory, nb201_csv):
    root = tmp_path_factory.mktemp("compare") / "runs"
    assert main(_command(root, nb201_csv)) == 0
    return root


def _studies(root) -> dict:
    from nasforge.platform.engine.run_folder import open_run

    return {f"nb201_cifar10-{s}-s{seed}": open_run(f"nb201_cifar10-{s}-s{seed}", root).study
            for s in STRATEGIES for seed in SEEDS}


def test_strategies_times_seeds_from_one_command_are_ordinary_grouped_sweeps(replicated, nb201_csv, capsys):
    studies = _studies(replicated)
    for name, study in studies.items():
        rec = study.user_attrs["nasforge_group"]
        strategy, seed = name.split("-")[1], int(name.rsplit("-s", 1)[1])
        assert rec == {"group": "nb201_cifar10", "arm": f"nb201_cifar10-{strategy}", "seed": seed,
                       "strategy": strategy}
        assert len(study.trials) == 12
    from nasforge.platform.engine.run_folder import open_run

    assert open_run("nb201_cifar10-tpe-s1", replicated).cfg.tracking.group == "nb201_cifar10-tpe"  # W&B group
    assert main(["sweep", "status", "nb201_cifar10-local_search-s1", "--root", str(replicated)]) == 0
    # the same command again resumes: every budget is met, so no trial is added
    assert main(_command(replicated, nb201_csv)) == 0
    assert all(len(s.trials) == 12 for s in _studies(replicated).values())


def test_compare_numbers_equal_those_computed_from_the_studies(replicated, tmp_path, capsys):
    page = tmp_path / "compare.html"
    capsys.readouterr()
    assert main(["compare", "nb201_cifar10", "--root", str(replicated), "-o", str(page), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    studies = _studies(replicated)
    obj = data["objectives"]["val_acc_12ep"]
    html = page.read_text()
    rows = dict((g, (float(m), float(s))) for g, m, s in
                re.findall(r'data-group="([^"]+)" data-mean="([^"]+)" data-se="([^"]+)"', html))
    for s in STRATEGIES:
        best = [studies[f"nb201_cifar10-{s}-s{seed}"].best_value for seed in SEEDS]
        mean, se = statistics.mean(best), statistics.stdev(best) / math.sqrt(len(best))
        g = obj["groups"][f"nb201_cifar10-{s}"]
        assert g["mean"] == pytest.approx(mean, abs=1e-12) and g["se"] == pytest.approx(se, abs=1e-12)
        assert rows[f"nb201_cifar10-{s}"] == (pytest.approx(mean, abs=1e-12), pytest.approx(se, abs=1e-12))
        assert g["trials"] == 36 and g["failed"] == 0 and g["n"] == 3
    # the difference is paired over the three seeds and said in words
    (d,) = obj["differences"]
    best_a, best_b = ([studies[f"{arm}-s{seed}"].best_value for seed in SEEDS] for arm in (d["a"], d["b"]))
    diff = [a - b for a, b in zip(best_a, best_b)]  # maximised: > 0 means a is ahead
    assert d["paired"] and d["n"] == 3
    assert d["difference"] == pytest.approx(statistics.mean(diff))
    assert d["se"] == pytest.approx(statistics.stdev(diff) / math.sqrt(3))
    assert re.search(r"ahead of .* by [\d.]+ \+/- [\d.e-]+, \d of 3 seeds|level", d["words"])
    # the terminal table says the same, with the words
    assert main(["compare", "nb201_cifar10-*", "--root", str(replicated), "--no-page"]) == 0
    out = capsys.readouterr().out
    assert "nb201_cifar10-tpe" in out and d["words"] in out.replace("\n", "")


@pytest.mark.slow
@pytest.mark.browser
def test_compare_page_renders_in_headless_chromium_with_every_group(replicated, tmp_path):
    exe = _chromium()
    page = tmp_path / "compare.html"
    assert main(["compare", "nb201_cifar10", "--root", str(replicated), "-o", str(page), "--no-page"]) == 0
    assert not page.exists()
    assert main(["compare", "nb201_cifar10", "--root", str(replicated), "-o", str(page)]) == 0
    text = page.read_text()
    assert not re.search(r"<script[^>]+\bsrc=", text) and not re.search(r"<link\b", text)
    man = json.loads(re.search(r'<script type="application/json" id="nasforge-compare">(.*?)</script>',
                               text, re.S).group(1))
    groups = {f"nb201_cifar10-{s}" for s in STRATEGIES}
    assert set(man["groups"]) == groups
    assert {"best0-trials", "best0-time", "importance"} <= set(man["figures"])
    assert text.count("src='data:image/png;base64,") >= 2  # the top cells drawn
    res = _run_chromium(exe, ["--enable-logging=stderr", "--v=0", "--virtual-time-budget=15000", "--dump-dom",
                              page.as_uri()], tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    console = [line for line in res.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    for key, names in man["figures"].items():
        assert set(names) == groups, key
        block = res.stdout[res.stdout.index(f'id="plot-{key}"'):]
        block = block[:block.index("</svg>", block.index('class="main-svg"', block.index("legend")))] \
            if "legend" in block else block
        legend = set(re.findall(r'class="legendtext"[^>]*>([^<]+)<', block))
        assert groups <= legend, f"figure {key}: legend {legend}"


def _writer():
    spec = importlib.util.spec_from_file_location("compare_bench", REPO / "benchmarks" / "compare.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.write_sweep


def test_sweeps_with_other_objectives_and_spaces_compare_on_what_they_share(tmp_path, nb201_csv, capsys):
    write = _writer()
    root, url = tmp_path / "runs", "journal://" + str(tmp_path / "s.journal")
    data = {"task.data.path": str(nb201_csv)}
    acc = {"metric": "val_acc_12ep", "direction": "maximize"}
    write(str(root), "one", data, 8, 0, url)
    write(str(root), "two", {**data, "strategy.name": "nsga2",
                             "objectives": [acc, {"metric": "test_acc_200ep", "direction": "maximize"}]}, 8, 1, url)
    write(str(root), "conv", {"objectives": [acc]}, 8, 2, url, file=REPO / "sweeps" / "quickstart.yaml")
    assert main(["compare", "one", "two", "conv", "--root", str(root), "--json", "--no-page"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out["objectives"]) == ["val_acc_12ep"]
    assert set(out["objectives"]["val_acc_12ep"]["groups"]) == {"one", "two", "conv"}
    (objective,) = [n for n in out["notes"] if "test_acc_200ep" in n]
    assert "only two has it" in objective and "\n" not in objective
    (spaces,) = [n for n in out["notes"] if n.startswith("spaces differ")]
    assert "one, two search nb201" in spaces and "conv search" in spaces
    assert len(out["notes"]) == 2
    assert main(["compare", "one", "conv", "--root", str(root), "--no-page"]) == 0
    table = capsys.readouterr().out
    assert "not compared: spaces differ" in table
    assert "(one sweep on a side: no standard error, no test)" in table  # no spread from one replicate


def test_an_unknown_sweep_name_is_one_line_and_exit_2(replicated, capsys):
    assert main(["compare", "nb201_cifar10", "nosuch", "--root", str(replicated)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'nosuch'" in err and err.startswith("nasforge: error:")


def test_sweeps_in_several_storages_are_served_together_from_one_copy(replicated, nb201_csv, tmp_path):
    from nasforge.platform.views.compare import open_sweeps
    from nasforge.platform.views.dashboard import compare_path, shared_storage

    runs = open_sweeps(["nb201_cifar10"], str(replicated))
    store, ids, copied = shared_storage(runs)  # a journal file each: copied into one
    assert copied and len(set(ids)) == 6
    for run, i in zip(runs, ids):
        assert store.get_study_name_from_id(i) == run.name
        assert [t.values for t in store.get_all_trials(i)] == [t.values for t in run.study.trials]
    assert compare_path(ids) == "/dashboard/compare-studies?ids=" + ",".join(map(str, ids))
    write = _writer()
    root, url = tmp_path / "runs", "journal://" + str(tmp_path / "s.journal")
    for name in ("a", "b"):
        write(str(root), name, {"task.data.path": str(nb201_csv)}, 3, 0, url)
    store, ids, copied = shared_storage(open_sweeps(["a", "b"], str(root)))
    assert not copied and len(ids) == 2  # one storage: served as it is, live


@pytest.mark.slow
def test_dashboard_of_a_group_serves_its_studies_and_the_compare_page(replicated, tmp_path):
    from test_dashboard import _get, dashboard

    with dashboard(["nb201_cifar10", "--root", str(replicated)], tmp_path) as landing:
        base = re.match(r"http://127\.0\.0\.1:\d+", landing).group(0)
        status, body = _get(f"{base}/api/studies")
        names = {s["study_name"] for s in json.loads(body)["study_summaries"]}
        assert status == 200 and names == {f"nb201_cifar10-{s}-s{seed}" for s in STRATEGIES for seed in SEEDS}
        assert re.fullmatch(r"http://\S+/dashboard/compare-studies\?ids=[\d,]+", landing), landing
        assert _get(landing)[0] == 200


@pytest.mark.slow
def test_wandb_comparison_run_holds_the_tables_and_plots(replicated, tmp_path, monkeypatch, capsys):
    from test_report import _leet

    monkeypatch.setenv("WANDB_MODE", "offline")
    capsys.readouterr()
    assert main(["compare", "nb201_cifar10", "--root", str(replicated), "-o", str(tmp_path / "c.html"),
                 "--wandb", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    folder = data["wandb"]
    assert folder and folder.startswith(str(tmp_path))
    records = [json.loads(line) for line in _leet(folder, "--json").splitlines() if line.strip()]
    header = next(r["run"] for r in records if r["type"] == "run")
    assert header["job_type"] == "comparison"
    assert header["run_group"] == "nb201_cifar10"  # the replicates' family
    item = {k: v for r in records if r["type"] == "history" for k, v in r["history"]["item"].items()}
    assert item["groups._type"] == "table-file" and item["groups.nrows"] == 2
    assert item["differences.nrows"] == 1
    assert item["plots/best0-trials._type"] == "plotly-file" and item["plots/importance._type"] == "plotly-file"


def test_multi_objective_sweeps_overlay_their_pareto_fronts(tmp_path, nb201_csv):
    from nasforge.platform.views.compare import compare, members, open_sweeps
    from nasforge.platform.views.compare_page import render_page

    write = _writer()
    root, url = tmp_path / "runs", "journal://" + str(tmp_path / "s.journal")
    two = {"task.data.path": str(nb201_csv), "strategy.name": "nsga2",
           "objectives": [{"metric": "val_acc_12ep", "direction": "maximize"},
                          {"metric": "test_acc_200ep", "direction": "maximize"}]}
    write(str(root), "moo-a", two, 20, 0, url)
    write(str(root), "moo-b", two, 20, 1, url)
    runs = open_sweeps(["moo-*"], str(root))
    page = render_page(compare(runs), members(runs))
    man = json.loads(re.search(r'id="nasforge-compare">(.*?)</script>', page, re.S).group(1))
    assert man["figures"]["pareto"] == ["moo-a", "moo-b"]
    assert {"best0-trials", "best1-trials", "best0-time", "best1-time"} <= set(man["figures"])


def test_the_trial_runs_of_an_arms_replicates_share_one_wandb_group(tmp_path, monkeypatch):
    from nasforge.platform.engine.config import TrackingConfig
    from nasforge.platform.engine.tracking import create_logger

    monkeypatch.setenv("WANDB_MODE", "offline")
    logger = create_logger(TrackingConfig(mode="offline", group="nb-tpe"), "nb-tpe-s0", 3, str(tmp_path), {})
    assert logger._wandb_init["group"] == "nb-tpe" and logger._wandb_init["name"] == "nb-tpe-s0-3"
    plain = create_logger(TrackingConfig(mode="offline"), "nb", 3, str(tmp_path), {})
    assert plain._wandb_init["group"] == "nb"  # a sweep on its own: its name, as before


def test_seeds_and_strategy_lists_name_the_replicates():
    from nasforge.platform.engine.replicates import parse_seeds, plan, split_strategies
    from nasforge.platform.errors import ConfigError

    assert parse_seeds("0-4") == [0, 1, 2, 3, 4] and parse_seeds("0-1,7") == [0, 1, 7]
    for bad in ("", "a-b", "1,1", "-3"):
        with pytest.raises(ConfigError, match="--seeds"):
            parse_seeds(bad)
    overrides = {"strategy.name": "tpe,local_search", "budget.trials": 5}
    assert split_strategies(overrides) == ["tpe", "local_search"] and overrides == {"budget.trials": 5}
    assert split_strategies({"strategy.name": "tpe"}) is None  # one strategy: an ordinary override
    assert [r.name for r in plan("nb", [0, 1], ["tpe", "gp"])] == ["nb-tpe-s0", "nb-tpe-s1", "nb-gp-s0", "nb-gp-s1"]
    assert [r.name for r in plan("nb", [3], None)] == ["nb-s3"] and plan("nb", None, ["gp"])[0].name == "nb-gp"
    assert plan("nb", [3], ["gp"])[0].overrides() == {"name": "nb-gp-s3", "tracking.group": "nb-gp", "seed": 3,
                                                     "strategy.name": "gp"}
