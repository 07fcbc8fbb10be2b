"""Optuna's private parts, in one place: what nasforge needs that Optuna has no public API for.

* a study's storage (``study._storage``): the heartbeat, stale-trial recovery, artifacts and
  optuna-dashboard need the storage object, and two studies on one storage must be told apart;
* a trial's storage id (``trial._trial_id``): a RUNNING trial re-read by id (another worker may
  have failed it as stale), a DDP rank's trial, system attributes written on a trial.

Every use goes through these functions, so an Optuna release that renames one breaks one file,
and `tests/test_strategies.py` (and everything that runs a sweep) says so. It sits at the bottom
of `platform/` (beside `errors` and `options`): the engine and the strategies both use it.
"""
from __future__ import annotations

from typing import Any


def storage_of(study) -> Any:
    """The study's storage object (Optuna keeps it private)."""
    return study._storage


def trial_id(trial) -> int:
    """The storage's id of a trial (a Trial or a FrozenTrial), unique across the storage's studies."""
    return trial._trial_id


def reread_trial(study, trial):
    """The trial as the storage holds it now (a FrozenTrial): its state may have changed under us."""
    return storage_of(study).get_trial(trial_id(trial))


def set_system_attr(storage, trial, key: str, value: Any) -> None:
    """Write a system attribute on a trial of ``storage`` (Trial.set_system_attr is deprecated)."""
    storage.set_trial_system_attr(trial_id(trial), key, value)
