"""Worker heartbeats and the recovery of stale trials, for every storage.

Optuna's own heartbeat (``RDBStorage(heartbeat_interval=...)``) exists only for RDB storages;
Optuna 5's JournalStorage has none. nasforge uses one mechanism for all of them, kept in the
study itself:

* while a worker runs a trial, a background thread (`Heartbeat`) writes the system attr
  ``nasforge:heartbeat`` = ``{"t": unix time, "owner": worker token, "worker": id}`` every
  ``interval`` seconds (``NASFORGE_HEARTBEAT_INTERVAL``; default 10 s on an RDB storage, where
  a beat updates one row, and 60 s on the journal, where every beat appends to the file);
* under the sweep's budget lock, every worker's loop calls `recover_stale_trials`: a RUNNING
  trial is stale when its last sign of life (heartbeat, else its start time) is older than the
  grace period (``NASFORGE_HEARTBEAT_GRACE``; default 6 intervals: 60 s on RDB, 360 s on the
  journal, whose workers share one machine and are caught by the next rule), or at once when
  its owner ran on this machine (same host name and PID namespace) and that process is gone
  (a worker killed with SIGKILL, or an OOM kill), or at once when it has no heartbeat at all:
  a worker asks its trial and writes the first beat while it holds the budget lock, so such a
  trial lost its worker in between. A stale trial is marked FAIL with the reason and retried: a
  WAITING trial with the same params, which the next ``study.ask()`` picks up, linked to the
  original by the user attr ``retry_of`` and by the system attrs ``failed_trial`` /
  ``retry_history`` that Optuna's ``RetryHeartbeatStaleTrialCallback`` uses (so its
  ``retried_trial_number`` works on our trials too). A trial retried ``max_retry`` times
  (default 2) is not retried again: a sample that kills its worker every time must not loop.

Since a single worker resuming a sweep runs the same check, a crashed sweep recovers on the
next ``nasforge sweep run``. Clocks: the grace rule compares wall clocks of different
machines (PostgreSQL workers), so their clocks must agree to well within the grace period
(NTP); the same-machine rule needs no clock.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from datetime import timezone
from typing import Any

from nasforge.platform.optuna_adapter import set_system_attr, storage_of, trial_id

HEARTBEAT_ATTR = "nasforge:heartbeat"
DEFAULT_INTERVAL = {"rdb": 10.0, "journal": 60.0}
GRACE_INTERVALS = 6
DEFAULT_MAX_RETRY = 2


def _kind(storage) -> str:
    from optuna.storages import JournalStorage

    return "journal" if isinstance(storage, JournalStorage) else "rdb"


def heartbeat_interval(storage=None) -> float:
    env = os.environ.get("NASFORGE_HEARTBEAT_INTERVAL")
    return float(env) if env else DEFAULT_INTERVAL[_kind(storage) if storage is not None else "rdb"]


def grace_period(storage=None) -> float:
    env = os.environ.get("NASFORGE_HEARTBEAT_GRACE")
    return float(env) if env else GRACE_INTERVALS * heartbeat_interval(storage)


# ----------------------------------------------------------------------------- who is alive
def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), '' where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def owner_token(pid: int | None = None) -> str:
    """``host|pid namespace|pid|start time``: names one process, even after PID reuse."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}|{_pid_namespace()}|{pid}|{_start_time(pid)}"


def owner_gone(token: str) -> bool:
    """True only when ``token`` names a process of this machine that no longer runs."""
    try:
        host, ns, pid, start = token.split("|")
    except ValueError:
        return False
    if not ns or not start or host != socket.gethostname() or ns != _pid_namespace():
        return False  # another machine or container: only the grace period can tell
    return _start_time(int(pid)) != start


# ----------------------------------------------------------------------------- heartbeat
class Heartbeat:
    """Context manager: beat for ``trial`` every ``interval`` s until the block ends."""

    def __init__(self, trial, worker: str | None = None, interval: float | None = None):
        self.trial = trial
        self.interval = heartbeat_interval(trial.storage) if interval is None else interval
        self.payload = {"owner": owner_token(), "worker": worker or f"pid{os.getpid()}"}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self, strict: bool = False) -> bool:
        """Write one heartbeat; False once the trial is finished (by us or a stale check).
        ``strict``: a storage error is raised (the first beat, under the budget lock), not
        left to the next beat."""
        import optuna

        try:
            # private id: Optuna 5 has no public Trial.set_system_attr (removed), and user attrs show in tables
            set_system_attr(self.trial.storage, self.trial, HEARTBEAT_ATTR,
                                                     {**self.payload, "t": time.time()})
            return True
        except optuna.exceptions.UpdateFinishedTrialError:
            return False
        except Exception:  # a storage hiccup must not kill the trial; the next beat retries
            if strict:
                raise
            return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if not self.beat():
                return

    def __enter__(self) -> "Heartbeat":
        self.beat()
        self._thread = threading.Thread(target=self._run, name="nasforge-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


# ----------------------------------------------------------------------------- stale trials
def last_sign_of_life(trial) -> float:
    """Unix time of the trial's last heartbeat, else of its start."""
    hb = trial.system_attrs.get(HEARTBEAT_ATTR) or {}
    t = hb.get("t")
    if t is not None:
        return float(t)
    start = trial.datetime_start
    if start is None:
        return time.time()
    if start.tzinfo is None:  # RDB storages give naive local times, the journal aware UTC ones
        return start.timestamp()
    return start.astimezone(timezone.utc).timestamp()


def stale_reason(trial, grace: float, now: float | None = None, under_lock: bool = False) -> str | None:
    """Why a RUNNING trial is stale, or None while it is alive. ``under_lock``: the caller holds
    the sweep's budget lock, under which every worker asks its trial and writes the trial's first
    heartbeat, so a trial seen there without a heartbeat lost its worker in between (a SIGKILL
    right after ``ask``) and is stale at once instead of after the grace period."""
    hb = trial.system_attrs.get(HEARTBEAT_ATTR) or {}
    if not hb and under_lock:
        return f"stale: its worker died before its first heartbeat (worker {trial.user_attrs.get('worker', '?')})"
    who = hb.get("worker", "?")
    if hb.get("owner") and owner_gone(hb["owner"]):
        pid = hb["owner"].split("|")[2]
        name = f"process {pid}" if who == f"pid{pid}" else f"{who} (pid {pid})"
        return f"stale: worker {name} died while running it"
    silent = (time.time() if now is None else now) - last_sign_of_life(trial)
    if silent > grace:
        return f"stale: no heartbeat from worker {who} for {silent:.0f}s (grace {grace:.0f}s)"
    return None


def recover_stale_trials(study, grace: float | None = None, max_retry: int = DEFAULT_MAX_RETRY,
                         log=None, under_lock: bool = False) -> list[tuple[int, int | None]]:
    """Fail the stale RUNNING trials of ``study`` and enqueue their retries.

    Call it with the sweep's budget lock held (two workers must not retry the same trial); the
    sweep loop says so with ``under_lock=True`` (see `stale_reason`).
    Returns ``[(failed trial number, retry trial number or None), ...]``.
    """
    import optuna
    from optuna.trial import TrialState

    # private: failing another process's RUNNING trial needs the storage; no public API does it
    storage = storage_of(study)
    grace = grace_period(storage) if grace is None else grace
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = stale_reason(t, grace, under_lock=under_lock)
        if reason is None:
            continue
        try:
            # private ids: the storage's calls take them (Optuna's own stale-trial check does the same)
            storage.set_trial_user_attr(trial_id(t), "fail_reason", reason)
            set_system_attr(storage, t, "fail_reason", reason)
            if not storage.set_trial_state_values(trial_id(t), state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # it finished (or another worker failed it) meanwhile
        retry = _enqueue_retry(study, t, max_retry)
        out.append((t.number, retry))
        if log is not None:
            log(f"trial {t.number} FAIL {reason}; " + (f"retried as trial {retry}" if retry is not None
                                                       else f"not retried (max_retry={max_retry})"))
    return out


def _enqueue_retry(study, failed, max_retry: int) -> int | None:
    """Add a WAITING copy of ``failed`` (same params) linked to it; its number, or None."""
    import optuna

    history = list(failed.system_attrs.get("retry_history", [])) + [failed.number]
    if len(history) > max_retry:
        return None
    original = failed.system_attrs.get("failed_trial", failed.number)
    system_attrs: dict[str, Any] = {"failed_trial": original, "retry_history": history}
    from nasforge.platform.engine.inheritance import INHERITANCE_ATTRS

    # a morphism child's retry inherits from the same parent by the same operations
    system_attrs.update({k: failed.system_attrs[k] for k in INHERITANCE_ATTRS if k in failed.system_attrs})
    user_attrs = {"retry_of": failed.number, "original_trial": original}
    before = {t.number for t in study.get_trials(deepcopy=False)}
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.WAITING, params=failed.params, distributions=failed.distributions,
        user_attrs=user_attrs, system_attrs=system_attrs,
    ))
    new = [t.number for t in study.get_trials(deepcopy=False) if t.number not in before]
    return max(new) if new else None


def retry_links(study) -> dict[int, int]:
    """{retry trial number: the trial it retried} over the whole study."""
    return {t.number: t.user_attrs["retry_of"] for t in study.get_trials(deepcopy=False)
            if "retry_of" in t.user_attrs}


def release_memory() -> None:
    """After a failed trial: give back what it held (CUDA caches after an out-of-memory)."""
    import gc
    import sys

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        try:
            torch.cuda.empty_cache()
        except Exception:
            pass
