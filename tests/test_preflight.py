"""The preflight: a sweep's mistakes are one line and exit 2 before anything is written, found by
one real training step (Lightning, digits) instead of a budget of failed trials; a config that
fails every trial the same way stops after three."""
from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from nasforge.platform.cli import main
from nasforge.platform.engine.config import load_sweep
from nasforge.platform.engine.sweep import SweepFailed, repeated_failure, run_sweep
from nasforge.platform.errors import ConfigError

from tiny_sweeps import quickstart_file


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    import torch

    torch.set_num_threads(1)
    monkeypatch.setenv("WANDB_MODE", "offline")


def _check(tmp_path, capsys, command="check", **overrides) -> tuple[int, str, str]:
    path = quickstart_file(tmp_path, name="pf", **overrides)
    code = main(["sweep", command, str(path), "--root", str(tmp_path / "runs")])
    out, err = capsys.readouterr()
    return code, out, err.strip()


def _hparams(**options) -> list:
    return [{"name": "convnet", "options": {"stages": 2, "widths": [8], "max_depth": 1}},
            {"name": "hparams", "options": options}]


# mistakes in a sweep file that, without the preflight, only a trial would find: (overrides, what the line says)
MISTAKES = [
    # these two are refused even earlier, when the config is loaded (class signatures)
    ({"task.options.batchsize": 32}, "task.options.batchsize: taken by neither ClassificationTask ("),
    ({"task.data.options": {"foo": 1}}, "task.data.init_args: DigitsDataModule: Option 'foo' is not accepted"),
    ({"task.data.val_fraction": 1.5}, "val_fraction must be in (0, 1), got 1.5"),
    ({"task.options.batch_size": 0}, "batch_size should be a positive integer"),
    ({"trainer.precision": "64bit"}, "preflight: trainer: ValueError: Precision '64bit' is invalid"),
    ({"trainer.accelerator": "tpu9"}, "preflight: trainer: ValueError: You selected an invalid accelerator"),
    ({"space": _hparams(optimizer=["lbfgs"])}, "unknown optimizer 'lbfgs'; valid: sgd, adamw"),
    ({"space": _hparams(optimizer=["adamw", "lbfgs"])}, "unknown optimizer 'lbfgs'"),  # whichever is drawn
    ({"task.data.path": "."}, "the digits data set ships with scikit-learn; it takes no path"),
    ({"objectives": [{"metric": "val/f1", "direction": "maximize"}]},
     "objectives[0].metric: 'val/f1' is never logged; logged: cost/flops"),
    ({"constraints": [{"metric": "cost/paramz", "max": 1e6}]}, "constraints[0].metric: 'cost/paramz' is never logged"),
]


@pytest.mark.parametrize("overrides, expect", MISTAKES, ids=[next(iter(o)) + str(i) for i, (o, _) in
                                                             enumerate(MISTAKES)])
def test_a_mistake_only_a_trial_found_is_now_one_line_exit_2_before_anything_is_written(
        tmp_path, capsys, overrides, expect):
    code, out, err = _check(tmp_path, capsys, **overrides)
    assert code == 2 and expect in err and err.startswith("nasforge: error:"), err
    assert "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_sweep_run_preflights_and_writes_nothing_on_a_mistake(tmp_path, capsys):
    code, out, err = _check(tmp_path, capsys, "run", **{"objectives": [{"metric": "val/f1"}]})
    assert code == 2 and "objectives[0].metric: 'val/f1' is never logged" in err
    assert not (tmp_path / "runs").exists()  # no sweep.yaml, no study.journal, no trials


def test_sweep_check_of_the_quickstart_is_ok_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = _check(tmp_path, capsys)
    assert code == 0, err
    assert "sweep 'pf': ok in" in out and "val/acc" in out and "cost/params" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pf.yaml"]  # no runs/, no wandb/, no lightning_logs/


@pytest.mark.parametrize("lr", [[0, 1], [-1, -0.5]])
def test_a_log_scale_range_that_cannot_be_one_is_refused_not_dropped(tmp_path, capsys, lr):
    code, out, err = _check(tmp_path, capsys, space=_hparams(lr=lr))
    assert code == 2 and f"hparams.lr: searched on a log scale, so the range needs 0 < low <= high, got {lr}" in err


def _cifar(tmp_path, capsys, path: str | None):
    overrides = {"task.data.name": "cifar10", "task.data.subset": 64, "task.data.val_subset": 32}
    if path is not None:
        overrides["task.data.path"] = path
    return _check(tmp_path, capsys, **overrides)


def test_cifar10_with_no_path_and_no_network_stops_before_the_first_trial(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ../shared beside it
    monkeypatch.setenv("NASFORGE_DATA", str(tmp_path / "nothing"))
    monkeypatch.setenv("NASFORGE_CACHE", str(tmp_path / "cache"))  # no cached copy from another test
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # nothing answers there: "no network", for sure
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    code, out, err = _cifar(tmp_path, capsys, None)
    assert code == 2 and "task.data.path: none given and no local copy of 'cifar10', so a download was tried" in err
    assert not (tmp_path / "runs").exists()


def _zip(path: Path, files: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return str(path)


@pytest.mark.parametrize("kind", ["empty", "corrupt", "no-classes"])
def test_a_bad_cifar10_zip_is_one_line_before_the_first_trial(tmp_path, capsys, monkeypatch, kind):
    monkeypatch.setenv("NASFORGE_CACHE", str(tmp_path / "cache"))
    if kind == "empty":
        path = _zip(tmp_path / "empty.zip", {})
    elif kind == "corrupt":
        path = str(tmp_path / "corrupt.zip")
        Path(path).write_bytes(b"PK\x03\x04 this is not a zip")
    else:
        path = _zip(tmp_path / "flat.zip", {"train/a.jpg": b"x", "readme.txt": b"no class folders"})
    code, out, err = _cifar(tmp_path, capsys, path)
    assert code == 2 and "preflight: task.data" in err and "\n" not in err, err
    assert not (tmp_path / "runs").exists()


def test_the_same_failure_three_times_in_a_row_stops_the_sweep_early(tmp_path):
    # no preflight here (run_sweep is the engine): every trial fails the same way at module creation
    # (a misspelt task option does not load at all; a value the class refuses does)
    cfg = load_sweep(quickstart_file(tmp_path, name="same", **{"space": _hparams(optimizer=["lbfgs"]),
                                                                  "budget.trials": 10}))
    with pytest.raises(SweepFailed, match=r"stopped early: 3 trials in a row failed for the same reason "
                                          r"\(budget.max_failures=10 not reached\)"):
        run_sweep(cfg, root=tmp_path / "runs", show_progress=False)
    from nasforge.platform.engine.storage import load_study

    assert [t.state.name for t in load_study("same", tmp_path / "runs").trials] == ["FAIL"] * 3


def test_different_reasons_or_a_success_between_do_not_count_as_repeated():
    assert repeated_failure(["NaN at step 3", "NaN at step 40", "NaN at step 7"])
    assert not repeated_failure(["NaN at step 3", "out of memory", "NaN at step 7"])
    assert not repeated_failure(["a", "a"])


def test_the_preflight_api_reports_its_steps_or_raises_a_config_error(tmp_path):
    from nasforge.platform.engine.preflight import preflight

    report = preflight(load_sweep(quickstart_file(tmp_path, name="api")), tmp_path / "runs")
    assert list(report.steps) == ["storage", "tracking", "space", "data", "network", "module", "trainer",
                                  "train+val step"]
    assert "hp/lr" in report.sample and "val/acc" in report.metrics
    cfg = load_sweep(quickstart_file(tmp_path, name="api", **{"space": _hparams(optimizer=["lbfgs"])}))
    with pytest.raises(ConfigError, match="task.options: ClassificationTask: unknown optimizer 'lbfgs'"):
        preflight(cfg, tmp_path / "runs")


# ----------------------------------------------------------------------------- W&B in the chosen mode
def test_an_empty_wandb_mode_counts_as_unset_and_the_first_trial_no_longer_fails(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc: auto resolves to offline
    cfg = load_sweep(quickstart_file(tmp_path, name="wm", **{"tracking.mode": "auto", "budget.trials": 1}))
    study = run_sweep(cfg, root=tmp_path / "runs", show_progress=False)
    assert [t.state.name for t in study.trials] == ["COMPLETE"]
    assert "offline-run-" in study.trials[0].user_attrs["wandb_run_dir"]


def test_an_unknown_wandb_mode_is_one_line_before_anything_is_written(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "off")
    code, out, err = _check(tmp_path, capsys, **{"tracking.mode": "offline"})
    assert code == 2 and "WANDB_MODE='off' is not a W&B mode; valid: online, run, offline, dryrun, disabled" in err
    assert not (tmp_path / "runs").exists()


def test_wandb_online_without_credentials_stops_before_the_first_trial(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    code, out, err = _check(tmp_path, capsys, "run", **{"tracking.mode": "auto"})
    assert code == 2 and "tracking.mode: W&B online needs credentials" in err
    assert not (tmp_path / "runs").exists()
