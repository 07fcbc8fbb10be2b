"""Bad sweep files fail with one line naming the key and the valid choices, exit 2, and write
nothing; every sweep file shipped in sweeps/ loads and validates."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nasforge.platform.cli import main
from nasforge.platform.engine.config import load_sweep
from nasforge.platform.errors import ConfigError

from tiny_sweeps import REPO, quickstart_file

SWEEPS = sorted((REPO / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_every_shipped_sweep_file_validates(path, monkeypatch):
    monkeypatch.chdir(REPO)  # data defaults resolve against ../shared/data like a checkout
    data = yaml.safe_load(path.read_text())
    needs_shared = data.get("task", {}).get("data", {}).get("name") in ("cifar10", "camvid", "isbi", "nb201")
    if needs_shared and not (REPO.parent / "shared" / "data").is_dir():
        pytest.skip("this sweep reads ../shared/data, which is absent on this machine")
    cfg = load_sweep(path)
    assert cfg.name == data["name"]
    # the space of every sweep file can be built from its declaration
    from nasforge.search_spaces import create_composite

    space = create_composite([{"name": p.name, "options": p.options} for p in cfg.space])
    assert space.dims


def _run(args, capsys):
    code = main(args)
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.parametrize(
    "override, expect",
    [
        ({"trainer.max_epoch": 3}, "unknown key 'trainer.max_epoch'; valid keys: accelerator, devices"),
        ({"budget.trials": "ten"}, "budget.trials: expected an integer or null, got 'ten'"),
        ({"task.name": "keypoints"}, "task.name: unknown task 'keypoints'; valid: adaptive, classification, detection, segmentation, tabular"),
        ({"strategy.name": "bayes"}, "strategy.name: unknown strategy 'bayes'; valid: tpe, random"),
        ({"pruner.name": "asha"}, "pruner.name: unknown pruner 'asha'; valid: none, median"),
        ({"tracking.mode": "cloud"}, "tracking.mode: 'cloud' is not valid; choose one of auto, online, offline, disabled"),
        ({"task.data.name": "mnist"}, "task.data.name: unknown data set 'mnist' for task 'classification'; valid: digits, cifar10"),
        ({"task.data.path": "/no/such/folder"}, "task.data.path: '/no/such/folder' does not exist"),
    ],
)
def test_bad_sweep_file_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, override, expect, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = quickstart_file(tmp_path, **override)
    code, err = _run(["sweep", "run", str(path), "--root", str(tmp_path / "runs")], capsys)
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert expect in err
    assert not (tmp_path / "runs").exists()


def test_unknown_space_name_lists_the_valid_ones(tmp_path, capsys):
    path = quickstart_file(tmp_path, space=[{"name": "darts"}])
    code, err = _run(["sweep", "run", str(path), "--root", str(tmp_path / "runs")], capsys)
    assert code == 2 and "space[0].name: unknown space 'darts'; valid:" in err and "convnet" in err
    assert not (tmp_path / "runs").exists()


def test_malformed_yaml_names_the_line(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\ntask:\n  name: classification\n   data: digits\n")
    code, err = _run(["sweep", "run", str(path)], capsys)
    assert code == 2 and "not valid YAML (line 4" in err and len(err.splitlines()) == 1


def test_missing_sweep_file(tmp_path, capsys):
    code, err = _run(["sweep", "run", str(tmp_path / "nope.yaml")], capsys)
    assert code == 2 and err == f"nasforge: error: sweep file '{tmp_path / 'nope.yaml'}' does not exist"


def test_bad_space_option_fails_before_anything_is_written(tmp_path, capsys):
    path = quickstart_file(tmp_path, space=[{"name": "convnet"}, {"name": "hparams", "options": {"learning_rate": [0.1, 1]}}])
    code, err = _run(["sweep", "run", str(path), "--root", str(tmp_path / "runs")], capsys)
    assert code == 2 and "hparams.learning_rate: the short [low, high]/[choices] form is for optimizer, lr" in err
    assert not (tmp_path / "runs" / "tiny").exists()


@pytest.mark.parametrize(
    "section, bad, good, expect",
    [
        ("strategy", {"name": "tpe", "options": {"n_startup": 3}}, {"name": "tpe", "options": {"n_startup_trials": 3}},
         "strategy.options: unknown option 'n_startup' for tpe"),
        ("strategy", {"name": "evolution", "options": {"pop": 4}},
         {"name": "evolution", "options": {"population": 4, "sample_size": 2}},
         "strategy.options: unknown option 'pop'"),
        ("pruner", {"name": "median", "options": {"warmup": 1}}, {"name": "median", "options": {"n_warmup_steps": 1}},
         "pruner.options.warmup: unknown option for median"),
    ],
)
def test_unknown_strategy_or_pruner_option_writes_nothing_and_the_fix_runs(tmp_path, capsys, section, bad, good,
                                                                          expect):
    """``strategy.options``/``pruner.options`` are checked with the rest of
    the file, before ``runs/<name>/sweep.yaml`` exists (they used to fail after it was written)."""
    root = tmp_path / "runs"
    path = quickstart_file(tmp_path, **{section: bad, "budget.trials": 1})
    code, err = _run(["sweep", "run", str(path), "--root", str(root), "--no-progress"], capsys)
    assert code == 2
    assert len(err.splitlines()) == 1 and expect in err, err
    assert not root.exists()
    path = quickstart_file(tmp_path, **{section: good, "budget.trials": 1})
    code, err = _run(["sweep", "run", str(path), "--root", str(root), "--no-progress"], capsys)
    assert code == 0, err
    assert (root / "tiny" / "sweep.yaml").exists()
    assert load_sweep(root / "tiny" / "sweep.yaml").to_dict()[section] == good


def test_cli_error_has_no_traceback_in_a_real_process(tmp_path):
    path = quickstart_file(tmp_path, **{"strategy.name": "bayes"})
    exe = Path(sys.executable).with_name("nasforge")
    r = subprocess.run([str(exe), "sweep", "run", str(path)], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1


def test_help_imports_no_heavy_library():
    """`nasforge --help` must not pay for torch/lightning/timm/wandb imports (seconds each)."""
    code = (
        "import sys; from nasforge.platform.cli import build_parser; build_parser().format_help(); "
        "heavy = [m for m in ('torch', 'lightning', 'timm', 'wandb', 'optuna', 'sklearn') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ""


def test_resolved_config_is_complete_and_reloads(tmp_path):
    cfg = load_sweep(quickstart_file(tmp_path))
    text = cfg.to_yaml()
    again = yaml.safe_load(text)
    assert again["trainer"]["precision"] == "32-true" and again["budget"]["trials"] == 2
    (tmp_path / "resolved.yaml").write_text(text)
    assert load_sweep(tmp_path / "resolved.yaml") == cfg


def test_multi_objective_with_a_pruner_is_refused(tmp_path):
    path = quickstart_file(tmp_path, objectives=[{"metric": "val/acc"}, {"metric": "cost/params", "direction": "minimize"}],
                      **{"pruner.name": "median"})
    with pytest.raises(ConfigError, match="cannot prune multi-objective"):
        load_sweep(path)
