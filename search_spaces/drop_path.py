"""ScheduledDropPath (Zoph et al., CVPR 2018, section 4): drop whole paths of a cell.

During training each op's output in a cell is zeroed for a sample with probability p and
scaled by 1/(1-p) otherwise; NASNet found that p must grow linearly over training
("scheduled") for drop path to help. A network that supports it carries two attributes:
``drop_path_prob`` (the p its cells use now; 0 at the start) and ``drop_path_max`` (p at the
end of training). ``set_drop_path_prob(model, epoch, epochs)`` sets p = max * epoch / epochs;
a Lightning callback (or any loop) calls it at the start of each epoch. No Lightning here.
The drop itself is timm's ``drop_path(x, p, training)``.
"""
from __future__ import annotations

from torch import nn


def scheduled_drop_path_prob(epoch: int, epochs: int, max_prob: float) -> float:
    """The linear schedule: 0 at epoch 0, ``max_prob`` at ``epochs``."""
    if epochs <= 0:
        return 0.0
    return float(max_prob) * min(max(epoch, 0), epochs) / epochs


def set_drop_path_prob(model: nn.Module, epoch: int, epochs: int) -> float | None:
    """Set ``model.drop_path_prob`` for ``epoch`` of ``epochs``; returns the new value, or None
    when the model (or the network it wraps as ``.network``) has no ``drop_path_max``."""
    target = model if hasattr(model, "drop_path_max") else getattr(model, "network", None)
    if target is None or not hasattr(target, "drop_path_max"):
        return None
    target.drop_path_prob = scheduled_drop_path_prob(epoch, epochs, target.drop_path_max)
    return target.drop_path_prob
