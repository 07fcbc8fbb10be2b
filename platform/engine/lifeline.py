"""A child process that dies with its parent: a sweep's workers and a DDP trial's ranks.

``die_with_parent(sig)`` asks Linux to send ``sig`` to this process when its parent dies
(``PR_SET_PDEATHSIG``), however the parent dies (SIGKILL, a closed terminal), and starts a
thread that watches the parent's pid as well: for other systems, and for a parent that died
before the request took effect. Workers take SIGTERM (their running trial is recorded as
interrupted); DDP ranks take SIGKILL (rank 0's worker owns the record).
"""
from __future__ import annotations

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
