"""The live dashboard: optuna-dashboard over a real sweep's storage, trial files as artifacts.

The server test starts `nasforge dashboard` in a subprocess on ``--port 0`` (the system picks a
free port while the server binds it, so no other process can take it in between), waits for the
address it prints, reads its API (the study list and the study detail with its trials and artifacts),
downloads an artifact, and always kills the server.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from nasforge.platform.cli import main



@pytest.fixture
def runs_copy(quick_runs, tmp_path) -> Path:
    """A private copy of the quickstart's run folder (attaching artifacts writes to the study)."""
    root = tmp_path / "runs"
    shutil.copytree(quick_runs / "quickstart", root / "quickstart", ignore=shutil.ignore_patterns("wandb"))
    return root


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@contextlib.contextmanager
def dashboard(args: list[str], folder: Path):
    """``nasforge dashboard ARGS --port 0`` in a subprocess: yields the URL it printed it serves
    on, and always stops it. Waiting is event-driven: the command prints the line from inside its
    serving loop; its stderr (request logs) goes to ``dashboard.log``, shown when the body fails."""
    log_path = folder / "dashboard.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "nasforge.platform.cli", "dashboard", *args, "--port", "0"],
                                stdout=subprocess.PIPE, stderr=log, text=True, cwd=folder, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        out = []
        for line in proc.stdout:
            out.append(line)
            if line.startswith("serving on "):
                break
        else:
            raise AssertionError(f"the dashboard exited ({proc.wait()}): {''.join(out)}{log_path.read_text()[-2000:]}")
        try:
            yield line.split()[2]
        except Exception as e:  # the server's side of a failed request: alive or not, and its log
            code = proc.poll()
            state = "is running" if code is None else f"exited ({code})"
            rest = "" if code is None else proc.stdout.read()
            raise AssertionError(f"{e!r}; the dashboard {state}, its output: {''.join(out)}{rest}"
                                 f"\n{log_path.read_text()[-4000:]}") from e
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        proc.stdout.close()


_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the server on 127.0.0.1, never a proxy


def _get(url: str, timeout: float = 5.0):
    """``(status, body)`` of a GET sent straight to ``url`` (an ``http_proxy`` set around is not used)."""
    with _direct.open(url, timeout=timeout) as r:
        return r.status, r.read()


def test_attach_trial_artifacts_to_a_running_and_a_finished_trial(runs_copy, tmp_path):
    from optuna.artifacts import download_artifact, get_all_artifact_meta

    from nasforge.platform.engine.artifacts import artifact_store, attach_trial_artifacts, trial_files
    from nasforge.platform.engine.run_folder import open_run

    run = open_run("quickstart", runs_copy)
    study = run.study
    done = study.trials[0]
    files = trial_files(done)
    assert any(f.endswith("best.ckpt") for f in files)
    # a finished trial cannot change: its files go to the study, named after the trial
    ids = attach_trial_artifacts(study, done.number, files, run.artifact_dir)
    assert len(ids) == len(files)
    names = {m.filename: m.artifact_id for m in get_all_artifact_meta(study)}
    assert f"trial{done.number}-best.ckpt" in names
    got = tmp_path / "got.ckpt"
    download_artifact(artifact_store=artifact_store(run.artifact_dir),
                      artifact_id=names[f"trial{done.number}-best.ckpt"], file_path=str(got))
    assert _sha(got) == _sha(done.user_attrs["checkpoint"])
    assert attach_trial_artifacts(study, done.number, files, run.artifact_dir) == []  # idempotent
    # a running trial (what the runner passes at the end of a trial): attached to the trial
    live = study.ask()
    ids = attach_trial_artifacts(study, live, [done.user_attrs["checkpoint"]], run.artifact_dir)
    study.tell(live, 0.5)
    metas = get_all_artifact_meta(study.trials[live.number], storage=study._storage)
    assert [m.filename for m in metas] == ["best.ckpt"] and metas[0].artifact_id == ids[0]


@pytest.mark.slow
def test_dashboard_answers_http_and_lists_the_sweeps_trials(runs_copy, tmp_path):
    from nasforge.platform.engine.run_folder import open_run

    study = open_run("quickstart", runs_copy).study
    with dashboard(["quickstart", "--root", str(runs_copy)], tmp_path) as url:
        assert re.fullmatch(r"http://127\.0\.0\.1:[1-9][0-9]*/dashboard/", url), url  # the port it listens on
        base = url.removesuffix("/dashboard/")
        status, body = _get(f"{base}/api/studies")
        assert status == 200
        summaries = json.loads(body)["study_summaries"]
        [entry] = [s for s in summaries if s["study_name"] == "quickstart"]
        status, body = _get(f"{base}/api/studies/{entry['study_id']}")
        detail = json.loads(body)
        assert status == 200 and detail["name"] == "quickstart"
        assert sorted(t["number"] for t in detail["trials"]) == [t.number for t in study.trials]
        values = {t["number"]: t["values"] for t in detail["trials"]}
        for t in study.trials:
            assert values[t.number] == pytest.approx(t.values)
        # each trial's checkpoint is an artifact: attached to the trial by the runner while it ran
        # (or to the study, as trial<N>-best.ckpt, when the dashboard found it missing), and served
        study_arts = {a["filename"]: a["artifact_id"] for a in detail["artifacts"]}
        urls = {}
        for t in detail["trials"]:
            trial_arts = {a["filename"]: a["artifact_id"] for a in t.get("artifacts", [])}
            if "best.ckpt" in trial_arts:
                urls[t["number"]] = f"{base}/artifacts/{entry['study_id']}/{t['trial_id']}/{trial_arts['best.ckpt']}"
            elif f"trial{t['number']}-best.ckpt" in study_arts:
                art = study_arts[f"trial{t['number']}-best.ckpt"]
                urls[t["number"]] = f"{base}/artifacts/{entry['study_id']}/{art}"
        assert sorted(urls) == [t.number for t in study.trials]
        for t in study.trials:
            status, body = _get(urls[t.number])
            assert status == 200 and hashlib.sha256(body).hexdigest() == _sha(t.user_attrs["checkpoint"])
        status, _ = _get(url)
        assert status == 200


def test_dashboard_refuses_a_busy_port_in_one_line(runs_copy, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        assert main(["dashboard", "quickstart", "--root", str(runs_copy), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"cannot listen on 127.0.0.1:{port}" in err


def test_dashboard_of_an_unknown_sweep_is_one_line(runs_copy, capsys):
    assert main(["dashboard", "nosuch", "--root", str(runs_copy), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no sweep named 'nosuch'" in err
