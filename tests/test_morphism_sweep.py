"""A `morphism` sweep end to end on real CIFAR-10 images, as a user runs it (the CLI in a
subprocess): two workers, one of them killed mid-trial, children that start from their parents'
checkpoints (lineage recorded, the first validation accuracy equal to the parent's within half a
point), a resume to a larger budget, and the best trial promoted, loaded and re-measured in a
fresh process."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sweep_workers import (
    NASFORGE, env, hold, journal_url, load, states, sweep_run, sweep_start, wait_for_running_trial, wait_until_dead,
)

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def small_sweep(folder: Path, cifar10_zip: Path, name: str) -> Path:
    """sweeps/cifar10_morphism.yaml cut in data, epochs and widths only."""
    data = yaml.safe_load((REPO / "sweeps" / "cifar10_morphism.yaml").read_text())
    data["name"] = name
    data["task"]["data"].update(path=str(cifar10_zip), subset=256, val_subset=256)
    data["task"]["options"]["batch_size"] = 64
    data["space"][0]["options"].update(stages=2, seed_width=8, max_width=32)
    data["strategy"]["options"].update(child_epochs=1, expansions=8)
    data["trainer"].update(accelerator="cpu", max_epochs=1, cpu_threads=1)
    data["tracking"]["mode"] = "disabled"
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_morphism_sweep_on_two_workers_inherits_resumes_and_promotes(cifar10_zip, tmp_path):
    from nasforge.platform.engine.heartbeat import HEARTBEAT_ATTR

    name, root = "morph", tmp_path / "runs"
    root.mkdir()
    file, storage = small_sweep(tmp_path, cifar10_zip, name), journal_url(root, name)
    held = hold(root, name)
    proc = sweep_start(file, root, "--workers", "2", "--trials", "5")
    victim = wait_for_running_trial(name, storage)
    pid = int(victim.system_attrs[HEARTBEAT_ATTR]["owner"].split("|")[2])
    os.kill(pid, signal.SIGKILL)
    wait_until_dead([pid])
    held.unlink()
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    study = load(name, storage)
    assert states(study).get("COMPLETE") == 5 and states(study).get("FAIL") == 1, states(study)
    before = {t.number: t.datetime_complete for t in study.trials if t.state.name == "COMPLETE"}

    res = sweep_run(file, root, "--workers", "2", "--trials", "8", timeout=600)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    study = load(name, storage)
    done = {t.number: t for t in study.trials if t.state.name == "COMPLETE"}
    assert len(done) == 8 and {n: done[n].datetime_complete for n in before} == before
    assert {t.user_attrs.get("worker") for t in done.values()} >= {"w0", "w1"}

    children = [t for t in done.values() if t.user_attrs.get("parent") is not None]
    assert len(children) >= 4
    for t in children:
        parent = study.trials[t.user_attrs["parent"]]
        assert t.user_attrs["lineage"] == list(parent.user_attrs.get("lineage") or []) + [parent.number]
        if "note" in t.user_attrs:  # the parent's checkpoint was dropped: trained from scratch, said so
            assert "trained from scratch" in t.user_attrs["note"]
            continue
        first = t.user_attrs["inherited_metrics"]["val/acc"]
        assert abs(first - parent.user_attrs["metrics"]["val/acc"]) <= 0.005, (t.number, parent.number)
    assert sum("inherited_metrics" in t.user_attrs for t in children) >= 3

    from nasforge.platform.engine.run_folder import open_run
    from nasforge.platform.views.leaderboard import leaderboard_rows

    rows = {r["trial"]: r for r in leaderboard_rows(study, open_run(name, root).cfg)}
    for t in children:
        assert rows[t.number]["lineage"] == " > ".join(map(str, t.user_attrs["lineage"] + [t.number]))

    from nasforge.platform.views.report import write_report

    page = Path(write_report(name, str(tmp_path / "report.html"), root=str(root))).read_text()
    assert "plot-lineage" in page and "<th>lineage</th>" in page  # the family tree and the column

    reg = tmp_path / "registry"
    prom = subprocess.run([*NASFORGE, "promote", name, "--best", "--root", str(root), "--registry", str(reg),
                           "--alias", "best"], capture_output=True, text=True, env=env(), cwd=tmp_path)
    assert prom.returncode == 0, prom.stderr
    script = (
        "import json\n"
        "from nasforge.platform.registry import Registry, evaluate, load\n"
        f"m = load('{name}:best', registry={str(reg)!r})\n"
        f"meta = Registry({str(reg)!r}).resolve('{name}:best').meta()\n"
        f"print(json.dumps({{'eval': evaluate('{name}:best', registry={str(reg)!r}), 'meta': meta['metrics'],\n"
        "                  'trial': meta['trial']['number'], 'training': m.training}))\n"
    )
    fresh = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                           env={**env(), "OMP_NUM_THREADS": "1"}, cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    got = json.loads(fresh.stdout.strip().splitlines()[-1])
    best = max(done.values(), key=lambda t: (t.value, -t.number))
    assert got["trial"] == best.number and got["training"] is False
    assert got["eval"]["val/acc"] == pytest.approx(best.value, abs=1e-6)


def test_a_two_device_child_starts_from_its_parents_checkpoint(cifar10_zip, tmp_path, monkeypatch):
    """Every rank of a child's process group (2 CPU ranks over gloo) loads the parent's transformed
    weights and trains the child's epochs, not the sweep's; rank 0 measures and records them."""
    from nasforge.platform.engine.config import load_sweep
    from nasforge.platform.engine.sweep import run_sweep

    file = small_sweep(tmp_path, cifar10_zip, "morph2")
    data = yaml.safe_load(file.read_text())
    data["trainer"].update(devices=2, max_epochs=2)  # the seed trains 2 epochs, the child 1
    data["budget"]["trials"] = 2
    file.write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    study = run_sweep(load_sweep(str(file)), root="runs", show_progress=False)
    parent, child = study.trials
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"], \
        [t.user_attrs.get("fail_reason") for t in study.trials]
    assert child.user_attrs["parent"] == 0 and child.user_attrs["lineage"] == [0]
    assert child.user_attrs["inherited_from"] == parent.user_attrs["checkpoint"]
    first = child.user_attrs["inherited_metrics"]["val/acc"]
    assert abs(first - parent.user_attrs["metrics"]["val/acc"]) <= 0.005
    assert (parent.user_attrs["epochs_run"], child.user_attrs["epochs_run"]) == (2, 1)
    ranks = [json.loads((tmp_path / "runs" / "morph2" / "trials" / "1" / "ddp" / f"rank{r}.json").read_text())
             for r in (0, 1)]
    assert [len(r["epochs"]) for r in ranks] == [1, 1] and ranks[0]["pid"] != ranks[1]["pid"]
