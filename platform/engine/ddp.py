"""Multi-device trials: each runs Lightning DDP in its own process group (DESIGN contract 6).

Lightning's ``ddp`` strategy relaunches the running script for every extra rank, so it cannot
run inside a worker's ask/tell loop (rank 1 would start a different trial). Instead
`run_trial_ddp` (called by `run_trial` when ``trainer.devices > 1``) starts one fresh process,
``python -m nasforge.platform.engine.ddp_child``, in a new session; Lightning spawns the other ranks
from it, and every rank rebuilds the same trial from the storage (platform/engine/ddp_child.py). On
the CPU this is K processes over gloo (``accelerator: cpu, devices: 2``), on GPUs K processes
over NCCL on the devices the worker owns (``CUDA_VISIBLE_DEVICES``).

The worker keeps owning the trial: its heartbeat goes on while the group trains, and when the
group exits it reads the outcome back from the storage (``ddp_outcome``, written by rank 0)
and returns the values, raises ``optuna.TrialPruned`` or `TrialFailed` with the reason (from
rank 0, another rank's ``rank<r>.json``, or the last line of ``trials/<n>/ddp/ddp.log``).
Ctrl-C (or SIGTERM) in the worker interrupts the whole group and waits for it to end.
"""
from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
from typing import Any

from nasforge.platform.optuna_adapter import trial_id

# variables that would make the child join some other process group (torchrun, SLURM, a parent DDP)
_GROUP_ENV = ("MASTER_ADDR", "MASTER_PORT", "RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "GROUP_RANK",
              "LOCAL_WORLD_SIZE", "ROLE_RANK", "ROLE_WORLD_SIZE", "TORCHELASTIC_RUN_ID", "PL_TRAINER_GPUS")


def storage_url_of(ctx) -> str:
    from nasforge.platform.engine.storage import journal_url

    return ctx.cfg.storage or journal_url(ctx.run_dir)


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _GROUP_ENV}
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def run_trial_ddp(ctx, trial, sample: dict[str, Any]) -> list[float]:
    """Run ``trial`` (its ``sample`` already recorded in storage) on ``trainer.devices`` ranks."""
    import optuna

    from nasforge.platform.engine.trial import TrialFailed

    ddp_dir = os.path.join(ctx.trial_dir(trial.number), "ddp")
    os.makedirs(ddp_dir, exist_ok=True)
    for old in glob.glob(os.path.join(ddp_dir, "rank*.json")):
        os.remove(old)
    config = os.path.join(ddp_dir, "sweep.yaml")  # this trial's config, whatever later runs write
    with open(config, "w") as f:
        f.write(ctx.cfg.to_yaml())
    # private: the ranks reopen this RUNNING trial with Trial(study, trial_id); no public id exists
    cmd = [sys.executable, "-m", "nasforge.platform.engine.ddp_child", "--config", config, "--run-dir", ctx.run_dir,
           "--storage", storage_url_of(ctx), "--trial-id", str(trial_id(trial))]
    log_path = os.path.join(ddp_dir, "ddp.log")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=child_env(), start_new_session=True)
        try:
            code = proc.wait()
        except BaseException:  # Ctrl-C / SIGTERM in the worker: stop the whole group, then re-raise
            stop_group(proc)
            raise
    # private id: re-read the attrs rank 0 wrote from another process (the Trial's own are cached)
    outcome = trial.storage.get_trial(trial_id(trial)).user_attrs.get("ddp_outcome")
    if outcome is None:
        raise TrialFailed(f"DDP group ({ctx.cfg.trainer.devices} ranks) exited with {_describe(code)} "
                          f"without a result: {_reason_from_files(ddp_dir, log_path)}")
    if outcome["state"] == "COMPLETE":
        return [float(v) for v in outcome["values"]]
    if outcome["state"] == "PRUNED":
        raise optuna.TrialPruned(outcome.get("reason", "pruned"))
    raise TrialFailed(outcome.get("reason") or _reason_from_files(ddp_dir, log_path))


def stop_group(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """SIGINT the child's process group (all ranks), SIGKILL it if it is still there after ``grace`` s."""
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def _reason_from_files(ddp_dir: str, log_path: str) -> str:
    for path in sorted(glob.glob(os.path.join(ddp_dir, "rank*.json"))):
        try:
            with open(path) as f:
                out = json.load(f).get("outcome") or {}
        except (OSError, ValueError):
            continue
        if out.get("state") == "FAIL":
            return out.get("reason", "failed")
    try:
        with open(log_path, errors="replace") as f:
            lines = [ln.strip() for ln in f if ln.strip()]
    except OSError:
        lines = []
    errors = [ln for ln in lines if "Error" in ln or "error" in ln or "Killed" in ln]
    last = (errors or lines or ["no output"])[-1]
    return f"{last[:300]} (see {log_path})"
