"""Shared fixtures: where the real data lives, and an isolated place for runs.

Real data is read in place from ../shared/data (or $NASFORGE_DATA); tests that need it skip
with the reason when it is absent, as on a user's fresh machine. W&B never goes online from a
test: WANDB_MODE defaults to offline and every run folder is under pytest's tmp_path.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_DISABLE_GIT", "true")
os.environ.setdefault("WANDB_CONSOLE", "off")


def _shared_data() -> Path | None:
    for cand in (os.environ.get("NASFORGE_DATA"), REPO.parent / "shared" / "data"):
        if cand and Path(cand).is_dir():
            return Path(cand).resolve()
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = _shared_data()
    if root is None:
        pytest.skip("real data not found: ../shared/data (or $NASFORGE_DATA) is absent on this machine")
    return root


def _data_file(shared: Path, rel: str) -> Path:
    p = shared / rel
    if not p.exists():
        pytest.skip(f"real data not found: {p} is absent")
    return p


@pytest.fixture(scope="session")
def cifar10_zip(shared_data) -> Path:
    return _data_file(shared_data, "cifar10-jpeg.zip")


@pytest.fixture(scope="session")
def camvid_zip(shared_data) -> Path:
    return _data_file(shared_data, "camvid-240x180.zip")


@pytest.fixture(scope="session")
def isbi_zip(shared_data) -> Path:
    return _data_file(shared_data, "isbi2012-membrane.zip")


@pytest.fixture(scope="session")
def nb201_csv(shared_data) -> Path:
    return _data_file(shared_data, "nb201/cifar10.csv")


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a test module (use with ``pytestmark``): on a shared 2-core machine
    2 threads are many times slower for small convolutions; restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def pennfudan_zip(shared_data) -> Path:
    return _data_file(shared_data, "pennfudan-ped.zip")


@pytest.fixture
def run_root(tmp_path, monkeypatch) -> Path:
    """A fresh folder for sweeps' run folders; the working directory moves there too."""
    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NASFORGE_DATA", str(_shared_data() or ""))
    return root


@pytest.fixture(scope="session")
def quick_runs(tmp_path_factory) -> Path:
    """The root of a real 2-trial quickstart sweep (built once a session; treat as read-only)."""
    from tiny_sweeps import tiny_sweep

    return tiny_sweep(tmp_path_factory, "quickstart")


@pytest.fixture(scope="session")
def moo_runs(tmp_path_factory) -> Path:
    """The root of a real two-objective NASNet sweep on digits (built once a session)."""
    from tiny_sweeps import tiny_sweep

    return tiny_sweep(tmp_path_factory, "moo")
