"""Process lifetimes: a child that dies with its parent, a parent that stops on SIGTERM/SIGHUP.

``die_with_parent(sig)`` asks Linux to send ``sig`` to this process when its parent dies
(``PR_SET_PDEATHSIG``), however the parent dies (SIGKILL, a closed terminal), and starts a
thread that watches the parent's pid as well: for other systems, and for a parent that died
before the request took effect. Workers take SIGTERM (their running trial is recorded as
interrupted); DDP ranks take SIGKILL (rank 0's worker owns the record).
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time


def die_with_parent(sig: int = signal.SIGTERM, parent: int | None = None, poll: float = 1.0) -> None:
    parent = os.getppid() if parent is None else parent
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, int(sig))  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll)
        os.kill(os.getpid(), sig)

    threading.Thread(target=watch, name="nasforge-parent-watch", daemon=True).start()


# Ctrl-C (and the launcher's stop message to its workers); SLURM/Kubernetes stop; a closed terminal or
# dropped ssh. SIGINT is set explicitly: a process started with it ignored (any background job of a
# non-interactive shell or CI runner) gets no KeyboardInterrupt handler from Python, and its workers
# would ignore the launcher's SIGINT until killed.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def interrupt_on_stop_signals() -> dict:
    """From now on SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt (SIGINT even when it was
    inherited ignored); returns the handlers they had (for `restore_signals`)."""
    return {sig: signal.signal(sig, _interrupt) for sig in STOP_SIGNALS}


def restore_signals(old: dict) -> None:
    for sig, handler in old.items():
        signal.signal(sig, handler)


@contextlib.contextmanager
def stop_signals_interrupt():
    """`interrupt_on_stop_signals` while the block runs: a one-process sweep records its running
    trial as interrupted, the workers' parent stops its workers."""
    old = interrupt_on_stop_signals()
    try:
        yield
    finally:
        restore_signals(old)


@contextlib.contextmanager
def stop_signals_deferred():
    """Hold Ctrl-C, SIGTERM and SIGHUP while a trial is claimed; they are delivered right after,
    when the claimed trial is ours to record as interrupted."""
    sigs = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
