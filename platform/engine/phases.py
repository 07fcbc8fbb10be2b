"""Where a trial's fixed time goes: wall-clock timers around its phases, off by default.

With ``NASFORGE_PROFILE_TRIAL=1`` in the environment (or `enable()` in the process), every
``with phase("name"):`` block of the trial runner adds its seconds to the running trial's
table, and the runner records the table as the trial's user attr ``phases`` before the trial
is told (``benchmarks/overhead.py`` reads it). Off, a phase is one flag check: nothing is timed
or recorded. One trial runs at a time per process, so one table per process is enough; the
phases of a callback running in Lightning's loop (cost, checkpoint) are nested names like
``fit/checkpoint`` and are also inside ``fit``.
"""
from __future__ import annotations

import contextlib
import os
import time
from typing import Iterator

ENV = "NASFORGE_PROFILE_TRIAL"
_enabled = os.environ.get(ENV, "") not in ("", "0")
_table: dict[str, float] = {}


def enable(on: bool = True) -> None:
    global _enabled
    _enabled = on


def enabled() -> bool:
    return _enabled


def start_trial() -> None:
    """Forget the previous trial's phases."""
    _table.clear()


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    if not _enabled:
        yield
        return
    start = time.perf_counter()
    try:
        yield
    finally:
        add(name, time.perf_counter() - start)


def add(name: str, seconds: float) -> None:
    """Add ``seconds`` to phase ``name`` (for a span that no ``with`` block can wrap)."""
    if _enabled:
        _table[name] = _table.get(name, 0.0) + seconds


def record(trial) -> None:
    """Store this trial's phases (seconds, rounded to ms) as its user attr ``phases``."""
    if _enabled and _table:
        trial.set_user_attr("phases", {k: round(v, 3) for k, v in _table.items()})
