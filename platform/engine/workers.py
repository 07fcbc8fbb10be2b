"""Several worker processes on one machine sharing one sweep (``nasforge sweep run --workers N``).

`run_workers` starts N processes, ``python -m nasforge.platform.engine.workers --worker wI ...``,
each running the ordinary sweep loop (`run_sweep`) against the same study; the budget lock
and the heartbeats in that loop make them start exactly the requested number of trials and
recover each other's trials when one dies. The parent only watches:

* one progress bar (trials finished / total, running, best so far), polled from the storage;
* above it, the one-line-per-trial log of every worker, as the workers write it to
  ``<run folder>/workers/wI.log`` (their Lightning and W&B output goes to ``wI.out``);
* a worker that dies from a signal (SIGKILL, the OOM killer, a segfault) is started again
  (at most ``2 * N`` times), and its running trial is failed and retried by the survivors;
* workers never outlive the launcher: each stops (as on SIGTERM) when it dies, even by SIGKILL
  (`die_with_parent`); worker ids are claimed per command (`claim_worker_ids`), so two
  commands in one folder never share a name or a log file;
* Ctrl-C (or SIGTERM, or SIGHUP from a closed terminal) stops every worker gracefully: each
  records its running trial as FAIL ("interrupted") and exits; workers that have not stopped
  after 30 s are killed (their trials are recovered as stale on the next run). A second Ctrl-C kills at once.

With ``--devices-per-trial K`` (or ``trainer.devices: K``) and CUDA present, worker I owns
GPUs ``I*K .. I*K+K-1`` of the visible ones, pinned with ``CUDA_VISIBLE_DEVICES``; trials with
K > 1 run as DDP groups on them (platform/engine/ddp.py). On the CPU the cores are split between the
workers (``torch.set_num_threads``). Returns the exit code: 0 when every worker ended well,
1 when one failed (e.g. ``budget.max_failures``), 130 after Ctrl-C.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from typing import Any, Callable

from nasforge.platform.console import Bar, terminal_console
from nasforge.platform.engine.devices import assign_devices
from nasforge.platform.engine.lifeline import die_with_parent, interrupt_on_stop_signals, restore_signals
from nasforge.platform.engine.locks import claim_worker_ids
from nasforge.platform.errors import ConfigError

WORKERS_DIR = "workers"
STOP_GRACE = 30.0


# ----------------------------------------------------------------------------- the parent
class _Worker:
    def __init__(self, wid: str, cmd: list[str], env: dict[str, str], out_path: str):
        self.wid, self.cmd, self.env, self.out_path = wid, cmd, env, out_path
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        with open(self.out_path, "ab") as out:
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                         start_new_session=True)  # Ctrl-C reaches the parent only
        self.starts += 1

    @property
    def code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)  # the worker and its DDP group, if any
            except ProcessLookupError:
                pass


class _LogTail:
    """New complete lines of the workers' log files."""

    def __init__(self, paths: list[str]):
        self.pos = {p: (os.path.getsize(p) if os.path.exists(p) else 0) for p in paths}

    def lines(self) -> list[str]:
        out = []
        for path, pos in self.pos.items():
            try:
                with open(path, "rb") as f:
                    f.seek(pos)
                    data = f.read()
            except OSError:
                continue
            end = data.rfind(b"\n") + 1
            self.pos[path] = pos + end
            out += [ln for ln in data[:end].decode(errors="replace").splitlines() if ln.strip()]
        return out


def run_workers(cfg, root: str | os.PathLike = "runs", workers: int = 2, devices_per_trial: int | None = None,
                show_progress: bool = True, console=None, poll: float = 1.0,
                on_finish: Callable[[Any, Any], None] | None = None) -> int:
    """Run ``cfg`` with ``workers`` processes sharing its study; return the exit code.
    ``on_finish(study, console)`` runs when they are done (the CLI prints the leaderboard)."""
    from nasforge.platform.engine.storage import check_storage, run_dir
    from nasforge.platform.engine.sweep import write_config

    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    console = console or terminal_console()
    rundir = run_dir(cfg.name, root)
    storage_url = check_storage(cfg, root)  # a bad root or storage: one line, nothing written
    write_config(cfg, rundir)  # a different experiment under the same name fails here, before any worker
    wdir = os.path.join(rundir, WORKERS_DIR)
    os.makedirs(wdir, exist_ok=True)
    cfg_path = os.path.join(wdir, "sweep.yaml")  # this invocation's config (overrides included)
    with open(cfg_path, "w") as f:
        f.write(cfg.to_yaml())
    devices = assign_devices(cfg, workers, devices_per_trial)
    threads = max(1, (os.cpu_count() or 1) // workers)
    claims = claim_worker_ids(wdir, workers)  # held until this command ends
    ids = [wid for wid, _ in claims]
    pool = []
    for wid, dev in zip(ids, devices):
        env = dict(os.environ, NASFORGE_WORKER=wid, NASFORGE_CPU_THREADS=str(threads), PYTHONUNBUFFERED="1",
                   NASFORGE_PARENT_PID=str(os.getpid()))
        if dev is not None:
            env["CUDA_VISIBLE_DEVICES"] = dev
        cmd = [sys.executable, "-m", "nasforge.platform.engine.workers", "--config", cfg_path,
               "--root", os.path.abspath(os.fspath(root)), "--worker", wid]
        pool.append(_Worker(wid, cmd, env, os.path.join(wdir, f"{wid}.out")))
    tail = _LogTail([os.path.join(wdir, f"{wid}.log") for wid in ids])
    where = ", ".join(f"{w.wid}: GPU {d}" for w, d in zip(pool, devices) if d is not None)
    console.print(f"[bold]nasforge[/] sweep [cyan]{cfg.name}[/]: {workers} workers ({', '.join(ids)})"
                  f"{' - ' + where if where else ''}, budget {cfg.budget.trials} trials → {rundir}; "
                  f"logs in {os.path.relpath(wdir)}/")

    watch = _Watch(cfg, storage_url, show_progress, console)
    for w in pool:
        w.start()
    interrupted = False
    respawns_left = 2 * workers
    old_handlers = interrupt_on_stop_signals()
    try:
        while True:
            try:
                for line in tail.lines():
                    watch.print(line)
                watch.refresh()
                for w in pool:
                    code = w.code
                    if code is not None and code < 0 and not interrupted and respawns_left > 0 \
                            and not watch.budget_reached():
                        respawns_left -= 1
                        watch.print(f"[{w.wid}] worker died ({_signal_name(code)}); starting it again")
                        w.start()
                if all(w.code is not None for w in pool):
                    break
                time.sleep(poll)
            except KeyboardInterrupt:
                watch.refresh()
                if not interrupted and watch.budget_reached():
                    _wait(pool)  # the sweep is done and the workers are ending: finished, not interrupted
                    break
                if interrupted:  # second Ctrl-C: no more waiting
                    for w in pool:
                        w.signal(signal.SIGKILL)
                    break
                interrupted = True
                watch.print("stopping the workers (Ctrl-C again to kill them now) ...")
                _stop(pool, tail, watch)
                break
    finally:
        restore_signals(old_handlers)
        for _, f in claims:
            f.close()
        for line in tail.lines():
            watch.print(line)
        study = watch.close()
    codes = {w.wid: w.code for w in pool}
    bad = {k: v for k, v in codes.items() if v not in (0, None)}
    if study is not None and not interrupted and on_finish is not None:
        on_finish(study, console)
    if interrupted:
        console.print(f"interrupted; run the same command again to resume (workers' logs: {wdir})")
        return 130
    if bad:
        console.print("[red]workers ended with errors[/]: "
                      + ", ".join(f"{k} ({_signal_name(v)})" for k, v in bad.items()) + f"; see {wdir}/*.out")
        for w in pool:
            if w.wid in bad:
                console.print(f"  {w.wid}: {_last_line(w.out_path)}", markup=False, highlight=False)
        return 1
    return 0


def _stop(pool: list[_Worker], tail: _LogTail, watch: "_Watch") -> None:
    for w in pool:
        w.signal(signal.SIGINT)
    deadline = time.monotonic() + STOP_GRACE
    try:
        while time.monotonic() < deadline and any(w.code is None for w in pool):
            for line in tail.lines():
                watch.print(line)
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    for w in pool:
        if w.code is None:
            watch.print(f"[{w.wid}] did not stop in {STOP_GRACE:.0f}s; killed (its trial is recovered on the next run)")
            w.signal(signal.SIGKILL)
            w.proc.wait()


def _wait(pool: list[_Worker]) -> None:
    """Let workers that are ending on their own end (a signal now kills them)."""
    try:
        for w in pool:
            if w.proc is not None:
                w.proc.wait(timeout=STOP_GRACE)
    except (KeyboardInterrupt, subprocess.TimeoutExpired):
        for w in pool:
            w.signal(signal.SIGKILL)


def _last_line(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            lines = [ln.strip() for ln in f if ln.strip()]
    except OSError:
        return "(no output)"
    return lines[-1][:300] if lines else "(no output)"


def _signal_name(code: int | None) -> str:
    if code is None:
        return "running"
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


class _Watch:
    """The parent's view: a progress bar polled from the storage, and printed log lines."""

    def __init__(self, cfg, storage_url: str, enabled: bool, console):
        self.cfg, self.storage_url = cfg, storage_url
        self.study = None
        self.storage = None  # opened once: a poll before the workers create the study must not open another
        self.finished = 0
        self.total = cfg.budget.trials
        self.bar = Bar(f"sweep {cfg.name}", self.total, enabled, console,
                       status="running {running}  best {best}", running=0, best="-")

    def _load(self):
        if self.study is None:
            import optuna

            from nasforge.platform.engine.storage import create_storage

            if self.storage is None:
                # one storage for every poll: on a database each one is an engine whose connections
                # go only when the garbage collector gets to it (a slow start ran PostgreSQL out of them)
                self.storage = create_storage(self.storage_url)
            try:
                self.study = optuna.load_study(study_name=self.cfg.name, storage=self.storage)
            except KeyError:  # the workers have not created it yet
                return None
        return self.study

    def refresh(self) -> None:
        from nasforge.platform.engine.sweep import FINISHED, best_value_text, state_counts

        try:
            study = self._load()
            if study is None:
                return
            counts = state_counts(study)
            best = best_value_text(study, self.cfg)
        except Exception:  # noqa: BLE001 - a database restart or hiccup: the view waits, the workers go on
            return
        self.finished = sum(counts.get(s, 0) for s in FINISHED)
        self.bar.update(self.finished, running=counts.get("RUNNING", 0), best=best)

    def budget_reached(self) -> bool:
        return self.total is not None and self.finished >= self.total

    def print(self, line: str) -> None:
        self.bar.print(line, markup=False, highlight=False)

    def close(self):
        try:
            self.refresh()
        finally:
            self.bar.close()
        return self.study


# ----------------------------------------------------------------------------- a worker
def main(argv: list[str] | None = None) -> int:
    """One worker: ``python -m nasforge.platform.engine.workers --config F --root R --worker wI``."""
    p = argparse.ArgumentParser(prog="python -m nasforge.platform.engine.workers")
    p.add_argument("--config", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--worker", required=True)
    args = p.parse_args(argv)

    from nasforge.platform.engine.config import load_sweep
    from nasforge.platform.errors import NasforgeError
    from nasforge.platform.engine.storage import run_dir
    from nasforge.platform.engine.sweep import run_sweep

    interrupt_on_stop_signals()  # SLURM/Kubernetes stop a worker with SIGTERM
    if os.environ.get("NASFORGE_PARENT_PID"):
        die_with_parent(signal.SIGTERM, parent=int(os.environ["NASFORGE_PARENT_PID"]))  # never an orphan
    cfg = load_sweep(args.config)
    log_path = os.path.join(run_dir(cfg.name, args.root), WORKERS_DIR, f"{args.worker}.log")
    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S"))
    log = logging.getLogger("nasforge.sweep")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    from nasforge.platform.engine.trial import set_cpu_threads

    set_cpu_threads()  # what the launcher gave this worker
    try:
        run_sweep(cfg, root=args.root, show_progress=False, worker=args.worker)
    except (KeyboardInterrupt, SystemExit) as e:
        if isinstance(e, SystemExit) and e.code in (0, None):
            return 0
        log.info("[%s] stopped (interrupted)", args.worker)
        return 130
    except NasforgeError as e:
        log.info("[%s] stopped: %s", args.worker, e)
        print(f"error: {e}", file=sys.stderr)
        return 2 if isinstance(e, ConfigError) else 1
    log.info("[%s] done", args.worker)
    return 0


if __name__ == "__main__":
    sys.exit(main())
