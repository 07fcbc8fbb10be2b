"""`adaptive`: how a trained residual network skips blocks per input (BlockDrop, SkipNet,
ConvNet-AIG; see `gated.py`), as a searchable space.

The backbone is fixed - a registered model's genotype (``{"space": [...], "sample": {...}}``,
what ``genotype.json`` of a registry version holds) - and the space searches how it is made
adaptive:

* ``adaptive/kind`` - ``policy`` (BlockDrop: one policy network decides every block from the
  downsampled image, REINFORCE) or ``gates`` (ConvNet-AIG: a gate before each block,
  Gumbel-softmax);
* ``hp/cost_weight`` - the price lambda of the FLOPs an image uses (log scale). It is a training
  hyperparameter, so it carries the ``hp/`` prefix and reaches the task as its ``cost_weight``
  option, like every `hparams` value.

A multi-objective sweep (``val/acc`` up, ``val/mflops`` down) over this space with the
``adaptive`` task gives the accuracy / mean-FLOPs Pareto front. The weights of the backbone are
not part of the space: the task's ``base`` option (a registered model, resolved to its weights
file by the command line) loads them when a trial starts. Options: ``backbone`` (required),
``kinds`` (default [policy, gates]), ``cost_weight`` ([low, high], default [0.1, 4.0]), and the
decider's fixed sizes ``policy_width`` (16), ``downsample`` (2), ``gate_hidden`` (16), ``tau`` (1.0).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from .registry import register_space
from .space import Categorical, Dim, Float, Space

DECIDER_DEFAULTS = {"policy_width": 16, "downsample": 2, "gate_hidden": 16, "tau": 1.0}


@register_space
class AdaptiveSpace(Space):
    name = "adaptive"
    builds_network = True

    def __init__(self, **options: Any):
        known = {"backbone", "kinds", "cost_weight", *DECIDER_DEFAULTS}
        for key in options:
            if key not in known:
                raise ValueError(f"unknown adaptive option {key!r}; "
                                 f"valid: {', '.join(sorted(known))}")
        bb = options.get("backbone")
        if not (isinstance(bb, Mapping) and isinstance(bb.get("space"), list)
                and isinstance(bb.get("sample"), Mapping)):
            raise ValueError("adaptive.backbone must be a genotype: "
                             "{space: [{name, options}, ...], sample: {...}} "
                             "(a registry version's genotype.json)")
        from .gated import KINDS  # torch: after the checks above, so `space list` stays light

        kinds = list(options.get("kinds", KINDS))
        bad = [k for k in kinds if k not in KINDS]
        if bad or not kinds:
            raise ValueError(f"adaptive.kinds: unknown {bad or kinds}; valid: {', '.join(KINDS)}")
        opts = {**DECIDER_DEFAULTS, "cost_weight": [0.1, 4.0], **options, "kinds": kinds}
        lo_hi = opts["cost_weight"]
        if not isinstance(lo_hi, list) or len(lo_hi) != 2 or not 0 < lo_hi[0] <= lo_hi[1]:
            raise ValueError("adaptive.cost_weight is a [low, high] range with 0 < low <= high, "
                             f"got {lo_hi}")
        super().__init__(**opts)

    def dimensions(self) -> list[Dim]:
        lo, hi = self.options["cost_weight"]
        return [Categorical("adaptive/kind", choices=tuple(self.options["kinds"])),
                Float("hp/cost_weight", low=float(lo), high=float(hi), log=True)]

    def build(self, sample: Mapping[str, Any], input_shape: Sequence[int], num_classes: int):
        """The backbone the genotype describes (untrained), wrapped in the sampled decider."""
        from .gated import AdaptiveResNet
        from .registry import create_composite

        bb = self.options["backbone"]
        space = create_composite(bb["space"])
        backbone = space.build(space.validate(bb["sample"]), input_shape, num_classes)
        sizes = {k: self.options[k] for k in DECIDER_DEFAULTS}
        return AdaptiveResNet(backbone, sample["adaptive/kind"], **sizes)
