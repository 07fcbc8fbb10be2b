"""Run folders and Optuna storages: where a sweep's record of truth lives.

A sweep named ``NAME`` owns the run folder ``<root>/NAME/`` (root defaults to ``runs``):
``sweep.yaml`` (the resolved config), the embedded storage ``study.journal``, ``trials/<n>/``
and ``wandb/``. The storage is the record of truth (DESIGN contract 5):

* no URL: Optuna's JournalStorage over ``<run folder>/study.journal``: an append-only log
  guarded by a file lock, which several worker processes on one machine share safely
  (benchmarks/storage.py measures it against SQLite under 4 processes; see the README);
* ``journal:///abs/path`` or ``journal://rel/path``: a journal file somewhere else;
* ``sqlite:///...``, ``postgresql://...``, ``mysql://...``: Optuna's RDBStorage, the choice
  for workers on several machines (PostgreSQL).

The study is named after the sweep. Opening a sweep by name finds its storage through the
``sweep.yaml`` left in the run folder, so ``nasforge sweep status NAME`` needs no URL.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from nasforge.platform.errors import ConfigError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    import optuna

    from nasforge.platform.engine.config import SweepConfig

DEFAULT_ROOT = "runs"
JOURNAL_FILE = "study.journal"
CONFIG_FILE = "sweep.yaml"
HOLD_FILE = "HOLD"  # while <run folder>/HOLD exists, trials wait before training (trial_runner.wait_while_held)
RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql")


def run_dir(name: str, root: str | os.PathLike = DEFAULT_ROOT) -> str:
    return os.path.abspath(os.path.join(os.fspath(root), name))


def journal_url(rundir: str) -> str:
    """The default storage of a run folder: its journal file."""
    return "journal://" + os.path.join(rundir, JOURNAL_FILE)


def default_storage_url(name: str, root: str | os.PathLike = DEFAULT_ROOT) -> str:
    return journal_url(run_dir(name, root))


def check_storage_url(url: str) -> None:
    scheme = url.split("://", 1)[0].split("+", 1)[0] if "://" in url else ""
    if scheme not in RDB_SCHEMES + ("journal",):
        raise ConfigError(
            f"storage: {url!r} is not a storage URL; valid schemes: journal://PATH, "
            "sqlite:///PATH, postgresql://USER@HOST/DB, mysql://..."
        )


def check_writable_folder(path: str, key: str) -> None:
    """``path`` is (or can be made as) a writable folder, else a ConfigError naming ``key``.
    Nothing is left behind: the nearest existing folder is probed with a temporary file (mode
    bits alone say yes to root on a read-only file system)."""
    import tempfile

    path = os.path.abspath(path)
    probe = path
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise ConfigError(f"{key}: {path!r} cannot be a folder: {probe!r} is a file")
    try:
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=".nasforge-probe-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise ConfigError(f"{key}: {path!r} is not writable ({e.strerror} in {probe!r})") from None


def sqlalchemy_url(url: str) -> str:
    """The SQLAlchemy URL for an RDB storage URL. ``postgres://`` is PostgreSQL's short form;
    a bare ``postgresql://`` gets the driver that is installed (SQLAlchemy 2.1 defaults to
    psycopg 3, many environments have psycopg2)."""
    import importlib.util

    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None \
            and importlib.util.find_spec("psycopg2") is not None:
        url = "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def create_storage(url: str, heartbeat_interval: int | None = None, grace_period: int | None = None,
                   failed_trial_callback=None) -> "optuna.storages.BaseStorage":
    """An Optuna storage for a URL in the notation above."""
    import optuna
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    check_storage_url(url)
    if url.startswith("journal://"):
        path = url[len("journal://"):]
        os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
        # The open(O_EXCL) lock works on every file system (the symlink lock needs symlinks).
        return JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
    url = sqlalchemy_url(url)
    kwargs = {}
    if heartbeat_interval:
        kwargs.update(heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                      failed_trial_callback=failed_trial_callback)
    try:
        return RDBStorage(url, engine_kwargs={"pool_pre_ping": True}, **kwargs)
    except Exception as e:  # sqlalchemy.exc.OperationalError and friends
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"storage: cannot open {url!r}: {first}") from None
    finally:
        optuna.logging.set_verbosity(optuna.logging.WARNING)


def resolve_storage_url(cfg: "SweepConfig", root: str | os.PathLike = DEFAULT_ROOT) -> str:
    url = cfg.storage or default_storage_url(cfg.name, root)
    check_storage_url(url)
    return url


def check_storage(cfg: "SweepConfig", root: str | os.PathLike = DEFAULT_ROOT) -> str:
    """The sweep's storage URL, once it is known to open: a database answers, a journal's or an
    SQLite file's folder can hold it. Writes nothing; a ConfigError (one line) otherwise.
    SQLite makes its file but not the folder, so that folder must exist already."""
    check_writable_folder(run_dir(cfg.name, root), "--root")
    url = resolve_storage_url(cfg, root)
    if url.startswith("journal://"):
        path = url[len("journal://"):]
        if os.path.exists(path):
            if not os.access(path, os.R_OK | os.W_OK):
                raise ConfigError(f"storage: {path!r} is not readable and writable")
        else:
            check_writable_folder(os.path.dirname(os.path.abspath(path)), "storage")
        return url
    if url.startswith("sqlite:///") and not os.path.exists(url[len("sqlite:///"):]):
        folder = os.path.dirname(os.path.abspath(url[len("sqlite:///"):]))
        if not os.path.isdir(folder):
            raise ConfigError(f"storage: cannot open {url!r}: the folder {folder!r} does not exist "
                              "(SQLite makes the file, not its folder)")
        check_writable_folder(folder, "storage")
        return url
    create_storage(url)  # a database: ConfigError naming the URL when it does not answer
    return url


def read_config(name: str, root: str | os.PathLike = DEFAULT_ROOT) -> "SweepConfig":
    """The resolved config of an existing sweep (from its run folder), as it was checked when the
    sweep started; nothing is imported or checked again (`config.read_resolved`)."""
    from nasforge.platform.engine.config import read_resolved

    path = os.path.join(run_dir(name, root), CONFIG_FILE)
    if not os.path.exists(path):
        root_abs = os.path.abspath(root)
        known = sorted(d for d in os.listdir(root_abs) if os.path.exists(os.path.join(root_abs, d, CONFIG_FILE))) \
            if os.path.isdir(root_abs) else []
        raise UsageError(
            f"no sweep named {name!r} under {root_abs}"
            + (f"; sweeps there: {', '.join(known)}" if known else " (no sweeps there yet; use --root)")
        )
    return read_resolved(path)  # no class is imported: results are read without the user's code or data


def load_study(name: str, root: str | os.PathLike = DEFAULT_ROOT, storage: str | None = None,
               **storage_kwargs) -> "optuna.Study":
    """Open an existing sweep's study (read side: status, best, report, promote)."""
    import optuna

    if storage is None:
        storage = read_config(name, root).storage or default_storage_url(name, root)
    st = create_storage(storage, **storage_kwargs)
    try:
        return optuna.load_study(study_name=name, storage=st)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(st)]
        raise UsageError(
            f"no study named {name!r} in {storage}" + (f"; studies there: {', '.join(names)}" if names else "")
        ) from None
