"""Checkpoint retention: the best ``checkpoints.keep_top`` trials by each objective keep their
``best.ckpt``, every other finished trial keeps none, the dashboard serves the kept file itself
(a hard link, not a copy), and promotion works for a kept trial and says why for a dropped one.

The policy tests use real Optuna studies (in-memory storage) with trials written through the
public API and real files; the end-to-end test runs the quickstart sweep on digits."""
from __future__ import annotations

import os
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nasforge.platform.cli import main
from nasforge.platform.engine.config import parse_sweep
from nasforge.platform.engine.retention import apply_retention, kept_trials

from tiny_sweeps import quickstart_file

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _cfg(keep_top, objectives=({"metric": "val/acc", "direction": "maximize"},)):
    return parse_sweep({
        "name": "keep", "task": {"name": "classification", "data": {"name": "digits"}},
        "space": [{"name": "convnet"}], "pruner": {"name": "none"}, "objectives": list(objectives),
        "checkpoints": {"keep_top": keep_top}, "tracking": {"mode": "disabled"},
    })


def _study(tmp_path: Path, rows, directions=("maximize",)) -> optuna.Study:
    """One trial per row ``(state, values)``, each with a real checkpoint file in its folder."""
    study = optuna.create_study(directions=list(directions))
    for n, (state, values) in enumerate(rows):
        d = tmp_path / "trials" / str(n)
        d.mkdir(parents=True)
        (d / "best.ckpt").write_bytes(b"weights %d" % n)
        attrs = {"trial_dir": str(d)}
        if state == TrialState.COMPLETE:
            attrs["checkpoint"] = str(d / "best.ckpt")
        study.add_trial(optuna.trial.create_trial(
            state=state, values=values if state == TrialState.COMPLETE else None,
            distributions={}, params={}, user_attrs=attrs))
    return study


def _kept_files(tmp_path: Path) -> list[int]:
    return sorted(int(p.parent.name) for p in (tmp_path / "trials").glob("*/best.ckpt"))


def test_top_k_complete_trials_keep_their_checkpoint_others_none(tmp_path):
    C, P, F, R = TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING
    study = _study(tmp_path, [(C, [0.5]), (P, None), (C, [0.9]), (F, None), (C, [0.7]), (C, [0.6]), (R, None)])
    removed = apply_retention(study, _cfg(2), str(tmp_path))
    # best two by val/acc are trials 2 (0.9) and 4 (0.7); the running trial 6 is left alone
    assert _kept_files(tmp_path) == [2, 4, 6]
    assert sorted(int(Path(p).parent.name) for p in removed) == [0, 1, 3, 5]
    assert apply_retention(study, _cfg(2), str(tmp_path)) == []  # idempotent


def test_keep_top_null_keeps_every_complete_trial_and_zero_keeps_none(tmp_path):
    C, P = TrialState.COMPLETE, TrialState.PRUNED
    study = _study(tmp_path, [(C, [0.5]), (P, None), (C, [0.9])])
    apply_retention(study, _cfg(None), str(tmp_path))
    assert _kept_files(tmp_path) == [0, 2]
    apply_retention(study, _cfg(0), str(tmp_path))
    assert _kept_files(tmp_path) == []


def test_several_objectives_keep_the_top_k_by_each(tmp_path):
    C = TrialState.COMPLETE
    # (val/acc up, cost/params down): 0 is most accurate, 3 is smallest, 1 and 2 lead in neither
    rows = [(C, [0.95, 900.0]), (C, [0.90, 500.0]), (C, [0.80, 400.0]), (C, [0.50, 100.0])]
    study = _study(tmp_path, rows, directions=("maximize", "minimize"))
    cfg = _cfg(1, [{"metric": "val/acc", "direction": "maximize"},
                   {"metric": "cost/params", "direction": "minimize"}])
    assert kept_trials(study.get_trials(), cfg) == {0, 3}
    apply_retention(study, cfg, str(tmp_path))
    assert _kept_files(tmp_path) == [0, 3]


@pytest.mark.parametrize("value, expect", [
    (-1, "checkpoints.keep_top: must be >= 0 (or null: keep all), got -1"),
    ("three", "checkpoints.keep_top: expected an integer or null, got 'three'"),
])
def test_bad_keep_top_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, value, expect):
    path = quickstart_file(tmp_path, **{"checkpoints.keep_top": value})
    assert main(["sweep", "run", str(path), "--root", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expect in err, err
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_sweep_keeps_one_copy_of_the_top_k_and_promotes_them(tmp_path, capsys):
    from optuna.artifacts import get_all_artifact_meta

    from nasforge.platform.engine.artifacts import artifact_store
    from nasforge.platform.engine.storage import load_study

    path = quickstart_file(tmp_path, name="keep", **{"budget.trials": 4, "checkpoints.keep_top": 2})
    root, reg = tmp_path / "runs", tmp_path / "registry"
    assert main(["sweep", "run", str(path), "--root", str(root), "--no-progress"]) == 0
    study = load_study("keep", root)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) == 4
    ranked = sorted(done, key=lambda t: (-t.value, t.number))
    kept, dropped = ranked[:2], ranked[2:]
    assert _kept_files(root / "keep") == sorted(t.number for t in kept)

    store = artifact_store(str(root / "keep" / "artifacts"))
    for t in kept:
        # the dashboard's artifact is the trial's own file (same inode), not a second copy
        ckpt = t.user_attrs["checkpoint"]
        meta = [m for m in get_all_artifact_meta(t, storage=study._storage) if m.filename == "best.ckpt"]
        assert len(meta) == 1
        with store.open_reader(meta[0].artifact_id) as f:
            assert os.path.samestat(os.fstat(f.fileno()), os.stat(ckpt))
        # a weights-only checkpoint: no optimizer state to carry around
        import torch

        assert "optimizer_states" not in torch.load(ckpt, map_location="cpu", weights_only=False)
    # a dropped trial's file is gone, and so is the dashboard's link to it
    from optuna.artifacts.exceptions import ArtifactNotFound

    for t in dropped:
        assert not Path(t.user_attrs["checkpoint"]).exists()
        meta = [m for m in get_all_artifact_meta(t, storage=study._storage) if m.filename == "best.ckpt"]
        with pytest.raises(ArtifactNotFound):
            store.open_reader(meta[0].artifact_id)

    assert main(["promote", "keep", "--best", "--root", str(root), "--registry", str(reg)]) == 0
    capsys.readouterr()
    assert main(["promote", "keep", "--trial", str(dropped[0].number), "--root", str(root),
                 "--registry", str(reg)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "checkpoints.keep_top=2" in err, err


@pytest.mark.slow
def test_two_workers_leave_exactly_the_top_k_checkpoints(run_root):
    from sweep_workers import journal_url, load, sweep_run, tiny_sweep_file

    name = "keep2w"
    file = tiny_sweep_file(run_root.parent, name, trials=6)
    res = sweep_run(file, run_root, "--workers", "2", "--set", "checkpoints.keep_top=2")
    assert res.returncode == 0, res.stdout + res.stderr
    study = load(name, journal_url(run_root, name))
    done = sorted((t for t in study.get_trials() if t.state == TrialState.COMPLETE), key=lambda t: (-t.value, t.number))
    assert len(done) == 6
    # the last trial to finish in either worker is ranked under the same lock as the others
    assert _kept_files(run_root / name) == sorted(t.number for t in done[:2])
