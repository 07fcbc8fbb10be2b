"""The path decisions of the ResNet supernets of `attention` and `reallocation` (weight-sharing
NAS, see supernet.py; SPOS, Guo et al. ECCV 2020).

Both spaces edit timm's ResNet block by block (resnet.py); their supernets are the same ResNet
with a `Choice` where a sample edits it, so ``space.build(sample)`` and the supernet with that
sample's path active compute the same function with the same weights:

* `AttentionChoice` sits in a block's attention slot (``block.se``): one candidate per
  (module, reduction ratio or mask depth) that the space declares for that unit, keyed by the
  module with its option (``se/8``, ``eca``, ``ra/2``, ``none``).
* `StageDepthChoice` is a stage holding the deepest stage the depth budget allows and running
  its first k blocks (CR-NAS's stage reallocation, Liang et al. ICLR 2020); the stand-alone
  network of depth k is those k blocks, so the others' weights leave its state dict.
* `DilationChoice` sets the dilation of a block's 3x3 convs (CR-NAS's spatial reallocation).
  The weights are the same at every dilation (a dilated 3x3 conv has the weights of an
  undilated one), so the supernet is no larger than the deepest network. This couples the
  dilations of a conv, which a `LayerChoice` of one conv per dilation would not; but that
  would multiply the 3x3 weights of every block by the number of dilations, on a supernet that
  already holds the deepest stage everywhere (5 blocks per stage for the default 8-block
  budget).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from torch import nn

from .space import SampleValidationError
from .supernet import Choice, LayerChoice


class AttentionChoice(LayerChoice):
    """The attention slot of the blocks of unit ``prefix`` (``stage2`` or ``stage2/block1``):
    its value is ``<prefix>/attn`` with its ``/reduction`` or ``/mask_depth`` (`key`)."""

    def __init__(self, prefix: str, candidates: Mapping[str, nn.Module]):
        super().__init__(f"{prefix}/attn", candidates)
        self.prefix = prefix

    @staticmethod
    def key(name: str, reduction: int | None = None, depth: int | None = None) -> str:
        """The candidate of module ``name`` with that reduction or mask depth: ``se/8``, ``eca``."""
        return "/".join(str(v) for v in (name, reduction, depth) if v is not None)

    def value_of(self, sample: Mapping[str, Any]) -> str:
        return self.key(super().value_of(sample), sample.get(f"{self.prefix}/reduction"),
                        sample.get(f"{self.prefix}/mask_depth"))


def parse_depths(value: Any) -> list[int]:
    """``"2-2-3-1"`` or ``[2, 2, 3, 1]`` -> [2, 2, 3, 1]."""
    return [int(d) for d in (value.split("-") if isinstance(value, str) else value)]


class StageDepthChoice(Choice):
    """A stage of ``len(blocks)`` residual blocks (children ``0``, ``1``, ... as in timm's
    ``layer1.0``) that runs its first k; k is entry ``stage`` of the depths label."""

    def __init__(self, label: str, stage: int, blocks: Sequence[nn.Module]):
        super().__init__(label)
        self.stage = stage
        for i, block in enumerate(blocks):
            self.add_module(str(i), block)
        self.active = len(blocks)

    def value_of(self, sample: Mapping[str, Any]) -> int:
        return parse_depths(super().value_of(sample))[self.stage]

    def activate(self, depth: Any) -> None:
        if not 1 <= int(depth) <= len(self._modules):
            raise SampleValidationError(
                f"{self.label}: stage {self.stage + 1} depth {depth} is outside 1..{len(self._modules)}",
                self.label)
        self.active = int(depth)

    def __len__(self) -> int:  # every block held, as a Sequential (resnet.iter_blocks reads them)
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, i: int) -> nn.Module:
        return self._modules[str(i)]

    def forward(self, x):  # (B, C, H, W) -> (B, C', H', W'), through the first `active` blocks
        for i in range(self.active):
            x = self._modules[str(i)](x)
        return x

    def subnet_state(self, prefix: str, state: dict[str, Any]) -> None:
        for key in [k for k in state if k.startswith(prefix)]:
            if int(key[len(prefix):].split(".", 1)[0]) >= self.active:
                del state[key]

    def extra_repr(self) -> str:
        return f"label={self.label!r}, stage={self.stage}, active={self.active}"


class DilationChoice(Choice):
    """The dilation of ``block``'s 3x3 convs, the same weights at each one (module docstring).
    ``optional``: the label may be absent (a block that only deeper stages have)."""

    def __init__(self, label: str, block: nn.Module, dilations: Sequence[int], optional: bool = False):
        super().__init__(label)
        self.dilations = tuple(dilations)
        self.optional = optional
        self._block = [block]  # a plain list: the block is the parent, not a child of this choice

    def value_of(self, sample: Mapping[str, Any]) -> Any:
        if self.optional and self.label not in sample:
            return None
        return super().value_of(sample)

    def activate(self, dilation: Any) -> None:
        from .resnet import set_dilation

        if dilation is None:  # the block is not on this path
            return
        if dilation not in self.dilations:
            raise SampleValidationError(
                f"{self.label}={dilation!r} is not one of {list(self.dilations)}", self.label)
        set_dilation(self._block[0], int(dilation))

    def extra_repr(self) -> str:
        return f"label={self.label!r}, dilations={self.dilations}"
