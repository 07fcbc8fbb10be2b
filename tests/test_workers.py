"""Parallel workers and fault tolerance: `nasforge sweep run --workers N` shares one study,
reaches exactly its total, accounts for every W&B run, survives a worker killed with SIGKILL
(the killed trial is failed and retried, linked to the original), stops gracefully on Ctrl-C
and resumes to exactly the requested total.

Heartbeat/stale-trial logic is tested on a real journal storage with real (dead) processes;
the sweeps are real tiny trainings on digits, run through the CLI as a user runs them.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from sweep_workers import (NASFORGE, assert_wandb_runs_accounted_for, env, hold, journal_url, load, lock_waiters,
                           owner_pid, release_held, states, sweep_run, sweep_start, tiny_sweep_file, wait_for_running_trial,
                           wait_until_dead)


# ----------------------------------------------------------------------------- heartbeats (fast)
def _journal_study(tmp_path, name="hb"):
    import optuna

    from nasforge.platform.engine.storage import create_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = create_storage("journal://" + str(tmp_path / "study.journal"))
    return optuna.create_study(study_name=name, storage=storage, direction="maximize")


def _dead_owner_token() -> str:
    from nasforge.platform.engine.heartbeat import owner_token

    p = subprocess.Popen(["sleep", "60"])
    token = owner_token(p.pid)
    p.kill()
    p.wait()
    return token


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_trial_of_a_dead_worker_is_failed_and_retried_with_the_same_params(tmp_path):
    import optuna

    from nasforge.platform.engine.heartbeat import HEARTBEAT_ATTR, recover_stale_trials, retry_links

    study = _journal_study(tmp_path)
    trial = study.ask()
    x = trial.suggest_float("x", 0.0, 1.0)
    width = trial.suggest_categorical("width", [4, 8, 16])
    study._storage.set_trial_system_attr(trial._trial_id, HEARTBEAT_ATTR,
                                         {"t": time.time(), "owner": _dead_owner_token(), "worker": "w7"})
    recovered = recover_stale_trials(study, grace=3600)  # the owner is gone: no need to wait
    assert len(recovered) == 1 and recovered[0][0] == trial.number
    failed = study.trials[trial.number]
    assert failed.state == optuna.trial.TrialState.FAIL
    assert "worker w7" in failed.user_attrs["fail_reason"] and "died" in failed.user_attrs["fail_reason"]
    retry_number = recovered[0][1]
    assert retry_links(study) == {retry_number: trial.number}
    again = study.ask()  # the next ask picks the retry up, params fixed
    assert again.number == retry_number
    assert again.suggest_float("x", 0.0, 1.0) == x and again.suggest_categorical("width", [4, 8, 16]) == width
    frozen = study.trials[retry_number]
    assert optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen) == trial.number
    assert recover_stale_trials(study, grace=3600) == []  # nothing else is stale


def test_grace_period_decides_for_workers_on_other_machines(tmp_path):
    import optuna

    from nasforge.platform.engine.heartbeat import HEARTBEAT_ATTR, recover_stale_trials

    study = _journal_study(tmp_path)
    alive, silent = study.ask(), study.ask()
    other = "some-other-host|pid:[1]|123|456"
    study._storage.set_trial_system_attr(alive._trial_id, HEARTBEAT_ATTR, {"t": time.time(), "owner": other})
    study._storage.set_trial_system_attr(silent._trial_id, HEARTBEAT_ATTR,
                                         {"t": time.time() - 120, "owner": other, "worker": "w2"})
    recovered = recover_stale_trials(study, grace=60)
    assert [r[0] for r in recovered] == [silent.number]
    assert "no heartbeat from worker w2 for 120s" in study.trials[silent.number].user_attrs["fail_reason"]
    assert study.trials[alive.number].state == optuna.trial.TrialState.RUNNING


def test_a_trial_retried_too_often_is_not_retried_again(tmp_path):
    from nasforge.platform.engine.heartbeat import HEARTBEAT_ATTR, recover_stale_trials

    study = _journal_study(tmp_path)
    numbers = []
    for _ in range(3):  # the same sample kills its worker three times
        t = study.ask()
        t.suggest_int("depth", 1, 4)
        numbers.append(t.number)
        study._storage.set_trial_system_attr(t._trial_id, HEARTBEAT_ATTR, {"t": time.time(), "owner": _dead_owner_token()})
        recovered = recover_stale_trials(study, grace=3600, max_retry=2)
        if len(numbers) < 3:
            assert recovered[0][1] is not None
        else:
            assert recovered == [(t.number, None)]
    assert study.trials[numbers[-1]].system_attrs["retry_history"] == numbers[:2]


def test_heartbeat_thread_beats_while_the_trial_runs_and_stops_after(tmp_path):
    from nasforge.platform.engine.heartbeat import HEARTBEAT_ATTR, Heartbeat, owner_gone

    study = _journal_study(tmp_path)
    trial = study.ask()
    with Heartbeat(trial, "w0", interval=0.2):
        first = study.trials[0].system_attrs[HEARTBEAT_ATTR]["t"]
        deadline = time.monotonic() + 120  # a bound for a loaded machine, not a timing assumption
        later = study.trials[0].system_attrs[HEARTBEAT_ATTR]
        while later["t"] == first and time.monotonic() < deadline:  # wait for the next beat
            time.sleep(0.05)
            later = study.trials[0].system_attrs[HEARTBEAT_ATTR]
    assert later["t"] > first and later["worker"] == "w0" and not owner_gone(later["owner"])
    study.tell(trial, 1.0)
    assert Heartbeat(trial, "w0").beat() is False  # a finished trial takes no more beats


def test_devices_are_split_between_workers():
    from nasforge.platform.engine.config import parse_sweep
    from nasforge.platform.errors import ConfigError
    from nasforge.platform.engine.devices import assign_devices

    cfg = parse_sweep({"trainer": {"accelerator": "gpu", "devices": 1}, "tracking": {"mode": "disabled"}})
    assert assign_devices(cfg, 4, 2, gpus=[str(i) for i in range(8)]) == ["0,1", "2,3", "4,5", "6,7"]
    assert assign_devices(cfg, 2, None, gpus=["2", "5"]) == ["2", "5"]
    with pytest.raises(ConfigError, match="needs 6 GPUs; 4 visible"):
        assign_devices(cfg, 3, 2, gpus=["0", "1", "2", "3"])
    assert assign_devices(cfg, 2, 2, gpus=[]) == [None, None]  # no CUDA: nothing to pin
    cpu = parse_sweep({"trainer": {"accelerator": "cpu"}, "tracking": {"mode": "disabled"}})
    assert assign_devices(cpu, 2, None, gpus=["0", "1"]) == [None, None]


# ----------------------------------------------------------------------------- real sweeps (slow)
@pytest.mark.slow
def test_four_workers_share_one_study_and_every_wandb_run_is_accounted_for(run_root):
    import optuna

    name = "w4x12"
    file = tiny_sweep_file(run_root.parent, name, trials=12, tracking="offline")
    held = hold(run_root, name)  # the first trials wait until every worker holds one (none starts late to an empty queue)
    proc = sweep_start(file, run_root, "--workers", "4")
    out = release_held(proc, held, name, journal_url(run_root, name), count=4)
    assert proc.returncode == 0, out[-4000:]
    study = load(name, journal_url(run_root, name))
    trials = study.get_trials(deepcopy=False)
    assert states(study) == {"COMPLETE": 12}
    assert sorted(t.number for t in trials) == list(range(12))
    assert {t.user_attrs["worker"] for t in trials} == {"w0", "w1", "w2", "w3"}
    run_dir = run_root / name
    assert_wandb_runs_accounted_for(run_dir, trials, name)
    # one log line per trial, prefixed by the worker that ran it
    lines = [ln for w in sorted((run_dir / "workers").glob("w*.log")) for ln in w.read_text().splitlines()
             if " trial " in ln]
    assert len(lines) == 12
    for t in trials:
        assert sum(f"[{t.user_attrs['worker']}] trial {t.number} COMPLETE" in ln for ln in lines) == 1
    assert "leaderboard" in out
    assert optuna.trial.TrialState.RUNNING not in {t.state for t in trials}


@pytest.mark.slow
def test_sigkill_mid_trial_fails_and_retries_it_and_the_sweep_reaches_its_total(run_root):
    from nasforge.platform.engine.heartbeat import HEARTBEAT_ATTR

    name = "killed"
    storage = journal_url(run_root, name)
    file = tiny_sweep_file(run_root.parent, name, trials=4, epochs=2)
    held = hold(run_root, name)
    proc = sweep_start(file, run_root, "--workers", "2")
    victim = wait_for_running_trial(name, storage)  # every param set, held before training
    pid = int(victim.system_attrs[HEARTBEAT_ATTR]["owner"].split("|")[2])
    os.kill(pid, signal.SIGKILL)
    wait_until_dead([pid])
    held.unlink()
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    assert "worker died (SIGKILL)" in out

    study = load(name, storage)
    assert states(study) == {"COMPLETE": 4, "FAIL": 1}
    failed = study.trials[victim.number]
    assert failed.state.name == "FAIL" and "died while running it" in failed.user_attrs["fail_reason"]
    retries = [t for t in study.trials if t.user_attrs.get("retry_of") == victim.number]
    assert len(retries) == 1 and retries[0].state.name == "COMPLETE"
    assert retries[0].params == failed.params
    assert retries[0].system_attrs["failed_trial"] == victim.number

    # re-running resumes to exactly the new total; nothing completed runs again
    before = {t.number: t.datetime_complete for t in study.trials if t.state.name == "COMPLETE"}
    res = sweep_run(file, run_root, "--trials", "5")
    assert res.returncode == 0, res.stdout + res.stderr
    study = load(name, storage)
    assert states(study) == {"COMPLETE": 5, "FAIL": 1}
    after = {t.number: t.datetime_complete for t in study.trials if t.state.name == "COMPLETE"}
    assert {n: after[n] for n in before} == before and len(set(after) - set(before)) == 1


@pytest.mark.slow
def test_ctrl_c_stops_workers_gracefully_and_a_rerun_resumes_to_the_total(run_root):
    """Also when the sweep was started with SIGINT ignored (a background job of a script, a CI
    step): Python then installs no KeyboardInterrupt handler, and without one of the sweep's own
    the launcher never stopped and its workers ignored its stop message, their trials left
    RUNNING. (The launcher-killed test below starts its sweep with the default disposition.)"""
    name = "interrupted"
    storage = journal_url(run_root, name)
    file = tiny_sweep_file(run_root.parent, name, trials=3, epochs=2)
    held = hold(run_root, name)  # the trials wait for the signal: none can finish before it
    proc = sweep_start(file, run_root, "--workers", "2", sigint_ignored=True)
    wait_for_running_trial(name, storage)
    proc.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends to the parent
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    study = load(name, storage)
    counts = states(study)
    assert "RUNNING" not in counts, counts  # every running trial's state was recorded
    interrupted = [t for t in study.trials if t.state.name == "FAIL"]
    assert interrupted and all("interrupted" in t.user_attrs["fail_reason"] for t in interrupted)

    held.unlink()
    res = sweep_run(file, run_root, "--workers", "2")
    assert res.returncode == 0, res.stdout + res.stderr
    counts = states(load(name, storage))
    assert counts.get("COMPLETE") == 3 and "RUNNING" not in counts and "WAITING" not in counts


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGKILL", "SIGHUP"])
def test_workers_stop_when_their_launcher_is_killed_or_hung_up(run_root, how):
    """kill -9 of the launcher (no chance to stop its workers itself: they notice through
    PR_SET_PDEATHSIG / the parent watch), or SIGHUP (a closed terminal or dropped ssh: it stops
    them as on Ctrl-C and exits 130). Either way each running trial is recorded as interrupted."""
    name = f"orphans-{how.lower()}"
    storage = journal_url(run_root, name)
    held = hold(run_root, name)
    proc = sweep_start(tiny_sweep_file(run_root.parent, name, trials=2), run_root, "--workers", "2")
    trials = wait_for_running_trial(name, storage, count=2)
    pids = [owner_pid(t) for t in trials]
    proc.send_signal(getattr(signal, how))
    out, _ = proc.communicate(timeout=120)
    if how == "SIGHUP":
        assert proc.returncode == 130 and "run the same command again to resume" in out, out
    wait_until_dead(pids)
    held.unlink()
    study = load(name, storage)
    assert states(study) == {"FAIL": 2}
    assert all("interrupted" in t.user_attrs["fail_reason"] for t in study.trials)


@pytest.mark.slow
def test_sighup_stops_a_one_process_sweep_and_status_shows_no_dead_trial_as_running(run_root):
    name = "hangup"
    storage = journal_url(run_root, name)
    held = hold(run_root, name)
    file = tiny_sweep_file(run_root.parent, name, trials=2)
    proc = sweep_start(file, run_root)
    wait_for_running_trial(name, storage)
    proc.send_signal(signal.SIGHUP)  # the terminal closed
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert states(load(name, storage)) == {"FAIL": 1}

    proc = sweep_start(file, run_root)  # again, and this time the process is killed outright
    victim = wait_for_running_trial(name, storage)
    proc.kill()
    proc.wait()
    held.unlink()
    res = subprocess.run([*NASFORGE, "sweep", "status", name, "--root", str(run_root)], capture_output=True,
                         text=True, env=env(), timeout=120)
    assert res.returncode == 0, res.stderr
    assert "stale 1" in res.stdout and "running" not in res.stdout.split("|")[0], res.stdout
    assert f"trial {victim.number}: stale: worker" in res.stdout and f"{owner_pid(victim)}" in res.stdout
    assert "died while running it" in res.stdout


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="needs Linux's /proc/locks to see a waiting process")
def test_sigterm_right_after_the_last_trial_is_told_ends_the_sweep_as_finished(run_root):
    """The window between telling the last trial and seeing the budget reached: the test holds the
    sweep's budget lock, lets the held trial go, and signals once the sweep waits on that lock (its
    trial told COMPLETE). The sweep is finished, not interrupted: exit 0, nothing FAIL or RUNNING."""
    from nasforge.platform.engine.locks import file_lock

    name = "lastone"
    storage = journal_url(run_root, name)
    held = hold(run_root, name)
    proc = sweep_start(tiny_sweep_file(run_root.parent, name, trials=1), run_root)
    wait_for_running_trial(name, storage)
    lock = run_root / name / ".budget.lock"
    with file_lock(str(lock)):
        held.unlink()  # the trial trains, is told, and the loop comes back for the budget lock
        deadline = time.monotonic() + 180
        while lock_waiters(lock) < 1:
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the sweep never came back to its budget lock"
            time.sleep(0.05)
        assert states(load(name, storage)) == {"COMPLETE": 1}
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert states(load(name, storage)) == {"COMPLETE": 1}
    assert "interrupted" not in out, out


def test_worker_names_are_unique_per_command_in_one_folder(tmp_path):
    from nasforge.platform.engine.locks import claim_worker_ids

    first = claim_worker_ids(str(tmp_path), 2)
    second = claim_worker_ids(str(tmp_path), 2)  # another command in the same run folder, meanwhile
    assert [w for w, _ in first] == ["w0", "w1"] and [w for w, _ in second] == ["w2", "w3"]
    for _, f in first:
        f.close()
    assert [w for w, _ in claim_worker_ids(str(tmp_path), 1)] == ["w0"]  # free again once the first ended


def test_parallel_workers_do_not_redraw_the_same_samples():
    from nasforge.platform.engine.sweep import sampler_seed

    assert sampler_seed(0, 0, None, "tpe") == 0  # a fresh single-worker sweep stays reproducible
    seeds = {sampler_seed(0, 0, w, "random") for w in ("w0", "w1", "w2", "w3")}
    assert len(seeds) == 4
    assert sampler_seed(0, 10, None, "random") != sampler_seed(0, 0, None, "random")  # a resume draws anew
    # QMC keeps its scramble; our strategies derive proposals from (seed, trial number)
    assert sampler_seed(7, 5, "w1", "qmc") == sampler_seed(7, 5, "w2", "controller") == 7


def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_retried_at_once(tmp_path):
    """A worker SIGKILLed right after ``ask`` and before its first heartbeat leaves a RUNNING trial
    with no heartbeat (a chaos run on CI hit that window). Workers ask and write the first beat
    under the budget lock, so the next worker to take the lock fails and retries such a trial at
    once; before, only the grace period (6 minutes on the journal) recovered it."""
    from nasforge.platform.engine.config import load_sweep
    from nasforge.platform.engine.sweep import run_sweep

    file = tiny_sweep_file(tmp_path, "orphan", trials=1)
    root = tmp_path / "runs"
    run_sweep(load_sweep(file), root=str(root), show_progress=False)
    orphan = load("orphan", journal_url(root, "orphan")).ask()  # what the killed worker left
    orphan.set_user_attr("worker", "w9")
    # bounded: without the rule the sweep would wait for the grace period
    study = run_sweep(load_sweep(file, {"budget.trials": 2, "budget.timeout": 120}), root=str(root),
                      show_progress=False)
    left = study.trials[orphan.number]
    assert left.state.name == "FAIL", left.state
    assert "died before its first heartbeat" in left.user_attrs["fail_reason"] and "w9" in left.user_attrs["fail_reason"]
    retry = [t for t in study.trials if t.user_attrs.get("retry_of") == orphan.number]
    assert len(retry) == 1 and retry[0].state.name == "COMPLETE"
    assert states(study) == {"COMPLETE": 2, "FAIL": 1}
