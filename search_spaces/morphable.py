"""`morphable`: the network family of Auto-Keras's network morphism (Jin, Song & Hu, KDD 2019).

A network is a few stages of conv-BN(-skip)-ReLU layers; stages are separated by a 2x2 max-pool
and the head is a global average pool and a linear layer. Each layer has a width, a kernel size
and at most one skip connection from an earlier layer of its stage:

* ``add:j``    - ``z_l = relu(bn(conv(z_{l-1})) + proj(z_j))``, ``proj`` a 1x1 conv + BN;
* ``concat:j`` - ``z_l = cat(relu(bn(conv(z_{l-1}))), z_j)``, so the next layer sees both.

The genotype is an ordinary sample (``morph/stage1/depth``, ``morph/stage1/layer2/width``,
``.../kernel``, ``.../skip``), so every network the morphism operations make (`morphism.py`)
rebuilds, draws, costs and promotes like any other sample; `morph_arch.Arch` is the same
genotype as a tuple of stages. This module holds the space (no torch); the network is in
`morph_network.py` and the weight morphing in `morphism.py` (which the space's `random_morph`,
`morph_arch` and `morph_state` call: the `morphism.MorphismSpace` protocol).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from .morph_arch import Arch, Layer, out_widths, parse_skip, skip_name
from .registry import register_space
from .space import Categorical, Dim, Int, SampleValidationError, Space

PREFIX = "morph"


@register_space
class MorphableSpace(Space):
    """Stages of up to ``max_depth`` layers, widths ``width_step``..``max_width`` in steps of
    ``width_step``, kernels from ``kernels``. ``seed_width`` is the first stage's width in the
    seed network (`seed_arch`), doubled at each later stage."""

    name = "morphable"
    builds_network = True

    def __init__(self, stages: int = 2, max_depth: int = 5, max_width: int = 128, width_step: int = 8,
                 kernels: Sequence[int] = (1, 3, 5), seed_width: int = 16):
        if stages < 1 or max_depth < 1:
            raise ValueError("morphable: stages and max_depth must be >= 1")
        if any(k % 2 == 0 for k in kernels):
            raise ValueError(f"morphable.kernels must be odd (same padding), got {list(kernels)}")
        if seed_width % width_step or seed_width * 2 ** (stages - 1) > max_width:
            raise ValueError("morphable.seed_width must be a multiple of width_step and, doubled per stage, "
                             "fit max_width")
        super().__init__(stages=stages, max_depth=max_depth, max_width=max_width, width_step=width_step,
                         kernels=list(kernels), seed_width=seed_width)

    def dimensions(self) -> list[Dim]:
        o = self.options
        dims: list[Dim] = []
        for s in range(1, o["stages"] + 1):
            depth = f"{PREFIX}/stage{s}/depth"
            dims.append(Int(depth, low=1, high=o["max_depth"]))
            for i in range(o["max_depth"]):
                when = {depth: list(range(i + 1, o["max_depth"] + 1))}
                base = f"{PREFIX}/stage{s}/layer{i + 1}"
                dims.append(Int(f"{base}/width", low=o["width_step"], high=o["max_width"], step=o["width_step"],
                                when=when))
                dims.append(Categorical(f"{base}/kernel", choices=tuple(o["kernels"]), when=when))
                if i > 0:
                    skips = ("none", *[f"{op}:{j}" for op in ("add", "concat") for j in range(i)])
                    dims.append(Categorical(f"{base}/skip", choices=skips, when=when))
        return dims

    def check(self, sample) -> None:
        widest = max(w for zs in out_widths(self.arch(sample, validated=True)) for w in zs)
        if widest > 4 * self.options["max_width"]:
            raise SampleValidationError(f"a layer's output is {widest} channels wide (concatenated); "
                                        f"at most {4 * self.options['max_width']}")

    # -- genotype <-> arch ----------------------------------------------------------------
    def arch(self, sample: Mapping[str, Any], validated: bool = False) -> Arch:
        s = sample if validated else self.validate(sample)
        stages = []
        for st in range(1, self.options["stages"] + 1):
            layers = []
            for i in range(1, s[f"{PREFIX}/stage{st}/depth"] + 1):
                base = f"{PREFIX}/stage{st}/layer{i}"
                layers.append(Layer(s[f"{base}/width"], s[f"{base}/kernel"], parse_skip(s.get(f"{base}/skip", "none"))))
            stages.append(tuple(layers))
        return tuple(stages)

    def sample_of(self, arch: Arch) -> dict[str, Any]:
        """The (validated) sample of an arch; raises SampleValidationError when it leaves the space."""
        if len(arch) != self.options["stages"]:
            raise SampleValidationError(f"an arch of {len(arch)} stages for a space of {self.options['stages']}")
        out: dict[str, Any] = {}
        for st, stage in enumerate(arch, 1):
            out[f"{PREFIX}/stage{st}/depth"] = len(stage)
            for i, layer in enumerate(stage, 1):
                base = f"{PREFIX}/stage{st}/layer{i}"
                out[f"{base}/width"], out[f"{base}/kernel"] = layer.width, layer.kernel
                if i > 1:
                    out[f"{base}/skip"] = skip_name(layer.skip)
                elif layer.skip is not None:
                    raise SampleValidationError("the first layer of a stage has no earlier layer to skip from")
        return self.validate(out)

    def seed_arch(self) -> Arch:
        """The seed network the morphism search starts from: one 3x3 layer per stage."""
        w = self.options["seed_width"]
        return tuple((Layer(w * 2 ** s, 3),) for s in range(self.options["stages"]))

    # -- the morphism operations (`morphism.MorphismSpace`) ------------------------------------
    def random_morph(self, arch: Arch, rng):
        from .morphism import random_morph

        return random_morph(self, arch, rng)

    def morph_arch(self, arch: Arch, morph) -> Arch:
        from .morphism import apply_arch

        return apply_arch(arch, morph)

    def morph_state(self, arch: Arch, state, morph) -> dict:
        from .morphism import apply_state

        return apply_state(arch, state, morph)

    # -- network and picture --------------------------------------------------------------
    def build(self, sample: Mapping[str, Any], input_shape: Sequence[int], num_classes: int):
        from .morph_network import MorphNet

        return MorphNet(self.arch(sample), int(input_shape[0]), num_classes)

    def draw(self, sample: Mapping[str, Any], path: str) -> list[str]:
        """A layer table: stage, layer, width, kernel, skip and output width."""
        from .diagrams import draw_stage_table

        arch = self.arch(sample)
        zs = out_widths(arch)
        rows = [[f"stage {s + 1}", f"layer {i + 1}", str(layer.width), f"{layer.kernel}x{layer.kernel}",
                 skip_name(layer.skip).replace(":", " from layer ") if layer.skip else "-", str(zs[s][i])]
                for s, stage in enumerate(arch) for i, layer in enumerate(stage)]
        rows.append(["head", "-", "-", "-", "global pool", "linear"])
        return draw_stage_table(["stage", "layer", "width", "kernel", "skip", "output"], rows, path,
                                "morphable: conv-BN-ReLU layers with skips")
