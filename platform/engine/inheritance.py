"""Weight inheritance across trials: a child trial starts from its parent trial's checkpoint,
transformed by the morphism sequence that made the child (the `morphism` strategy; Auto-Keras,
Jin et al. KDD 2019).

The strategy stores ``nasforge:parent`` (a trial number), ``nasforge:morphs`` (the operations) and
``nasforge:epochs`` on the trial. `inherit(ctx, trial, network)`, called by the trial runner
between building the network and training it, records the user attrs ``parent`` and ``lineage``
(the trial numbers from the first ancestor down to the parent), reads the ``network.`` weights of
the parent's ``best.ckpt``, applies the operations (the space's ``morph_state``) and
loads the result. A parent whose checkpoint is gone (retention, a deleted run folder) is a
defined outcome: the child trains from scratch and its user attr ``note`` says so. Retention
keeps the checkpoint of every parent that an unfinished trial still names
(`retention.needed_parents`). A multi-device trial inherits too: every rank of its process group
loads the same transformed weights and trains the same epochs (rank 0 records the attrs and
measures ``inherited_metrics``, alone, before the group starts).
"""
from __future__ import annotations

import os
from typing import Any

from nasforge.platform.engine.retention import PARENT_ATTR, checkpoint_path
from nasforge.platform.errors import NasforgeError
from nasforge.platform.optuna_adapter import reread_trial

MORPHS_ATTR, EPOCHS_ATTR = "nasforge:morphs", "nasforge:epochs"
INHERITANCE_ATTRS = (PARENT_ATTR, MORPHS_ATTR, EPOCHS_ATTR)  # a retried trial keeps them (heartbeat.py)


def network_state(checkpoint_path: str, attr: str | None = "network") -> dict[str, Any]:
    """The ``<attr>.`` part of a Lightning checkpoint's state_dict, keys without the prefix (the whole
    module's state when ``attr`` is None: a module that builds its own network)."""
    import torch

    try:
        ckpt = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    except Exception:
        # A Lightning checkpoint may pickle objects outside torch's allow-list (callback state);
        # it is this sweep's own file, written by our runner.
        ckpt = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    state = ckpt.get("state_dict", ckpt)
    prefix = f"{attr}." if attr else ""
    net = {k[len(prefix):]: v.detach().clone() for k, v in state.items() if k.startswith(prefix)}
    if not net:
        raise NasforgeError(f"{checkpoint_path}: no '{prefix}' weights in the checkpoint's state_dict")
    return net


def child_epochs(attrs: dict[str, Any]) -> int:
    """The epochs the strategy asked a trial (its ``system_attrs``) to train (0: the sweep's
    ``trainer.max_epochs``)."""
    return int(attrs.get(EPOCHS_ATTR) or 0)


def system_attrs(trial) -> dict[str, Any]:
    """The trial's system attributes as stored (a Trial shows none): one storage read."""
    return reread_trial(trial.study, trial).system_attrs


def inherit(ctx, trial, network, attrs: dict[str, Any] | None = None) -> bool:
    """Load the parent's transformed weights into ``network``; False when the trial has no parent
    or trains from scratch (the reason in the user attr ``note``). ``attrs``: the trial's
    `system_attrs`, when the caller has read them already."""
    from nasforge.search_spaces.morphism import Morph

    attrs = system_attrs(trial) if attrs is None else attrs
    if attrs.get(PARENT_ATTR) is None or network is None:
        return False
    number = int(attrs[PARENT_ATTR])
    parent = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == number)
    trial.set_user_attr("parent", number)
    trial.set_user_attr("lineage", list(parent.user_attrs.get("lineage") or []) + [number])
    path = checkpoint_path(parent)
    if not path or not os.path.isfile(path):
        trial.set_user_attr("note", f"parent trial {number} has no checkpoint any more: trained from scratch")
        return False
    state = network_state(path, ctx.resolved.network_arg)
    arch = ctx.space.arch(parent.user_attrs["sample"])
    for m in (Morph.from_list(item) for item in attrs.get(MORPHS_ATTR) or []):
        state = ctx.space.morph_state(arch, state, m)
        arch = ctx.space.morph_arch(arch, m)
    network.load_state_dict(state)
    trial.set_user_attr("inherited_from", path)
    return True
