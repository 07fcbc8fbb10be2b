"""Link registry versions into the W&B Registry (a collection per model, same aliases).

When the promoted trial's W&B run was online (and W&B is online here), promotion logs the
version's files as a W&B artifact of type ``model`` (``run.log_artifact``) and links it into
the collection ``wandb-registry-<registry>/<model>`` (``run.link_artifact``) with the same
aliases as the local registry; ``<registry>`` is ``model`` (W&B's built-in model registry)
unless ``NASFORGE_WANDB_REGISTRY`` names another. Offline W&B cannot link (``link_artifact``
raises NotImplementedError offline), so an offline promotion says so and links nothing;
``nasforge registry push MODEL:VERSION`` links it later. The link state is kept in the
version's ``wandb.json`` (outside the manifest: it changes after promotion).

The local registry is the record of truth; W&B is where people look at models.
"""
from __future__ import annotations

import datetime as _dt
import os
from typing import Any

from nasforge.platform.errors import NasforgeError
from nasforge.platform.engine.tracking import resolve_mode


def registry_target(model: str) -> str:
    return f"wandb-registry-{os.environ.get('NASFORGE_WANDB_REGISTRY', 'model')}/{model}"


def _offline_hint(v) -> str:
    return f"`nasforge registry push {v.ref}` links it once W&B is online (wandb login, WANDB_MODE=online)"


def trial_run_was_online(meta: dict[str, Any]) -> bool | None:
    """True/False from the trial's W&B run folder name (run-* / offline-run-*); None if none."""
    d = (meta.get("trial") or {}).get("wandb_run_dir")
    if not d:
        return None
    return not os.path.basename(os.path.normpath(d)).startswith("offline-")


def link_on_promotion(v, meta: dict[str, Any], aliases: list[str]) -> str:
    """Link a fresh version when its trial ran online; otherwise return why nothing was linked."""
    tracking = meta.get("tracking") or {}
    mode = resolve_mode(tracking.get("mode", "auto"))
    online_trial = trial_run_was_online(meta)
    if mode == "disabled":
        state = {"linked": False, "reason": "W&B tracking is disabled"}
    elif mode != "online" or online_trial is False:
        why = "the trial's W&B run was offline" if online_trial is False else "W&B is offline here"
        state = {"linked": False, "reason": f"{why}; offline W&B cannot link to the W&B Registry"}
    else:
        state = push_version(v, aliases, meta)
        return f"W&B: linked {state['artifact']} into {state['target']} (aliases: {', '.join(state['aliases']) or 'none'})"
    v.set_wandb_state(state)
    return f"W&B: not linked to the W&B Registry ({state['reason']}); {_offline_hint(v)}"


def push_version(v, aliases: list[str], meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Log ``v``'s files as a W&B model artifact and link it into the W&B Registry collection.
    Raises NasforgeError with a one-line reason when W&B is not online."""
    meta = meta or v.meta()
    tracking = meta.get("tracking") or {}
    mode = resolve_mode(tracking.get("mode", "auto"))
    if mode != "online":
        raise NasforgeError(
            f"W&B is {mode} here: offline W&B cannot link {v.ref} to the W&B Registry; "
            "log in (wandb login or WANDB_API_KEY), set WANDB_MODE=online and push again"
        )
    import wandb

    run = wandb.init(
        project=tracking.get("project") or "nasforge", entity=tracking.get("entity"),
        job_type="promote", group=meta["sweep"]["name"], name=f"promote-{v.model}-{v.version}",
        mode="online", config={"model": v.model, "version": v.version, "trial": meta["trial"]["number"]},
        settings=wandb.Settings(silent=True, console="off", disable_git=True, disable_code=True),
    )
    try:
        state = log_and_link(run, v, aliases, meta)
    finally:
        run.finish()
    v.set_wandb_state(state)
    return state


def model_artifact(v, meta: dict[str, Any]):
    """A ``wandb.Artifact`` (type ``model``) holding every file of the version's manifest."""
    import wandb

    art = wandb.Artifact(
        name=v.model, type="model",
        description=f"{v.ref}: trial {meta['trial']['number']} of sweep {meta['sweep']['name']}",
        metadata={k: meta[k] for k in ("version", "metrics", "input_shape", "num_classes",
                                       "num_params", "preprocessing", "task") if k in meta},
    )
    for name in v.manifest()["files"]:
        art.add_file(os.path.join(v.path, name), name=name)
    return art


def log_and_link(run, v, aliases: list[str], meta: dict[str, Any]) -> dict[str, Any]:
    """Log the version as an artifact of ``run`` (aliases: its version and ``aliases``) and link
    it into the W&B Registry collection; returns the link state. An offline run logs the
    artifact and then cannot link: that raises NasforgeError saying so."""
    art = run.log_artifact(model_artifact(v, meta), aliases=[v.version, *aliases])
    target = registry_target(v.model)
    try:
        linked = run.link_artifact(art, target_path=target, aliases=list(aliases))
    except NotImplementedError:  # W&B's offline mode cannot link
        raise NasforgeError(f"W&B cannot link {v.ref} to {target} while offline; push again when online") from None
    return {"linked": True, "target": target, "artifact": getattr(art, "qualified_name", v.model),
            "linked_artifact": getattr(linked, "qualified_name", None), "aliases": list(aliases),
            "run": run.url, "linked_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
