"""`TabularBenchmark`: score an architecture by looking it up in a NAS-Bench-201-format table.

NAS-Bench-201 (Dong & Yang, ICLR 2020) trained every cell of its space; its results, as a CSV
with one row per cell (``arch,val_acc_12ep,test_acc_200ep``), turn a trial into a table look-up:
no training, so search strategies can be compared in seconds. The search sees the ``signal``
column (12-epoch validation accuracy in the benchmark's protocol); the ``report`` column (test
accuracy after 200 epochs) is recorded beside it, never used for search.

Any CSV with a key column and numeric columns works (``path``, ``key_column``, ``signal``,
``report`` are parameters). A table is read once per process and path, then shared. This is a
task, so it imports neither Optuna nor the platform.
"""
from __future__ import annotations

import csv
import os
import threading

_CACHE: dict[str, tuple[list[str], dict[str, tuple[float, ...]]]] = {}
_LOCK = threading.Lock()


def default_table() -> str | None:
    """The shared NAS-Bench-201 CIFAR-10 table ($NASFORGE_DATA or ../shared/data), if present."""
    from nasforge.tasks.task_factory import shared_file

    path = shared_file(os.path.join("nb201", "cifar10.csv"))
    return path if path and os.path.isfile(path) else None


def _read(path: str, key_column: str) -> tuple[list[str], dict[str, tuple[float, ...]]]:
    cache_key = f"{path}\0{key_column}"
    with _LOCK:
        if cache_key not in _CACHE:
            with open(path, newline="") as f:
                reader = csv.reader(f)
                header = next(reader, None)
                if not header:
                    raise ValueError(f"{path}: empty table")
                if key_column not in header:
                    raise ValueError(f"{path}: no key column {key_column!r}; columns: {', '.join(header)}")
                k = header.index(key_column)
                columns = [c for c in header if c != key_column]
                idx = [header.index(c) for c in columns]
                rows: dict[str, tuple[float, ...]] = {}
                for line_no, row in enumerate(reader, start=2):
                    if not row:
                        continue
                    try:
                        rows[row[k]] = tuple(float(row[i]) if row[i] != "" else float("nan") for i in idx)
                    except (ValueError, IndexError):
                        raise ValueError(f"{path}, line {line_no}: not a number in {row}") from None
            _CACHE[cache_key] = (columns, rows)
        return _CACHE[cache_key]


class TabularBenchmark:
    """``evaluate(key) -> {signal: value, report: value}`` for an architecture's key string."""

    def __init__(self, path: str | None = None, key_column: str = "arch",
                 signal: str = "val_acc_12ep", report: str | None = "test_acc_200ep"):
        path = path or default_table()
        if path is None:
            raise ValueError("TabularBenchmark: give the table's path (no shared nb201/cifar10.csv was found)")
        path = os.path.abspath(os.path.expandvars(os.path.expanduser(str(path))))
        if not os.path.isfile(path):
            raise ValueError(f"TabularBenchmark: table {path!r} does not exist")
        self.path, self.key_column = path, key_column
        self.columns, self._rows = _read(path, key_column)
        wanted = [signal] + ([report] if report else [])
        for name in wanted:
            if name not in self.columns:
                raise ValueError(f"{path}: no column {name!r}; valid columns: {', '.join(self.columns)}")
        self.signal, self.report = signal, report
        self._idx = [self.columns.index(c) for c in wanted]
        self._names = wanted

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: str) -> bool:
        return key in self._rows

    def keys(self):
        return self._rows.keys()

    def evaluate(self, key: str) -> dict[str, float]:
        try:
            row = self._rows[key]
        except KeyError:
            raise KeyError(f"architecture {key!r} is not in {self.path} ({len(self._rows)} rows, "
                           f"key column {self.key_column!r})") from None
        return {name: row[i] for name, i in zip(self._names, self._idx)}
