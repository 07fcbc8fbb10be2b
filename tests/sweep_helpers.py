"""Small real sweeps for tests: the quickstart's file, shrunk (digits, 1-2 epochs)."""
from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def tiny_sweep(tmp_path: Path, name: str = "tiny", **overrides) -> Path:
    """Write a copy of sweeps/quickstart.yaml made small enough for a test; dotted keys override."""
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
