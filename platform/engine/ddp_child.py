"""One rank of a multi-device trial: ``python -m nasforge.platform.engine.ddp_child ...``.

`nasforge.platform.ddp.run_trial_ddp` starts this module once per multi-device trial, in a
fresh process group; Lightning's ``ddp`` strategy then re-runs the same command line for
ranks 1..K-1 (with ``LOCAL_RANK`` set). Every rank rebuilds the same trial from storage: the
config copy in ``trials/<n>/ddp/sweep.yaml``, the params and the ``sample`` user attr that the
worker recorded before launching. The study is loaded with the sweep's pruner given
explicitly (``optuna.load_study`` would silently use the default one) and a side-effect-free
sampler (nothing is suggested here).

Rank 0 holds the real Optuna trial: it reports to the pruner, decides, and the decision is
broadcast (`OptunaPruning`), so all ranks stop at the same epoch; it records the trial's user
attrs and the outcome ``ddp_outcome`` = ``{"state": COMPLETE | PRUNED | FAIL, ...}``, which the
worker reads back. Other ranks get a read-only stand-in. Each rank also writes
``trials/<n>/ddp/rank<r>.json`` (its epochs, the epoch it stopped at, its outcome).

Exit status: 0 for COMPLETE or PRUNED, 1 for FAIL. Each rank dies with its parent
(`lifeline.die_with_parent`), so a worker killed with SIGKILL leaves no orphaned ranks behind.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import Any


from nasforge.platform.engine.callbacks import MetricHistory
from nasforge.platform.engine.lifeline import die_with_parent
from nasforge.platform.optuna_adapter import storage_of, trial_id


class ReadOnlyTrial:
    """What ranks other than 0 see of the trial: number, params and its study (reads, e.g. the
    parent a morphism child inherits from); writes are dropped."""

    def __init__(self, frozen, study):
        self.number = frozen.number
        self.params = dict(frozen.params)
        self.user_attrs = dict(frozen.user_attrs)
        self.study, self._trial_id = study, trial_id(frozen)  # where optuna_adapter.trial_id finds a trial's id

    def set_user_attr(self, key: str, value: Any) -> None:
        pass


class RankRecord(MetricHistory):
    """This rank's view of training: the metrics of each validation (`MetricHistory`) and where
    it stopped."""

    def __init__(self):
        super().__init__()
        self.stopped_epoch: int | None = None
        self.global_step: int | None = None

    def on_fit_end(self, trainer, pl_module):
        self.stopped_epoch = trainer.current_epoch
        self.global_step = trainer.global_step

    def write(self, path: str, rank: int, world_size: int, outcome: dict) -> None:
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            json.dump({"rank": rank, "world_size": world_size, "pid": os.getpid(), "epochs": self.epochs,
                       "stopped_epoch": self.stopped_epoch, "global_step": self.global_step,
                       "outcome": outcome}, f, indent=1)
        os.replace(tmp, path)


def _strategy():
    from datetime import timedelta

    from lightning.pytorch.plugins.environments import LightningEnvironment
    from lightning.pytorch.strategies import DDPStrategy

    # An explicit environment: a trial's process group is its own, even inside SLURM or torchrun.
    minutes = float(os.environ.get("NASFORGE_DDP_TIMEOUT_MIN", "30"))
    return DDPStrategy(cluster_environment=LightningEnvironment(), timeout=timedelta(minutes=minutes))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nasforge.platform.engine.ddp_child")
    p.add_argument("--config", required=True, help="the sweep config (YAML) of the trial")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--storage", required=True, help="storage URL")
    p.add_argument("--trial-id", type=int, required=True)
    args = p.parse_args(argv)
    die_with_parent(signal.SIGKILL)

    rank = int(os.environ.get("LOCAL_RANK", "0"))  # set by Lightning's launcher for ranks >= 1
    import optuna

    from nasforge.platform.engine.config import load_sweep
    from nasforge.platform.engine.pruners import create_pruner
    from nasforge.platform.engine.storage import create_storage
    from nasforge.platform.engine.trial import TrialContext, TrialFailed, set_cpu_threads
    from nasforge.platform.engine.trial_runner import fit_trial

    cfg = load_sweep(args.config)
    set_cpu_threads(share=cfg.trainer.devices, default=os.cpu_count() or 1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ctx = TrialContext.create(cfg, args.run_dir)
    study = optuna.load_study(study_name=cfg.name, storage=create_storage(args.storage),
                              sampler=optuna.samplers.RandomSampler(),
                              pruner=create_pruner(cfg.pruner, cfg.trainer.max_epochs))
    frozen = storage_of(study).get_trial(args.trial_id)  # a RUNNING trial by id: no public getter
    sample = frozen.user_attrs["sample"]
    trial = optuna.trial.Trial(study, args.trial_id) if rank == 0 else ReadOnlyTrial(frozen, study)
    trial_dir = ctx.trial_dir(frozen.number)
    record = RankRecord()
    try:
        values = fit_trial(ctx, trial, sample, trial_dir, rank_zero=rank == 0, strategy=_strategy(),
                           extra_callbacks=[record])
        outcome: dict[str, Any] = {"state": "COMPLETE", "values": values}
    except optuna.TrialPruned as e:
        outcome = {"state": "PRUNED", "reason": str(e)}
    except TrialFailed as e:
        outcome = {"state": "FAIL", "reason": str(e)}
    except Exception as e:  # noqa: BLE001 - any crash of this rank is the trial's failure
        text = str(e).strip().splitlines()[0][:500] if str(e).strip() else ""
        outcome = {"state": "FAIL", "reason": f"rank {rank}: {type(e).__name__}: {text}".rstrip(": ")}
    if rank == 0:
        trial.set_user_attr("ddp_outcome", outcome)
    record.write(os.path.join(trial_dir, "ddp", f"rank{rank}.json"), rank, cfg.trainer.devices, outcome)
    return 1 if outcome["state"] == "FAIL" else 0


if __name__ == "__main__":
    sys.exit(main())
