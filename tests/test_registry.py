"""The model registry: promote a real trial, load it back, reproduce its metric, refuse tampered
files, allocate versions atomically, move aliases, say why W&B did not link, export.

The sweep is the real quickstart cut to 2 trials (tests/tiny_sweeps.py); each test promotes
into its own registry folder.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from nasforge.platform.cli import main


@pytest.fixture(scope="session")
def runs(quick_runs) -> Path:
    return quick_runs


@pytest.fixture(scope="session")
def promoted(runs, tmp_path_factory):
    """A registry with the quickstart's best trial promoted as v1 (aliases best, production)."""
    from nasforge.platform.registry import promote

    reg = tmp_path_factory.mktemp("registry")
    res = promote("quickstart", best=True, aliases=["best", "production"], root=str(runs), registry=reg)
    return reg, res


def _copy_registry(promoted, tmp_path) -> Path:
    reg = tmp_path / "registry"
    shutil.copytree(promoted[0], reg)
    return reg


@pytest.mark.slow
def test_promote_load_evaluate_reproduces_the_recorded_metric(runs, promoted):
    import optuna
    import torch
    from torch import nn

    from nasforge.platform.registry import Registry, create_datamodule, evaluate, load
    from nasforge.platform.engine.run_folder import open_run

    reg, res = promoted
    study = open_run("quickstart", runs).study
    best = study.best_trial
    v = Registry(reg).resolve("quickstart:production")
    meta = v.meta()
    assert v.version == "v1" and meta["trial"]["number"] == best.number
    assert meta["metrics"]["val/acc"] == pytest.approx(best.value)
    assert meta["sweep"]["name"] == "quickstart" and meta["data"]["name"] == "digits"
    # every file is in the manifest, and the weights are a plain state_dict of tensors
    files = v.manifest()["files"]
    assert {"weights.pt", "genotype.json", "config.yaml", "model.json"} <= set(files)
    state = torch.load(os.path.join(v.path, "weights.pt"), weights_only=True)
    assert state and all(isinstance(t, torch.Tensor) for t in state.values())
    assert not any(k.startswith("network.") for k in state)

    model = load("quickstart:production", registry=reg)
    assert isinstance(model, nn.Module) and not model.training
    # A user's inference loop over the sweep's own validation split: pixels * scale, then the
    # recorded normalisation; scored with the task's own metric object (torchmetrics).
    from nasforge.tasks.classification import ClassificationTask

    assert meta["task"]["class_path"] == "classification"
    task = ClassificationTask(network=model, num_classes=meta["num_classes"], **meta["task"]["init_args"])
    dm = create_datamodule(meta)
    dm.setup("validate")
    pre = meta["preprocessing"]
    mean = torch.tensor(pre["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(pre["std"]).view(1, -1, 1, 1)
    total = 0
    with torch.no_grad():
        for x, y in dm.val_dataloader():
            logits = model((x.float() * pre["scale"] - mean) / std)  # (B, 10)
            task.val_acc.update(logits, y)
            total += len(y)
    recorded = meta["metrics"]["val/acc"]
    assert total == len(dm.val_set)
    assert abs(float(task.val_acc.compute()) - recorded) <= 0.001, (float(task.val_acc.compute()), recorded)
    # ... and through the task's own validation step (torchmetrics), as `registry evaluate` does
    measured = evaluate("quickstart:best", registry=reg)
    assert abs(measured["val/acc"] - recorded) <= 0.001
    assert measured["val/loss"] == pytest.approx(meta["metrics"]["val/loss"], abs=1e-3)
    assert optuna.trial.TrialState.COMPLETE == best.state


def test_tampered_weights_are_refused_with_a_clear_message(promoted, tmp_path, capsys):
    import torch

    from nasforge.platform.errors import NasforgeError
    from nasforge.platform.registry import IntegrityError, load

    reg = _copy_registry(promoted, tmp_path)
    w = reg / "quickstart" / "versions" / "v1" / "weights.pt"
    state = torch.load(w, weights_only=True)
    key = next(k for k, t in state.items() if t.is_floating_point())
    state[key] = state[key] + 1e-3  # a small, silent change
    torch.save(state, w)
    with pytest.raises(IntegrityError) as e:
        load("quickstart:best", registry=reg)
    assert isinstance(e.value, NasforgeError)
    msg = str(e.value)
    assert "\n" not in msg and "weights.pt" in msg and "integrity" in msg and "refusing" in msg
    # the CLI prints that one line and exits non-zero, writing nothing
    rc = main(["registry", "export", "quickstart:best", "--format", "torchscript",
               "-o", str(tmp_path / "m.pt"), "--registry", str(reg)])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and err.count("\n") == 0 and "weights.pt failed its integrity check" in err
    assert not (tmp_path / "m.pt").exists()


def test_tampered_metadata_is_refused(promoted, tmp_path):
    from nasforge.platform.registry import IntegrityError, load

    reg = _copy_registry(promoted, tmp_path)
    meta = reg / "quickstart" / "versions" / "v1" / "model.json"
    data = json.loads(meta.read_text())
    data["num_classes"] = 9
    meta.write_text(json.dumps(data))
    with pytest.raises(IntegrityError, match="model.json"):
        load("quickstart", registry=reg)


@pytest.mark.slow
def test_two_concurrent_promotions_get_two_distinct_versions(runs, tmp_path):
    from nasforge.platform.registry import Registry

    reg = tmp_path / "registry"
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "nasforge.platform.cli", "promote", "quickstart", "--root", str(runs),
           "--registry", str(reg), "--model", "digits-net"]
    procs = [subprocess.Popen(cmd + ["--trial", str(n)], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in (0, 1)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    versions = Registry(reg).versions("digits-net")
    assert [v.version for v in versions] == ["v1", "v2"]
    assert sorted(v.meta()["trial"]["number"] for v in versions) == [0, 1]
    for v in versions:
        v.verify()  # both complete and intact


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="needs Linux's /proc/locks to see waiting processes")
def test_two_concurrent_promotions_of_one_trial_make_one_version(runs, tmp_path):
    """Both processes pass the early look (nothing promoted yet) and wait on the registry lock, which
    the test holds until /proc/locks shows both waiting: then the first writes v1 and the second finds
    it, as the sequential duplicate does (exit 0, 'already', its alias moved to v1)."""
    import time

    from sweep_workers import lock_waiters

    from nasforge.platform.registry import Registry
    from nasforge.platform.registry.versions import LOCK

    reg = Registry(tmp_path / "registry")
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "nasforge.platform.cli", "promote", "quickstart", "--best", "--root", str(runs),
           "--registry", reg.root, "--model", "digits-net"]
    with reg.lock("digits-net"):
        procs = [subprocess.Popen(cmd + ["--alias", alias], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for alias in ("a", "b")]
        deadline = time.monotonic() + 300
        while lock_waiters(Path(reg.model_dir("digits-net")) / LOCK) < 2:  # both wait on the lock now
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            assert time.monotonic() < deadline, "the promotions never reached the registry lock"
            time.sleep(0.05)
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    texts = sorted(out for out, _ in outs)
    assert texts[0].startswith("promoted trial") and " as digits-net:v1" in texts[0], texts
    assert "is already digits-net:v1; no new version" in texts[1], texts
    assert [v.version for v in reg.versions("digits-net")] == ["v1"]
    assert reg.aliases("digits-net") == {"a": "v1", "b": "v1"}
    reg.versions("digits-net")[0].verify()


def test_version_allocation_is_atomic_under_contention(tmp_path):
    from nasforge.platform.registry import Registry

    reg = Registry(tmp_path / "registry")
    barrier = threading.Barrier(8)
    got: list[str] = []

    def grab():
        barrier.wait()
        got.append(reg.allocate("m").version)

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got, key=lambda s: int(s[1:])) == [f"v{i}" for i in range(1, 9)]
    # unsealed versions (no manifest yet) are never resolved
    assert reg.versions("m") == []


def test_aliases_move_atomically_and_resolve(promoted, tmp_path, capsys):
    from nasforge.platform.errors import UsageError
    from nasforge.platform.registry import Registry

    reg_dir = _copy_registry(promoted, tmp_path)
    reg = Registry(reg_dir)
    v1 = reg.resolve("quickstart:v1")
    # a second version of the same model: a copy sealed as v2 (its own manifest)
    v2 = reg.allocate("quickstart")
    for f in os.listdir(v1.path):
        if f != "MANIFEST.json":
            shutil.copy(os.path.join(v1.path, f), v2.path)
    reg.seal(v2)
    assert reg.resolve("quickstart").version == "v2"  # latest
    assert reg.resolve("quickstart:production").version == "v1"
    assert main(["registry", "alias", "quickstart:v2", "production", "--registry", str(reg_dir)]) == 0
    assert reg.resolve("quickstart:production").version == "v2"
    assert reg.resolve("quickstart:best").version == "v1"  # other aliases untouched
    adir = reg_dir / "quickstart" / "aliases"
    assert sorted(os.listdir(adir)) == ["best", "production"]  # no temp files left behind
    with pytest.raises(UsageError, match="reserved"):
        reg.set_alias("quickstart", "latest", "v1")
    with pytest.raises(UsageError, match="no alias 'staging'"):
        reg.resolve("quickstart:staging")


def test_registry_list_and_show(promoted, capsys, monkeypatch):
    from nasforge.platform.registry import Registry

    reg, res = promoted
    monkeypatch.setenv("NASFORGE_REGISTRY", str(reg))  # the default folder, moved by the environment
    assert Registry().root == str(reg) and Registry().resolve("quickstart:best").version == "v1"
    monkeypatch.delenv("NASFORGE_REGISTRY")
    assert Registry().root == os.path.abspath("registry")
    assert main(["registry", "list", "--registry", str(reg)]) == 0
    out = capsys.readouterr().out
    assert "quickstart" in out and "v1" in out and "best" in out and "production" in out
    assert main(["registry", "show", "quickstart:production", "--registry", str(reg)]) == 0
    out = capsys.readouterr().out
    assert "quickstart:v1" in out and "val/acc=" in out and "sha256" in out and "weights.pt" in out
    assert main(["registry", "show", "quickstart:v1", "--json", "--registry", str(reg)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model"]["trial"]["number"] == res.meta["trial"]["number"]
    assert sorted(data["aliases"]) == ["best", "production"]
    assert main(["registry", "load", "quickstart:best", "--registry", str(reg)]) == 0
    out = capsys.readouterr().out
    assert "files match their sha256" in out and "eval mode" in out and "-> output (10,)" in out


def test_offline_wandb_promotion_says_so_and_push_refuses(promoted, capsys):
    reg, res = promoted
    # the quickstart's trial ran with W&B offline: nothing was linked, and it says how to link
    assert res.meta["trial"]["wandb_run_dir"] and "offline-run" in res.meta["trial"]["wandb_run_dir"]
    assert "not linked to the W&B Registry" in res.wandb_message
    assert "nasforge registry push quickstart:v1" in res.wandb_message
    assert res.version.wandb_state()["linked"] is False
    rc = main(["registry", "push", "quickstart:v1", "--registry", str(reg)])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and "\n" not in err and "offline W&B cannot link quickstart:v1" in err


def test_promote_cli_errors_are_one_line(runs, tmp_path, capsys):
    reg = str(tmp_path / "registry")
    for argv, needle in [
        (["promote", "nosuch", "--root", str(runs), "--registry", reg], "no sweep named 'nosuch'"),
        (["promote", "quickstart", "--trial", "99", "--root", str(runs), "--registry", reg], "has no trial 99"),
        (["promote", "quickstart", "--alias", "v3", "--root", str(runs), "--registry", reg], "reserved"),
        (["registry", "show", "quickstart", "--registry", reg], "no model named 'quickstart'"),
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and needle in err, err
    assert not os.path.exists(os.path.join(reg, "quickstart"))


@pytest.mark.slow
def test_export_onnx_and_torchscript_match_eager(promoted, tmp_path, capsys):
    import onnx
    import torch

    from nasforge.platform.registry import load

    reg, _ = promoted
    onnx_path, ts_path = tmp_path / "q.onnx", tmp_path / "q.pt"
    assert main(["registry", "export", "quickstart:best", "--format", "onnx", "-o", str(onnx_path),
                 "--registry", str(reg)]) == 0
    assert "checked with onnx.checker" in capsys.readouterr().out
    onnx.checker.check_model(onnx.load(str(onnx_path)))
    assert main(["registry", "export", "quickstart:best", "--format", "torchscript", "-o", str(ts_path),
                 "--registry", str(reg)]) == 0
    eager = load("quickstart:best", registry=reg)
    scripted = torch.jit.load(str(ts_path))
    x = torch.randn(5, *json.loads((Path(reg) / "quickstart/versions/v1/model.json").read_text())["input_shape"])
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), eager(x))
    # the ONNX graph has a dynamic batch axis and runs in ONNX's own reference evaluator
    from onnx.reference import ReferenceEvaluator

    model = onnx.load(str(onnx_path))
    got = ReferenceEvaluator(model).run(None, {model.graph.input[0].name: x.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(got), eager(x).detach(), atol=1e-4, rtol=1e-3)


@pytest.mark.slow
def test_wandb_artifact_is_logged_and_linking_is_refused_offline(promoted, tmp_path, monkeypatch):
    """The online code path up to where offline W&B stops: the model artifact is really logged
    (read back with W&B's own reader), then ``link_artifact`` is refused with our message."""
    import wandb

    from nasforge.platform.errors import NasforgeError
    from nasforge.platform.registry import Registry
    from nasforge.platform.registry.wandb_link import log_and_link

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))  # W&B's staging copies
    reg, _ = promoted
    v = Registry(reg).resolve("quickstart:production")
    run = wandb.init(project="nasforge-test", mode="offline", dir=str(tmp_path), job_type="promote",
                     settings=wandb.Settings(silent=True, console="off", disable_git=True))
    folder = os.path.dirname(run.dir)
    try:
        with pytest.raises(NasforgeError, match="cannot link quickstart:v1 to wandb-registry-model/quickstart while offline"):
            log_and_link(run, v, ["production"], v.meta())
    finally:
        run.finish()
    wandb_cli = Path(sys.executable).with_name("wandb")
    out = subprocess.run([str(wandb_cli), "leet", "inspect", "--json", folder], capture_output=True, text=True,
                         timeout=120)
    if out.returncode != 0 and "No such command" in out.stderr:
        pytest.skip("this wandb has no `wandb leet inspect` reader")
    arts = [json.loads(line)["artifact"] for line in out.stdout.splitlines() if '"type":"artifact"' in line]
    assert arts, out.stderr
    art = arts[0]
    assert art["type"] == "model" and art["name"] == "quickstart"
    assert {"v1", "production"} <= set(art["aliases"])
    assert sorted(c["path"] for c in art["manifest"]["contents"]) == sorted(v.manifest()["files"])


@pytest.mark.slow
def test_promote_best_of_a_multi_objective_sweep_keeps_its_diagram(moo_runs, tmp_path):
    from nasforge.platform.registry import load, promote
    from nasforge.platform.engine.run_folder import open_run

    runs = moo_runs
    study = open_run("moo", runs).study
    res = promote("moo", best=True, model="digits-nasnet", root=str(runs), registry=tmp_path / "reg")
    meta = res.meta
    # --best on two objectives: the Pareto-optimal trial best on the first one (val/acc)
    pareto = study.best_trials
    assert meta["trial"]["number"] == max(pareto, key=lambda t: t.values[0]).number
    assert meta["sweep"]["name"] == "moo" and meta["model"] == "digits-nasnet"
    assert meta["diagrams"] == ["architecture.png", "architecture.svg"]
    assert {"architecture.png", "architecture.svg"} <= set(res.version.manifest()["files"])
    assert "tracking is disabled" in res.wandb_message
    assert type(load("digits-nasnet", registry=tmp_path / "reg")).__name__ == "NASNetwork"


@pytest.mark.slow
def test_registry_evaluate_prints_every_metric_beside_its_recorded_value(promoted, capsys):
    """README command 1 ends with `nasforge registry evaluate quickstart:best`: every re-measured
    metric is printed with the value recorded at promotion (it once crashed on the second one)."""
    reg, _ = promoted
    assert main(["registry", "evaluate", "quickstart:best", "--registry", str(reg)]) == 0
    lines = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines() if " measured " in ln}
    assert {"val/acc", "val/loss"} <= set(lines), lines
    assert all("recorded" in lines[k] for k in ("val/acc", "val/loss")), lines
