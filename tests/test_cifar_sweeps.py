"""Each CIFAR-10 sweep file runs end to end: 2 trials, 1 epoch, on a subset of the real data.

The files are the ones users run (sweeps/cifar10_*.yaml), shrunk only in budget, epochs and data;
their spaces, strategies, constraints and tasks are as shipped."""
from __future__ import annotations

from pathlib import Path

import pytest

from nasforge.platform.engine.config import load_sweep
from nasforge.platform.engine.sweep import run_sweep

from tiny_sweeps import REPO

pytestmark = pytest.mark.slow
FILES = ["cifar10_nasnet", "cifar10_attention", "cifar10_reallocation"]


@pytest.mark.parametrize("name", FILES)
def test_cifar10_sweep_file_runs_end_to_end(name, cifar10_zip, tmp_path):
    cfg = load_sweep(REPO / "sweeps" / f"{name}.yaml", {
        "budget.trials": 2, "trainer.max_epochs": 1, "trainer.cpu_threads": 1,
        "task.data.path": str(cifar10_zip), "task.data.subset": 256, "task.data.val_subset": 256,
        "tracking.mode": "disabled",
    })
    study = run_sweep(cfg, root=tmp_path / "runs", show_progress=False)
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 2, [(t.state.name, t.user_attrs.get("fail_reason")) for t in study.trials]
    for t in study.trials:
        if t.state.name != "COMPLETE":
            continue
        m = t.user_attrs["metrics"]
        assert 0.0 <= m["val/acc"] <= 1.0
        assert m["cost/params"] > 0 and m["cost/flops"] > 0
        assert Path(t.user_attrs["checkpoint"]).is_file()
        diagrams = t.user_attrs.get("diagrams") or []
        assert diagrams and all(Path(d).stat().st_size > 0 for d in diagrams)
        if cfg.constraints:  # a constrained sweep hands Optuna one value per bound (<= 0: feasible)
            values = t.user_attrs["constraints"]
            assert set(values) == {f"{c.metric}<={c.max:g}" for c in cfg.constraints if c.max is not None}
            for c in cfg.constraints:
                assert values[f"{c.metric}<={c.max:g}"] == pytest.approx(m[c.metric] - c.max)
