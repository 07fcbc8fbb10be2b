"""Workers on several machines share a PostgreSQL storage (`--storage postgresql://...`).

These tests use a real server: 127.0.0.1:5432, database ``test``, trust auth (override with
NASFORGE_TEST_POSTGRES=postgresql://USER@HOST:PORT/DB). Where no server answers they skip and
say so. Every test uses its own study name and deletes the study afterwards.
"""
from __future__ import annotations

import os
import uuid

import pytest
from sweep_workers import assert_wandb_runs_accounted_for, load, states, sweep_run, tiny_sweep_file


def _server_url() -> str:
    if os.environ.get("NASFORGE_TEST_POSTGRES"):
        return os.environ["NASFORGE_TEST_POSTGRES"]
    return "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def postgres_url() -> str:
    url = _server_url()
    try:
        import sqlalchemy as sa

        from nasforge.platform.engine.storage import sqlalchemy_url

        engine = sa.create_engine(sqlalchemy_url(url), connect_args={"connect_timeout": 3}, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except ImportError as e:
        pytest.skip(f"PostgreSQL driver not installed ({e}); install psycopg2-binary")
    except Exception as e:  # noqa: BLE001 - any reason the server does not answer
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        pytest.skip(f"no PostgreSQL server answers at {url} ({first}); set NASFORGE_TEST_POSTGRES to use another")
    return url


@pytest.fixture
def study_name(postgres_url):
    import optuna

    from nasforge.platform.engine.storage import create_storage

    name = f"nasforge-test-{uuid.uuid4().hex[:10]}"
    yield name
    try:
        optuna.delete_study(study_name=name, storage=create_storage(postgres_url))
    except KeyError:
        pass


@pytest.mark.slow
def test_four_workers_against_postgresql_reach_exactly_the_total(run_root, postgres_url, study_name):
    file = tiny_sweep_file(run_root.parent, study_name, trials=12, storage=postgres_url, tracking="offline")
    res = sweep_run(file, run_root, "--workers", "4")
    assert res.returncode == 0, res.stdout + res.stderr
    study = load(study_name, postgres_url)
    trials = study.get_trials(deepcopy=False)
    assert states(study) == {"COMPLETE": 12}
    assert sorted(t.number for t in trials) == list(range(12))
    assert len({t.user_attrs["worker"] for t in trials}) >= 2
    assert_wandb_runs_accounted_for(run_root / study_name, trials, study_name)
    # no study file in the run folder: the database is the record of truth
    assert not (run_root / study_name / "study.journal").exists()
    # a second machine would run the same command: with the total reached, nothing more runs
    res = sweep_run(file, run_root)
    assert res.returncode == 0, res.stdout + res.stderr
    assert states(load(study_name, postgres_url)) == {"COMPLETE": 12}


def test_stale_trial_recovery_works_on_postgresql(postgres_url, study_name):
    import time

    import optuna

    from nasforge.platform.engine.heartbeat import HEARTBEAT_ATTR, recover_stale_trials
    from nasforge.platform.engine.storage import create_storage

    study = optuna.create_study(study_name=study_name, storage=create_storage(postgres_url), direction="maximize")
    trial = study.ask()
    trial.suggest_int("depth", 1, 4)
    silent = study.ask()  # a RUNNING trial without a heartbeat falls back to its start time
    study._storage.set_trial_system_attr(trial._trial_id, HEARTBEAT_ATTR,
                                         {"t": time.time() - 300, "owner": "gone-host|ns|1|1", "worker": "m2-w0"})
    recovered = recover_stale_trials(study, grace=60)
    assert [r[0] for r in recovered] == [trial.number]
    assert study.trials[silent.number].state.name == "RUNNING"  # started just now: within grace
    retry = study.ask()
    assert retry.params == study.trials[trial.number].params and retry.user_attrs["retry_of"] == trial.number


def test_the_launchers_view_polls_one_storage_while_the_workers_start(postgres_url):
    """The parent's progress view polls the storage every second, also before any worker has
    created the study (a slow start: workers importing torch on a loaded machine). Every poll
    must reuse one storage; a new engine per poll kept its connections until the garbage collector
    ran and took a PostgreSQL server to "too many clients already" within a minute."""
    import gc

    import sqlalchemy as sa

    from nasforge.platform.engine.config import parse_sweep
    from nasforge.platform.engine.storage import sqlalchemy_url
    from nasforge.platform.engine.workers import _Watch

    tag = f"nasforge-watch-{uuid.uuid4().hex[:8]}"  # names this test's connections on the server
    url = postgres_url + ("&" if "?" in postgres_url else "?") + f"application_name={tag}"
    cfg = parse_sweep({"name": f"absent_{uuid.uuid4().hex[:8]}", "task": {"name": "classification",
                       "data": {"name": "digits"}}, "space": [{"name": "hparams"}], "budget": {"trials": 1}})
    probe = sa.create_engine(sqlalchemy_url(postgres_url), poolclass=sa.pool.NullPool)

    def connections() -> int:
        with probe.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :t"),
                                {"t": tag}).scalar()

    watch = _Watch(cfg, url, enabled=False, console=None)
    gc.disable()  # what the garbage collector would free by chance is not counted on
    try:
        for _ in range(20):
            watch.refresh()
            assert watch.study is None  # no worker has created the study
        assert connections() <= 2
    finally:
        gc.enable()
        if watch.storage is not None:
            watch.storage.engine.dispose()
        probe.dispose()


def test_a_comparison_mixes_a_journal_file_and_postgresql(postgres_url, study_name, nb201_csv, tmp_path):
    import statistics

    from test_compare import _writer

    from nasforge.platform.views.compare import compare, open_sweeps
    from nasforge.platform.views.dashboard import shared_storage

    write = _writer()
    root, data = tmp_path / "runs", {"task.data.path": str(nb201_csv)}
    write(str(root), "local", data, 6, 0, "journal://" + str(tmp_path / "local.journal"))
    write(str(root), study_name, data, 6, 1, postgres_url)
    runs = open_sweeps(["local", study_name], str(root))
    out = compare(runs)["objectives"]["val_acc_12ep"]["groups"]
    for run in runs:
        assert out[run.name]["mean"] == statistics.mean([run.study.best_value])
    store, ids, copied = shared_storage(runs)
    assert copied and [store.get_study_name_from_id(i) for i in ids] == ["local", study_name]
