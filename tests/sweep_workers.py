"""Helpers for the workers, DDP and PostgreSQL tests: tiny real sweeps on digits, the CLI run
as a user runs it (a subprocess), and reading back what the sweep left behind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
NASFORGE = [sys.executable, "-m", "nasforge.platform.cli"]


def tiny_sweep_file(folder: Path, name: str, trials: int, tracking: str = "disabled", storage: str | None = None,
                    epochs: int = 1, batches: int = 2, devices: int = 1, pruner: dict | None = None,
                    task_options: dict | None = None, budget: dict | None = None,
                    checkpoints: dict | None = None) -> Path:
    """A real sweep (convnet on a digits subset) small enough for 2 shared cores."""
    data = {
        "name": name, "seed": 0,
        "task": {"name": "classification", "data": {"name": "digits", "subset": 256, "val_subset": 128},
                 "options": {"batch_size": 32, **(task_options or {})}},
        "space": [{"name": "convnet", "options": {"stages": 1, "widths": [4, 8], "max_depth": 1}}],
        "strategy": {"name": "random"},
        "budget": {"trials": trials, **(budget or {})},
        "pruner": pruner or {"name": "none"},
        "trainer": {"accelerator": "cpu", "devices": devices, "max_epochs": epochs,
                    "limit_train_batches": batches},
        "tracking": {"mode": tracking, "project": "nasforge-tests"},
    }
    if storage:
        data["storage"] = storage
    if checkpoints is not None:
        data["checkpoints"] = checkpoints
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def env() -> dict[str, str]:
    e = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DISABLE_GIT="true",
             WANDB_CONSOLE="off", PYTHONUNBUFFERED="1")
    e.pop("WANDB_API_KEY", None)
    return e


def sweep_run(file: Path, root: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([*NASFORGE, "sweep", "run", str(file), "--root", str(root), "--no-progress", *args],
                          capture_output=True, text=True, env=env(), timeout=timeout, cwd=root.parent)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def sweep_start(file: Path, root: Path, *args: str, sigint_ignored: bool = False) -> subprocess.Popen:
    """The sweep as a background process. ``sigint_ignored``: started as a non-interactive shell
    starts a background job (``cmd &``) or as some CI runners start their steps, with SIGINT
    ignored, a disposition that exec keeps and every worker inherits."""
    return subprocess.Popen([*NASFORGE, "sweep", "run", str(file), "--root", str(root), "--no-progress", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env(), cwd=root.parent,
                            preexec_fn=_ignore_sigint if sigint_ignored else None)


_STORAGES: dict = {}
_STUDIES: dict = {}


def load(name: str, storage: str):
    """The study, opened once per (name, storage) on one storage per URL and reused: every read
    re-queries the storage, and a test that polls (also before a worker has created the study,
    when ``KeyError`` comes) does not open a new database engine each time, whose connections go
    only when the garbage collector gets to it; on PostgreSQL that ran a throw-away cluster out
    of connections ("too many clients already") during a chaos run on a slow machine."""
    import optuna

    from nasforge.platform.engine.storage import create_storage

    if storage not in _STORAGES:
        _STORAGES[storage] = create_storage(storage)
    key = (name, storage)
    if key not in _STUDIES:  # KeyError until a worker has created the study: nothing is cached then
        _STUDIES[key] = optuna.load_study(study_name=name, storage=_STORAGES[storage])
    return _STUDIES[key]


def journal_url(root: Path, name: str) -> str:
    return "journal://" + str(root / name / "study.journal")


def states(study) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def hold(root: Path, name: str) -> Path:
    """Create ``<run folder>/HOLD``: the sweep's trials wait there, their sample recorded and their
    heartbeat running, until the test removes it (no trial can finish before the test acts)."""
    (root / name).mkdir(parents=True, exist_ok=True)
    path = root / name / "HOLD"
    path.touch()
    return path


def wait_for_running_trial(name: str, storage: str, timeout: float = 180, count: int = 1):
    """The first RUNNING trial whose params are all set (its sample is recorded, so its worker
    is past every suggestion, at the HOLD or training) and which has a heartbeat; with ``count``,
    wait until that many are and return them all."""
    import optuna

    from nasforge.platform.engine.heartbeat import HEARTBEAT_ATTR

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            study = load(name, storage)
        except KeyError:
            time.sleep(0.5)
            continue
        ready = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
                 if HEARTBEAT_ATTR in t.system_attrs and "sample" in t.user_attrs]
        if len(ready) >= count:
            return ready[0] if count == 1 else ready
        time.sleep(0.3)
    raise AssertionError(f"{count} trial(s) of {name} did not reach the running state within {timeout}s")


def release_held(proc: subprocess.Popen, held: Path, name: str, storage: str, count: int,
                 timeout: float = 400, meanwhile=None) -> str:
    """Once ``count`` trials of a sweep started at a `hold` are running (one per worker), call
    ``meanwhile()`` if given (a fault to inject while they hold), remove the HOLD and wait for the
    sweep; its output. A sweep still running after ``timeout`` is killed."""
    try:
        wait_for_running_trial(name, storage, count=count, timeout=300)
        if meanwhile is not None:
            meanwhile()
        held.unlink()
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return out


def owner_pid(trial) -> int:
    from nasforge.platform.engine.heartbeat import HEARTBEAT_ATTR

    return int(trial.system_attrs[HEARTBEAT_ATTR]["owner"].split("|")[2])


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie nobody reaped has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def wait_until_dead(pids, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids):
        if time.monotonic() > deadline:
            raise AssertionError(f"processes {[p for p in pids if alive(p)]} still run after {timeout}s")
        time.sleep(0.2)


def assert_wandb_runs_accounted_for(run_dir: Path, trials, sweep_name: str, summaries: int = 1) -> None:
    """Every trial has its own offline W&B run, every other W&B run folder is the command's
    sweep summary (``<sweep>-summary``, one per command that ran to its end), and nothing else
    (a run's name is recorded in its .wandb file)."""
    runs = {str(d): b"".join(p.read_bytes() for p in d.glob("run-*.wandb"))
            for d in sorted((run_dir / "wandb").glob("offline-run-*"))}
    summary_name = f"{sweep_name}-summary".encode()
    summary_runs = [d for d, data in runs.items() if bytes([len(summary_name)]) + summary_name in data]
    assert len(summary_runs) == summaries
    runs = {d: data for d, data in runs.items() if d not in summary_runs}
    assert len(runs) == len(trials)
    assert {t.user_attrs["wandb_run_dir"] for t in trials} == set(runs)
    for t in trials:
        run_name = f"{sweep_name}-{t.number}".encode()
        assert bytes([len(run_name)]) + run_name in runs[t.user_attrs["wandb_run_dir"]]  # protobuf string


def lock_waiters(path: Path) -> int:
    """How many processes wait for the flock on ``path`` (Linux's /proc/locks marks them ``->``):
    a test holding a lock sees when a process has reached it."""
    st = os.stat(path)
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    with open("/proc/locks") as f:
        return sum(1 for line in f if "->" in line and dev in line.split())
