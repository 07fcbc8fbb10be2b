"""Real, tiny sweeps shared by the registry, report and dashboard tests (built once a session).

* ``quickstart``: sweeps/quickstart.yaml itself (convnet + hparams on scikit-learn's digits,
  TPE, median pruner) cut to 2 trials of 2 epochs, W&B offline: the sweep a user promotes.
* ``moo``: a two-objective sweep (maximise val/acc, minimise cost/params) over the NASNet cell
  space on digits (300 validation images), 2 trials of 2 epochs, NSGA-II: a Pareto front and cell diagrams.

Both run through `nasforge.platform.sweep.run_sweep`, the same path as `nasforge sweep run`.
The run folders live under pytest's session temp folder and are built once (a file lock
guards parallel workers); tests must treat them as read-only and copy what they change.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _build(name: str, root: Path) -> None:
    import torch

    from nasforge.platform.engine.config import load_sweep, parse_sweep
    from nasforge.platform.engine.sweep import run_sweep

    torch.set_num_threads(1)
    if name == "quickstart":
        cfg = load_sweep(REPO / "sweeps" / "quickstart.yaml",
                         {"budget.trials": 2, "trainer.max_epochs": 2, "tracking.mode": "offline"})
    elif name == "moo":
        cfg = parse_sweep({
            "name": "moo", "seed": 0,
            "task": {"name": "classification", "data": {"name": "digits", "val_subset": 300},
                     "options": {"optimizer": "adamw", "lr": 0.01, "batch_size": 32}},
            "space": [{"name": "nasnet", "options": {"blocks": 2, "C": 4, "N": 1, "stem_multiplier": 1}}],
            "strategy": {"name": "nsga2"}, "budget": {"trials": 2}, "pruner": {"name": "none"},
            "objectives": [{"metric": "val/acc", "direction": "maximize"},
                           {"metric": "cost/params", "direction": "minimize"}],
            "trainer": {"max_epochs": 2, "accelerator": "cpu"}, "tracking": {"mode": "disabled"},
        })
    else:  # pragma: no cover - a typo in a test
        raise ValueError(f"unknown tiny sweep {name!r}; valid: quickstart, moo")
    run_sweep(cfg, root=str(root), show_progress=False)


def tiny_sweep(tmp_path_factory, name: str) -> Path:
    """The runs root holding sweep ``name`` (built on first use in this session)."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp() / "nasforge-tiny-sweeps"
    base.mkdir(exist_ok=True)
    root = base / "runs"
    with FileLock(str(base / f"{name}.lock")):
        if not (base / f"{name}.done").exists():
            os.environ.setdefault("WANDB_MODE", "offline")
            _build(name, root)
            (base / f"{name}.done").write_text("ok\n")
    return root


def quickstart_file(tmp_path: Path, name: str = "tiny", **overrides) -> Path:
    """Write sweeps/quickstart.yaml shrunk for a test (2 trials, 1 epoch, no W&B, no pruner) to
    ``tmp_path``; dotted keys override (``**{"strategy.name": "random"}``)."""
    import yaml

    data = yaml.safe_load((REPO / "sweeps" / "quickstart.yaml").read_text())
    data["name"] = name
    data["budget"] = {"trials": 2}
    data["trainer"]["max_epochs"] = 1
    data["tracking"]["mode"] = "disabled"
    data["pruner"] = {"name": "none"}
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
