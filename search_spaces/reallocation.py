"""`reallocation`: computation reallocation of a ResNet, as in CR-NAS (Liang et al., ICLR 2020).

CR-NAS keeps a backbone's total computation and searches where it goes:

* **stage reallocation** - how many of a fixed total of residual blocks each of the 4 stages
  gets (ResNet-18 has 8 = 2+2+2+2, ResNet-50 16 = 3+4+6+3). Every composition with at least
  one block per stage is valid; the label ``realloc/depths`` is one categorical over exactly
  those compositions, written ``"2-2-3-1"`` (C(7, 3) = 35 of them for 8 blocks, 455 for 16), so
  TPE, random search and the discrete strategies only ever propose valid ones. A sample given by
  hand (a string or a list) whose depths do not add up to the budget is rejected with the reason
  (``stage depths 1+1+1+1 = 4, but the budget is 8 blocks``).
* **spatial reallocation** - the dilation of each stage's 3x3 convs from {1, 2, 3}
  (``realloc/stage1/dilation`` ..), or of each block with ``per_block: true``
  (``realloc/stage1/block0/dilation``, active only when the stage has that many blocks). Padding
  equals the dilation, so resolutions and FLOPs are unchanged and only the receptive field grows.

The network is timm's ResNet with ``layers`` = the depths (see `resnet.py`). Options:
``total_blocks`` (default 8), ``block`` (basic | bottleneck; ResNet-50 is bottleneck with 16),
``width`` (default 64), ``stem`` (auto | cifar | imagenet), ``dilations`` (default [1, 2, 3]),
``per_block`` (default false), ``drop_path`` (stochastic depth's rate at the last block, default 0:
off; see `resnet.py`). This space does not search widths or attention.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from . import resnet
from .registry import register_space
from .resnet_backbone import StageBackboneMixin
from .space import Categorical, Dim, SampleValidationError, Space

DEPTHS = "realloc/depths"


def compositions(total: int, parts: int) -> list[tuple[int, ...]]:
    """Every way to write ``total`` as an ordered sum of ``parts`` integers >= 1 (stars and
    bars: C(total - 1, parts - 1) of them), in lexicographic order."""
    out = []
    for cuts in itertools.combinations(range(1, total), parts - 1):
        bounds = (0, *cuts, total)
        out.append(tuple(bounds[i + 1] - bounds[i] for i in range(parts)))
    return out


def depths_text(depths: Sequence[int]) -> str:
    return "-".join(str(d) for d in depths)


@dataclass(frozen=True)
class StageDepths(Categorical):
    """A categorical over the compositions of ``budget`` blocks into ``stages`` stages of at
    least one block. Accepts ``"2-2-3-1"`` or ``[2, 2, 3, 1]``; returns the string form, or raises
    SampleValidationError saying which rule the depths break."""

    budget: int = 8
    stages: int = resnet.NUM_STAGES

    def check(self, value: Any) -> str:
        if isinstance(value, str):
            parts = value.split("-")
            try:
                depths = [int(p) for p in parts]
            except ValueError:
                raise SampleValidationError(
                    f"{self.label}={value!r} is not stage depths like '2-2-2-2'", self.label
                ) from None
        elif isinstance(value, (list, tuple)) and all(
            isinstance(d, int) and not isinstance(d, bool) for d in value
        ):
            depths = list(value)
        else:
            raise SampleValidationError(
                f"{self.label}={value!r} is not stage depths like '2-2-2-2' or [2, 2, 2, 2]", self.label
            )
        if len(depths) != self.stages:
            raise SampleValidationError(
                f"{self.label}: expected {self.stages} stage depths, got {len(depths)} ({value!r})", self.label
            )
        for i, d in enumerate(depths):
            if d < 1:
                raise SampleValidationError(
                    f"{self.label}: stage {i + 1} has {d} blocks; every stage needs at least 1", self.label
                )
        if sum(depths) != self.budget:
            raise SampleValidationError(
                f"stage depths {'+'.join(map(str, depths))} = {sum(depths)}, "
                f"but the budget is {self.budget} blocks", self.label
            )
        return super().check(depths_text(depths))


@register_space
class ReallocationSpace(StageBackboneMixin, Space):
    name = "reallocation"
    builds_network = True

    def __init__(self, total_blocks: int = 8, block: str = "basic", width: int = 64, stem: str = "auto",
                 dilations: Sequence[int] = (1, 2, 3), per_block: bool = False, drop_path: float = 0.0):
        if isinstance(total_blocks, bool) or not isinstance(total_blocks, int) or total_blocks < resnet.NUM_STAGES:
            raise ValueError(
                f"reallocation.total_blocks: need an integer >= {resnet.NUM_STAGES} "
                f"(one block per stage), got {total_blocks!r}"
            )
        resnet.check_backbone_options(width, block, stem)
        resnet.check_drop_path(drop_path)
        dilations = list(dilations)
        if not dilations or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dilations):
            raise ValueError(f"reallocation.dilations: give integers >= 1, got {dilations}")
        if not isinstance(per_block, bool):
            raise ValueError(f"reallocation.per_block: expected true or false, got {per_block!r}")
        super().__init__(total_blocks=total_blocks, block=block, width=width, stem=stem,
                         dilations=dilations, per_block=per_block, drop_path=drop_path)

    # -- the declaration --------------------------------------------------------------------
    def compositions(self) -> list[tuple[int, ...]]:
        return compositions(self.options["total_blocks"], resnet.NUM_STAGES)

    def dimensions(self) -> list[Dim]:
        o = self.options
        comps = self.compositions()
        dims: list[Dim] = [StageDepths(
            DEPTHS, choices=tuple(depths_text(c) for c in comps), budget=o["total_blocks"],
            description="blocks per stage; they add up to total_blocks",
        )]
        dil = tuple(o["dilations"])
        max_depth = o["total_blocks"] - (resnet.NUM_STAGES - 1)
        for s in range(resnet.NUM_STAGES):
            if not o["per_block"]:
                dims.append(Categorical(f"realloc/stage{s + 1}/dilation", choices=dil,
                                        description="dilation of the stage's 3x3 convs"))
                continue
            for b in range(max_depth):
                # block b exists when stage s has more than b blocks; block 0 always exists
                when = None if b == 0 else {DEPTHS: [depths_text(c) for c in comps if c[s] > b]}
                dims.append(Categorical(f"realloc/stage{s + 1}/block{b}/dilation", choices=dil, when=when,
                                        description=f"dilation of block {b} of stage {s + 1}"))
        return dims

    def size(self) -> float:
        o = self.options
        units = o["total_blocks"] if o["per_block"] else resnet.NUM_STAGES
        return float(len(self.compositions()) * len(o["dilations"]) ** units)

    def describe(self) -> list[tuple[str, str, str]]:
        rows = []
        for label, kind, rng in super().describe():
            if "/block" in label and "(when" in rng:
                stage, block = label.split("/")[1:3]
                rng = rng.split("  (when")[0] + f"  (when {stage} has at least {int(block[5:]) + 1} blocks)"
            elif label == DEPTHS:
                kind = "categorical"
                rng = f"{len(self.compositions())} compositions of {self.options['total_blocks']} blocks, e.g. " + \
                      ", ".join(depths_text(c) for c in self.compositions()[:3]) + ", ..."
            rows.append((label, kind, rng))
        return rows

    # -- what a sample means ----------------------------------------------------------------
    def depths(self, sample: Mapping[str, Any]) -> list[int]:
        return [int(d) for d in self.validate(sample)[DEPTHS].split("-")]

    def dilation_plan(self, sample: Mapping[str, Any]) -> list[list[int]]:
        """Per stage, per block: the dilation of its 3x3 convs."""
        s = self.validate(sample)
        depths = [int(d) for d in s[DEPTHS].split("-")]
        if self.options["per_block"]:
            return [[s[f"realloc/stage{i + 1}/block{b}/dilation"] for b in range(n)] for i, n in enumerate(depths)]
        return [[s[f"realloc/stage{i + 1}/dilation"]] * n for i, n in enumerate(depths)]

    def key(self, sample: Mapping[str, Any]) -> str:
        """``<depths>@<dilations>``: e.g. ``2-2-3-1@1-2-1-3`` (per stage) or
        ``2-2-3-1@1,1-2,2-1,2,3-1`` (per block)."""
        s = self.validate(sample)
        plan = self.dilation_plan(s)
        if self.options["per_block"]:
            dil = "-".join(",".join(map(str, row)) for row in plan)
        else:
            dil = "-".join(str(row[0]) for row in plan)
        return f"{s[DEPTHS]}@{dil}"

    def build(self, sample: Mapping[str, Any], input_shape: Sequence[int], num_classes: int):
        """A timm ResNet with the sampled stage depths and dilations. (B, C, H, W) -> (B, classes)."""
        o = self.options
        depths = self.depths(sample)
        plan = self.dilation_plan(sample)
        model = resnet.build_resnet(depths, o["width"], input_shape, num_classes, block=o["block"], stem=o["stem"],
                                    drop_path=o["drop_path"])
        for st, b, blk in resnet.iter_blocks(model):
            resnet.set_dilation(blk, plan[st][b])
        return model

    def build_supernet(self, input_shape: Sequence[int], num_classes: int):
        """The same ResNet with the deepest stage the budget allows (``total_blocks - 3``
        blocks) in every stage, each a `StageDepthChoice` running its first k blocks, and a
        `DilationChoice` on every block (one set of weights for all dilations; see
        resnet_supernet.py for why)."""
        from .resnet_supernet import DilationChoice, StageDepthChoice

        o = self.options
        dims = {d.label: d for d in self.dims}
        max_depth = o["total_blocks"] - (resnet.NUM_STAGES - 1)
        # stochastic depth's rates grow over the supernet's deepest layout, not a path's
        model = resnet.build_resnet([max_depth] * resnet.NUM_STAGES, o["width"], input_shape, num_classes,
                                    block=o["block"], stem=o["stem"], drop_path=o["drop_path"])
        for st, b, blk in resnet.iter_blocks(model):
            label = f"realloc/stage{st + 1}/block{b}/dilation" if o["per_block"] else f"realloc/stage{st + 1}/dilation"
            blk.dilation_choice = DilationChoice(label, blk, dims[label].choices, optional=dims[label].when is not None)
        for st, stage in enumerate(resnet.stages(model)):
            setattr(model, f"layer{st + 1}", StageDepthChoice(DEPTHS, st, list(stage)))
        return model

    def draw(self, sample: Mapping[str, Any], path: str) -> list[str]:
        from .diagrams import draw_stage_table

        o = self.options
        depths = self.depths(sample)
        plan = self.dilation_plan(sample)
        channels = resnet.stage_channels(o["width"], o["block"])
        rows = []
        for st, n in enumerate(depths):
            dil = ", ".join(map(str, plan[st])) if o["per_block"] else str(plan[st][0])
            rows.append([f"stage {st + 1}", str(n), str(channels[st]), dil])
        header = ["stage", "blocks", "channels", "dilation per block" if o["per_block"] else "dilation"]
        title = f"reallocation of {o['total_blocks']} {o['block']} blocks: {self.key(sample)}"
        return draw_stage_table(header, rows, path, title)
