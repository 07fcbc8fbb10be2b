"""Locks between the processes of a sweep: the budget lock that serialises "count then ask"
(a PostgreSQL advisory lock on a shared database, else a file lock in the run folder), the file
lock itself (``flock``: released by the kernel when the holder dies, however it dies) and the
worker ids a ``--workers`` command holds while it runs."""
from __future__ import annotations

import contextlib
import hashlib
import os
from typing import Any

from nasforge.platform.engine.storage import sqlalchemy_url


@contextlib.contextmanager
def budget_lock(storage_url: str, rundir: str, name: str):
    """Serialise 'count then ask' across workers of one sweep."""
    if storage_url.startswith(("postgresql://", "postgres://", "postgresql+")):
        import sqlalchemy as sa

        key = int(hashlib.sha1(f"nasforge:{name}".encode()).hexdigest()[:15], 16)
        engine = sa.create_engine(sqlalchemy_url(storage_url), poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        engine.dispose()
        return
    os.makedirs(rundir, exist_ok=True)
    with file_lock(os.path.join(rundir, ".budget.lock")):
        yield


@contextlib.contextmanager
def file_lock(path: str):
    """An exclusive lock on ``path`` (made if absent) between processes of one machine (``flock``:
    released by the kernel when the holder dies, however it dies)."""
    import fcntl

    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def claim_worker_ids(wdir: str, n: int) -> list[tuple[str, Any]]:
    """``n`` worker ids free in this run folder, each held by a lock on ``workers/<id>.lock`` for
    as long as the returned files stay open (the command's lifetime): two commands with
    ``--workers`` in one folder never share a worker name or its log files, and a later command
    reuses w0, w1, ... once they are free."""
    import fcntl

    held: list[tuple[str, Any]] = []
    k = 0
    while len(held) < n:
        f = open(os.path.join(wdir, f"w{k}.lock"), "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held.append((f"w{k}", f))
        except BlockingIOError:
            f.close()
        k += 1
    return held
