"""A trial's files as Optuna artifacts: what optuna-dashboard shows beside each trial.

Each trial's architecture diagram, overlays and checkpoint are Optuna artifacts in a
``FileSystemArtifactStore`` at ``<run folder>/artifacts``:

* `attach_trial_artifacts(study, trial, files, artifact_dir)` is what the trial runner calls
  at the end of a trial, while the trial is still RUNNING: the files are attached to the trial.
* A finished trial cannot be changed any more (storages refuse, ``UpdateFinishedTrialError``),
  so files of trials that ended without artifacts are attached to the *study*, named
  ``trial<N>-<file>``; `attach_missing_artifacts(run)` does that for a whole sweep when the
  dashboard starts, and is idempotent.
* `trial_files(trial)` is the one list of a trial's files worth showing.

The store hard-links a file instead of copying it where it can (`LinkingArtifactStore`): the
dashboard serves the trial's own ``best.ckpt``, so a checkpoint takes its disk space once.
`remove_trial_artifacts(study, number, filename, artifact_dir)` deletes a trial's attached file
(the retention policy, `engine/retention.py`, removes a dropped checkpoint's link with it).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, Iterable

from optuna.artifacts import FileSystemArtifactStore

from nasforge.platform.optuna_adapter import storage_of

ARTIFACT_DIR = "artifacts"
# what a trial folder holds that is worth showing: diagrams, overlays, the checkpoint
ATTACH_SUFFIXES = (".png", ".svg", ".ckpt")


class LinkingArtifactStore(FileSystemArtifactStore):
    """A ``FileSystemArtifactStore`` whose ``write`` hard-links an uploaded file (one inode, no
    second copy) and copies only where a link cannot be made (another file system)."""

    def __init__(self, base_path: str):
        super().__init__(base_path)
        self.base_path = base_path

    def write(self, artifact_id: str, content_body) -> None:
        source = getattr(content_body, "name", None)
        if isinstance(source, str) and os.path.isfile(source) and os.path.basename(artifact_id) == artifact_id:
            try:
                os.link(source, os.path.join(self.base_path, artifact_id))
                return
            except OSError:
                pass
        super().write(artifact_id, content_body)


def artifact_store(artifact_dir: str) -> LinkingArtifactStore:
    os.makedirs(artifact_dir, exist_ok=True)
    return LinkingArtifactStore(artifact_dir)


def _study_prefix(number: int) -> str:
    return f"trial{number}-"


def attach_trial_artifacts(study, trial_or_number: Any, files: Iterable[str], artifact_dir: str) -> list[str]:
    """Attach ``files`` of a trial as Optuna artifacts; returns the artifact ids written.

    ``trial_or_number``: a live ``optuna.trial.Trial`` (attached to the trial itself), or a
    trial number / FrozenTrial (attached to the trial while it runs, to the study once it has
    finished). Files already attached (same name) are skipped, and missing files are ignored.
    """
    import optuna
    from optuna.artifacts import get_all_artifact_meta, upload_artifact

    store = artifact_store(artifact_dir)
    if isinstance(trial_or_number, optuna.trial.Trial):
        target, storage, number = trial_or_number, trial_or_number.storage, trial_or_number.number
        finished = False
        study = study or trial_or_number.study
    else:
        frozen = trial_or_number if isinstance(trial_or_number, optuna.trial.FrozenTrial) else \
            study.get_trials(deepcopy=False)[int(trial_or_number)]
        # private: a Study has no public storage handle, and artifacts of a FrozenTrial need one
        target, storage, number = frozen, storage_of(study), frozen.number
        frozen = study.get_trials(deepcopy=False)[number]  # its state now, not when it was read
        finished = frozen.state.is_finished()
    if finished:
        have = {m.filename for m in get_all_artifact_meta(study)}
        prefix = _study_prefix(number)
    else:
        have = {m.filename for m in get_all_artifact_meta(target, storage=storage)}
        prefix = ""
    ids = []
    for path in files:
        if not path or not os.path.isfile(path) or prefix + os.path.basename(path) in have:
            continue
        if finished:
            # the artifact's name is its file's basename: give the copy the trial's prefix
            with tempfile.TemporaryDirectory() as tmp:
                named = os.path.join(tmp, prefix + os.path.basename(path))
                try:
                    os.link(path, named)
                except OSError:
                    shutil.copyfile(path, named)
                ids.append(upload_artifact(artifact_store=store, file_path=named, study_or_trial=study))
        else:
            ids.append(upload_artifact(artifact_store=store, file_path=path, study_or_trial=target, storage=storage))
        have.add(prefix + os.path.basename(path))
    return ids


def trial_files(trial) -> list[str]:
    """The files of a trial worth attaching: diagrams and overlays in its folder, its checkpoint."""
    files = []
    d = trial.user_attrs.get("trial_dir")
    if d and os.path.isdir(d):
        files += [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith(ATTACH_SUFFIXES)]
    for f in [*(trial.user_attrs.get("diagrams") or []), trial.user_attrs.get("checkpoint")]:
        if f and os.path.isfile(f) and os.path.abspath(f) not in map(os.path.abspath, files):
            files.append(f)
    return files


def attach_missing_artifacts(run) -> int:
    """Attach every finished trial's files that are not attached yet; returns how many."""
    from optuna.artifacts import get_all_artifact_meta

    study = run.study
    n = 0
    for t in study.get_trials(deepcopy=False):
        if not t.state.is_finished():
            continue
        if get_all_artifact_meta(t, storage=storage_of(study)):
            continue  # the runner attached this trial's files while it ran
        n += len(attach_trial_artifacts(study, t, trial_files(t), run.artifact_dir))
    return n


def remove_trial_artifacts(study, trial, filename: str, artifact_dir: str) -> int:
    """Delete the stored file of ``trial``'s artifact named ``filename`` (attached to the trial,
    or to the study as ``trial<N>-<filename>``); returns how many were removed. The artifact's
    record stays with the finished trial (storages refuse changes to it); its file is gone."""
    from optuna.artifacts import get_all_artifact_meta
    from optuna.artifacts.exceptions import ArtifactNotFound

    # private: a Study has no public storage handle, and artifacts of a FrozenTrial need one
    metas = [m for m in get_all_artifact_meta(trial, storage=storage_of(study)) if m.filename == filename]
    metas += [m for m in get_all_artifact_meta(study) if m.filename == _study_prefix(trial.number) + filename]
    store, n = artifact_store(artifact_dir), 0
    for m in metas:
        try:
            store.remove(m.artifact_id)
            n += 1
        except ArtifactNotFound:
            pass
    return n
