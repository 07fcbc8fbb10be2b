"""A real sweep end to end on digits: Lightning trials chosen by Optuna, stored in a study that
survives restarts, resumed to a larger total, NaN losses failing one trial only, W&B run files
that W&B's own reader reads back, and the status/best commands."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from nasforge.platform.cli import main
from nasforge.platform.engine.config import load_sweep
from nasforge.platform.engine.storage import load_study
from nasforge.platform.engine.sweep import run_sweep

from tiny_sweeps import quickstart_file

pytestmark = pytest.mark.slow


def test_sweep_runs_keeps_checkpoints_and_resumes_to_a_larger_total(tmp_path, capsys):
    path = quickstart_file(tmp_path, name="resume")
    root = tmp_path / "runs"
    assert main(["sweep", "run", str(path), "--root", str(root), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "leaderboard: resume" in out
    study = load_study("resume", root)
    first = {t.number: t.datetime_start for t in study.trials}
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    for t in study.trials:
        ckpt = Path(t.user_attrs["checkpoint"])
        assert ckpt.is_file() and ckpt.parent == root / "resume" / "trials" / str(t.number)
        assert 0.0 <= t.value <= 1.0 and t.value == t.user_attrs["metrics"]["val/acc"]
        assert t.user_attrs["metrics"]["cost/params"] > 0
    assert (root / "resume" / "sweep.yaml").is_file()

    # same command, larger total: the two finished trials are kept, two more run
    assert main(["sweep", "run", str(path), "--root", str(root), "--trials", "4", "--no-progress"]) == 0
    study = load_study("resume", root)
    assert len(study.trials) == 4
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    assert {n: study.trials[n].datetime_start for n in first} == first
    # and again with the same total: nothing new runs
    assert main(["sweep", "run", str(path), "--root", str(root), "--trials", "4", "--no-progress"]) == 0
    assert len(load_study("resume", root).trials) == 4

    capsys.readouterr()
    assert main(["sweep", "status", "resume", "--root", str(root)]) == 0
    status = capsys.readouterr().out
    assert "complete 4" in status and "finished 4/" in status and "best so far: val/acc=" in status
    assert main(["sweep", "best", "resume", "--root", str(root), "--json"]) == 0
    best = json.loads(capsys.readouterr().out)[0]
    assert best["values"]["val/acc"] == max(t.value for t in study.trials)
    assert Path(best["checkpoint"]).is_file() and "convnet/width" in best["sample"]


def test_nan_loss_fails_that_trial_with_its_reason_and_the_sweep_goes_on(tmp_path):
    cfg = load_sweep(quickstart_file(tmp_path, name="nan"))
    root = tmp_path / "runs"
    # pre-create the study and queue a trial whose learning rate makes SGD diverge at once
    from nasforge.platform.engine.storage import create_storage, default_storage_url

    storage = create_storage(default_storage_url("nan", root))
    study = optuna.create_study(study_name="nan", storage=storage, direction="maximize")
    cfg.space[1].options["lr"] = [0.003, 1.0e6]  # let the space hold a diverging value
    study.enqueue_trial({"hp/optimizer": "sgd", "hp/lr": 0.3, "convnet/width": 32}, skip_if_exists=False)
    study.enqueue_trial({"hp/optimizer": "sgd", "hp/lr": 1.0e6, "hp/weight_decay": 1e-5}, skip_if_exists=False)
    # the first queued trial is an ordinary one, the second diverges, then the sampler goes on
    study = run_sweep(cfg, root=root, show_progress=False)
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") == 2 and states.count("FAIL") == 1, states
    failed = next(t for t in study.trials if t.state.name == "FAIL")
    assert failed.params["hp/lr"] == 1.0e6
    assert "non-finite" in failed.user_attrs["fail_reason"]


def test_offline_wandb_run_reads_back_with_wandbs_own_reader(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = load_sweep(quickstart_file(tmp_path, name="wb", **{"tracking.mode": "auto", "budget.trials": 1}))
    study = run_sweep(cfg, root=tmp_path / "runs", show_progress=False)
    trial = study.trials[0]
    run_dir = trial.user_attrs["wandb_run_dir"]
    assert Path(run_dir).parent == tmp_path / "runs" / "wb" / "wandb"
    wandb_exe = Path(sys.executable).with_name("wandb")
    r = subprocess.run([str(wandb_exe), "leet", "inspect", "--summary", "--json", run_dir],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    run = json.loads(r.stdout)
    assert run["name"] == "wb-0" and run["state"] == "finished"
    assert run["config"]["sample"] == trial.user_attrs["sample"]
    summary = run["summary"]
    assert summary["objective/val/acc"] == pytest.approx(trial.value)
    assert summary["cost/params"] == trial.user_attrs["metrics"]["cost/params"]


def test_image_batches_reach_the_network_with_plain_nchw_strides():
    """A 1-channel batch gathered through channels-last (the crop) keeps stride 1 on C under
    `.contiguous()`; torch then runs the whole network channels-last, and oneDNN's convolution
    backward corrupted the heap on such a NASNet (the moo sweep crashed with `double free`)."""
    import numpy as np
    import torch

    from nasforge.tasks.image_data import ImageArrayDataModule, random_crop_flip

    for C in (1, 3):
        ds = ImageArrayDataModule._tensors(np.zeros((5, 8, 8, C), np.uint8), np.zeros(5, np.int64))
        x = ds.tensors[0]
        assert x.shape == (5, C, 8, 8) and x.stride() == (C * 64, 64, 8, 1)
        out = random_crop_flip(x.float(), pad=1, flip_p=0.5, generator=torch.Generator().manual_seed(0))
        assert out.shape == x.shape and out.stride() == (C * 64, 64, 8, 1)
