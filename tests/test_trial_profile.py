"""The trial's fixed cost, seen from outside: with the profile on, a real trial records the
seconds of each phase (what ``benchmarks/overhead.py`` reports); the diagram drawn beside
training is still recorded; latency is timed only when an objective or constraint names it."""
from __future__ import annotations

from pathlib import Path

import pytest

from nasforge.platform.engine import phases
from nasforge.platform.engine.config import load_sweep
from nasforge.platform.engine.sweep import run_sweep

from tiny_sweeps import quickstart_file


@pytest.fixture
def profile_on():
    phases.enable()
    yield
    phases.enable(False)


def test_a_profiled_trial_records_its_phases_and_latency_only_when_asked(tmp_path, profile_on):
    path = quickstart_file(tmp_path, name="prof", **{
        "budget.trials": 1, "task.data.subset": 128, "task.data.val_subset": 64,
        "constraints": [{"metric": "cost/latency_ms", "max": 1.0e6}],
    })
    study = run_sweep(load_sweep(path), root=str(tmp_path / "runs"), show_progress=False)
    t = study.trials[0]
    assert t.state.name == "COMPLETE", t.user_attrs.get("fail_reason")
    got = t.user_attrs["phases"]
    for name in ("sample", "data module", "network + module", "diagram", "wandb start", "trainer build",
                 "fit", "fit/setup", "fit/cost", "fit/checkpoint", "diagram wait", "artifacts"):
        assert name in got and got[name] >= 0.0, name
    assert got["fit"] >= got["fit/setup"] + got["fit/cost"] + got["fit/checkpoint"]
    # the diagram, drawn in the background, is on the trial when it is told
    assert t.user_attrs["diagrams"] and all(Path(d).stat().st_size > 0 for d in t.user_attrs["diagrams"])
    assert t.user_attrs["metrics"]["cost/latency_ms"] > 0  # a constraint names it: timed


def test_unprofiled_trials_record_no_phases_and_time_no_latency_unasked(quick_runs):
    from nasforge.platform.engine.storage import load_study

    for t in load_study("quickstart", quick_runs).trials:
        assert "phases" not in t.user_attrs
        assert "cost/latency_ms" not in t.user_attrs["metrics"] and t.user_attrs["metrics"]["cost/flops"] > 0
