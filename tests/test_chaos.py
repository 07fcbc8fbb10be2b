"""The chaos suite: real process and database faults, and nothing is lost.

* 4 workers on the journal file and on PostgreSQL while a driver SIGKILLs random workers inside
  their trials (two kills that land for sure, then one at a random moment; the launcher starts
  killed workers again);
* a PostgreSQL restart mid-sweep, on a throw-away cluster the test makes itself (``initdb``,
  ``pg_ctl`` on a free local port) and stops;
* SIGKILL of ``nasforge promote`` while it writes a version.

Afterwards: exactly the requested number of finished trials, distinct numbers, nothing RUNNING or
WAITING, every COMPLETE trial's checkpoint present and loadable, the registry consistent. Each
test is bounded (the sweep's own timeout plus a hard limit) and stops by itself; each prints one
JSON line with its figures (kills made, trials finished, seconds).
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from sweep_workers import (NASFORGE, alive, env, hold, journal_url, load, owner_pid, release_held, states, sweep_start,
                           tiny_sweep_file, wait_until_dead)

pytestmark = pytest.mark.slow
# every COMPLETE trial keeps its checkpoint, so "nothing lost" can check each one (the retention
# policy itself is tests/test_retention.py)
KEEP_ALL = {"keep_top": None}
LIMIT = 900  # seconds: no chaos test runs longer, whatever happens


def _worker_pids_running_trials(name: str, storage: str) -> list[int]:
    import optuna

    from nasforge.platform.engine.heartbeat import HEARTBEAT_ATTR

    try:
        study = load(name, storage)
    except KeyError:
        return []
    pids = [owner_pid(t) for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
            if HEARTBEAT_ATTR in t.system_attrs]
    return [p for p in pids if alive(p)]


def _assert_nothing_lost(name: str, storage: str, total: int) -> list:
    import torch

    study = load(name, storage)
    counts = states(study)
    assert counts.get("COMPLETE", 0) == total, counts
    assert "RUNNING" not in counts and "WAITING" not in counts, counts
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))
    for t in study.trials:
        if t.state.name == "COMPLETE":
            ckpt = t.user_attrs["checkpoint"]
            state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
            assert any(k.startswith("network.") for k in state), ckpt
    return study.trials


def _wait_for_victims(name: str, storage: str, deadline: float) -> list[int]:
    """The live workers that own a RUNNING trial, as soon as there is one (bounded by ``deadline``)."""
    while time.monotonic() < deadline:
        victims = _worker_pids_running_trials(name, storage)
        if victims:
            return victims
        time.sleep(0.2)
    raise AssertionError(f"no worker of {name} was running a trial within the limit")


def _chaos_run(run_root: Path, name: str, storage: str | None, held_kills: int = 2, total: int = 10) -> dict:
    """4 workers, SIGKILLs of random workers while they run trials; returns the figures.

    The first ``held_kills`` kills land for sure, whatever the machine's speed: the sweep starts
    with ``HOLD`` in place, so every worker waits inside a recorded trial, and the driver kills a
    random one of them, waits for it to die and for a trial to be running again (the launcher
    starts a new worker), and kills again. Then ``HOLD`` goes, and one more kill comes at a random
    moment while the trials train (it lands or not, as chaos does; a fast machine may finish first).
    """
    rng = random.Random(12)
    file = tiny_sweep_file(run_root.parent, name, trials=total, storage=storage, epochs=2, batches=4,
                           checkpoints=KEEP_ALL)
    url = storage or journal_url(run_root, name)
    held = hold(run_root, name)
    start = time.monotonic()
    proc = sweep_start(file, run_root, "--workers", "4")
    kills = 0
    try:
        for _ in range(held_kills):
            pid = rng.choice(_wait_for_victims(name, url, start + LIMIT))
            os.kill(pid, signal.SIGKILL)  # the worker is alive (just checked) and waits at HOLD: it cannot end first
            kills += 1
            wait_until_dead([pid])
        held.unlink()
        time.sleep(rng.uniform(0.2, 2.0))  # a random moment: what chaos means, not a wait for a state
        victims = _worker_pids_running_trials(name, url) if proc.poll() is None else []
        if victims:
            try:
                os.kill(rng.choice(victims), signal.SIGKILL)
                kills += 1
            except ProcessLookupError:
                pass
        out, _ = proc.communicate(timeout=max(1, LIMIT - (time.monotonic() - start)))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    seconds = time.monotonic() - start
    assert proc.returncode == 0, out[-3000:]
    trials = _assert_nothing_lost(name, url, total)
    failed = [t for t in trials if t.state.name == "FAIL"]
    # a kill lands inside a trial, or between a worker's ask and its first heartbeat (the random one)
    reasons = [t.user_attrs["fail_reason"] for t in failed]
    assert all("died while running it" in r or "died before its first heartbeat" in r for r in reasons), reasons
    figures = {"what": "chaos_sigkill", "storage": "postgresql" if storage else "journal", "workers": 4,
               "kills": kills, "trials_finished": total, "failed_and_retried": len(failed),
               "lost": 0, "seconds": round(seconds, 1)}
    print(json.dumps(figures))
    assert kills >= held_kills and len(failed) >= held_kills, figures  # each killed trial failed and was run again
    return figures


def test_random_sigkills_of_four_workers_on_the_journal_lose_nothing(run_root):
    _chaos_run(run_root, "chaos_journal", None)


@pytest.fixture
def pg_cluster():
    """A throw-away PostgreSQL cluster on a free local port, stopped and removed afterwards."""
    if not shutil.which("initdb") or not shutil.which("pg_ctl"):
        pytest.skip("initdb/pg_ctl are not installed")
    pytest.importorskip("psycopg2")
    base = Path(tempfile.mkdtemp(prefix="nasforge-pg-"))
    base.chmod(0o777)
    data = base / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start a PostgreSQL cluster")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def pg_ctl(*args: str) -> None:
        subprocess.run([*as_user, "pg_ctl", "-D", str(data), "-w", "-t", "120", *args], check=True,
                       capture_output=True, timeout=180)

    subprocess.run([*as_user, "initdb", "-D", str(data), "-A", "trust", "-U", "postgres"], check=True,
                   capture_output=True, timeout=300)
    opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl("-o", opts, "-l", str(base / "log"), "start")
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        yield url, lambda: pg_ctl("-o", opts, "-l", str(base / "log"), "-m", "fast", "restart")
    finally:
        log = base / "log"
        print(log.read_text()[-3000:] if log.exists() else "no server log")  # shown with the failure
        subprocess.run([*as_user, "pg_ctl", "-D", str(data), "-m", "immediate", "stop"], capture_output=True,
                       timeout=120)
        shutil.rmtree(base, ignore_errors=True)


def test_random_sigkills_of_four_workers_on_postgresql_lose_nothing(run_root, pg_cluster):
    url, _ = pg_cluster
    _chaos_run(run_root, "chaos_pg", url)


def test_a_postgresql_restart_mid_sweep_loses_nothing(run_root, pg_cluster):
    url, restart = pg_cluster
    name, total = "pg_restart", 4
    held = hold(run_root, name)
    start = time.monotonic()
    proc = sweep_start(tiny_sweep_file(run_root.parent, name, trials=total, storage=url, checkpoints=KEEP_ALL), run_root, "--workers", "2")
    # both workers inside a trial, holding connections, when every connection is cut (the server
    # comes back on the same port)
    out = release_held(proc, held, name, url, count=2, timeout=LIMIT, meanwhile=restart)
    assert proc.returncode == 0, out[-3000:]
    trials = _assert_nothing_lost(name, url, total)
    print(json.dumps({"what": "chaos_pg_restart", "restarts": 1, "trials_finished": total,
                      "failed": sum(t.state.name == "FAIL" for t in trials), "lost": 0,
                      "seconds": round(time.monotonic() - start, 1)}))


# The promote command as it runs, except that just before the manifest is sealed it says so and
# waits: the kill then lands with the version's files written and its manifest not (mid-write).
PAUSED_PROMOTE = """
import sys
from nasforge.platform.registry.versions import Registry
real = Registry.seal
def seal(version):
    print("SEALING", version.path, flush=True)
    sys.stdin.readline()  # the test kills this process here
    return real(version)
Registry.seal = staticmethod(seal)
from nasforge.platform.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_during_promote_leaves_the_registry_consistent(quick_runs, tmp_path):
    import sys

    from nasforge.platform.registry import Registry

    reg = tmp_path / "registry"
    args = ["promote", "quickstart", "--best", "--alias", "best", "--root", str(quick_runs), "--registry", str(reg)]
    proc = subprocess.Popen([sys.executable, "-c", PAUSED_PROMOTE, *args], env=env(), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path, text=True)
    lines = []
    for line in proc.stdout:  # event-driven: the child says when it is about to seal
        lines.append(line)
        if line.startswith("SEALING"):
            break
    written = Path(line.split(maxsplit=1)[1].strip()) if lines and lines[-1].startswith("SEALING") else None
    assert written is not None, "".join(lines)
    assert written.name == "v1" and any(written.iterdir()) and not (written / "MANIFEST.json").exists()
    proc.kill()
    proc.wait()
    assert proc.returncode == -signal.SIGKILL  # the kill landed mid-write, not after the command ended
    cmd = [*NASFORGE, *args]
    r = Registry(reg)
    for v in r.versions("quickstart"):  # only sealed versions are listed, and each verifies
        v.verify()
    for alias, target in r.aliases("quickstart").items():
        assert target in {v.version for v in r.versions("quickstart")}, (alias, target)
    # the same command again completes, and the registry holds exactly one good version of the trial
    res = subprocess.run(cmd, env=env(), capture_output=True, text=True, cwd=tmp_path, timeout=LIMIT)
    assert res.returncode == 0, res.stdout + res.stderr
    complete = r.versions("quickstart")
    assert len(complete) == 1 and r.resolve("quickstart:best").version == complete[0].version
    complete[0].verify()
    print(json.dumps({"what": "chaos_promote_sigkill", "killed_while": "writing", "complete_versions": len(complete),
                      "consistent": True}))
