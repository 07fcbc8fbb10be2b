"""Multi-device trials (trainer.devices > 1): Lightning DDP in a process group of its own, on the
CPU with 2 processes over gloo. Every rank rebuilds the trial from storage; rank 0 reports to
Optuna and decides pruning; the decision is broadcast so all ranks stop at the same epoch.

Each rank writes trials/<n>/ddp/rank<r>.json (its epochs and where it stopped): the tests read
what the two real processes did, not what the parent believes.
"""
from __future__ import annotations

import json

import pytest
from sweep_workers import journal_url, load, tiny_sweep_file


def _ranks(run_dir, number: int) -> list[dict]:
    folder = run_dir / "trials" / str(number) / "ddp"
    return [json.loads((folder / f"rank{r}.json").read_text()) for r in (0, 1)]


def _run(file, root):
    import torch

    from nasforge.platform.engine.config import load_sweep
    from nasforge.platform.engine.sweep import run_sweep

    torch.set_num_threads(1)
    return run_sweep(load_sweep(file), root=str(root), show_progress=False)


@pytest.mark.slow
def test_ddp_trial_completes_with_the_metric_rank_zero_logged(run_root):
    name = "ddp_complete"
    file = tiny_sweep_file(run_root.parent, name, trials=1, epochs=2, devices=2)
    study = _run(file, run_root)
    (trial,) = study.trials
    assert trial.state.name == "COMPLETE", trial.user_attrs.get("fail_reason")
    rank0, rank1 = _ranks(run_root / name, trial.number)
    assert rank0["pid"] != rank1["pid"]  # two real processes
    assert rank0["world_size"] == rank1["world_size"] == 2
    assert len(rank0["epochs"]) == len(rank1["epochs"]) == 2
    assert rank0["stopped_epoch"] == rank1["stopped_epoch"] and rank0["global_step"] == rank1["global_step"]
    # the value Optuna stores is the best val/acc rank 0 logged (synced: rank 1 saw the same)
    best = max(e["val/acc"] for e in rank0["epochs"])
    assert trial.value == pytest.approx(best)
    assert [e["val/acc"] for e in rank0["epochs"]] == pytest.approx([e["val/acc"] for e in rank1["epochs"]])
    assert trial.user_attrs["metrics"]["val/acc"] == pytest.approx(best)
    assert trial.user_attrs["ddp_outcome"]["state"] == "COMPLETE"
    assert trial.user_attrs["checkpoint"].endswith("best.ckpt")


@pytest.mark.slow
def test_ddp_trial_is_pruned_by_rank_zero_and_all_ranks_stop_at_the_same_epoch(run_root):
    import optuna

    name = "ddp_pruned"
    pruner = {"name": "median", "options": {"n_startup_trials": 1, "n_warmup_steps": 0}}
    file = tiny_sweep_file(run_root.parent, name, trials=2, epochs=3, devices=2, pruner=pruner)
    # an earlier trial that reached 0.0 after epoch 0 and a perfect 1.0 after epochs 1 and 2:
    # the median pruner keeps the DDP trial after epoch 0 and prunes it after epoch 1
    from nasforge.platform.engine.storage import create_storage

    storage = create_storage(journal_url(run_root, name))
    seed = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    seed.add_trial(optuna.trial.create_trial(value=1.0, intermediate_values={0: 0.0, 1: 1.0, 2: 1.0}))

    study = _run(file, run_root)
    trial = study.trials[1]
    assert trial.state.name == "PRUNED", trial.user_attrs.get("fail_reason")
    assert trial.user_attrs["pruned_epoch"] == 1
    assert sorted(trial.intermediate_values) == [0, 1]  # reported by rank 0, once per epoch
    rank0, rank1 = _ranks(run_root / name, trial.number)
    assert len(rank0["epochs"]) == len(rank1["epochs"]) == 2  # both stopped after epoch 1 of 3
    assert rank0["stopped_epoch"] == rank1["stopped_epoch"] and rank0["global_step"] == rank1["global_step"]
    assert rank0["outcome"]["state"] == rank1["outcome"]["state"] == "PRUNED"
    reported = trial.intermediate_values[1]
    assert reported == pytest.approx(rank0["epochs"][1]["val/acc"])
    assert load(name, journal_url(run_root, name)).trials[1].state.name == "PRUNED"


@pytest.mark.slow
def test_a_failing_ddp_trial_fails_with_its_reason_and_the_worker_goes_on(run_root):
    from nasforge.platform.engine.sweep import SweepFailed

    name = "ddp_fail"
    # an option the signature accepts (a str) but the constructor refuses: it fails inside the ranks
    file = tiny_sweep_file(run_root.parent, name, trials=1, devices=2, task_options={"optimizer": "no_such_optimizer"},
                           budget={"max_failures": 1})
    with pytest.raises(SweepFailed, match="no_such_optimizer"):
        _run(file, run_root)
    trial = load(name, journal_url(run_root, name)).trials[0]
    assert trial.state.name == "FAIL" and "no_such_optimizer" in trial.user_attrs["fail_reason"]
    assert trial.user_attrs["ddp_outcome"]["state"] == "FAIL"
