"""`attention`: which attention block sits in each stage (or each block) of a ResNet.

The space of attention-augmented ResNets: for every stage of a timm ResNet (He et al., CVPR
2016; see `resnet.py`) choose one attention module from timm's attention factory and, for those
that have a bottleneck, its reduction ratio r (hidden width = channels // r). The modules are
the ones in the papers the project started from:

* ``se``   Squeeze-and-Excitation (Hu et al., CVPR 2018)
* ``eca``  Efficient Channel Attention (Wang et al., CVPR 2020; no reduction: a 1-D conv)
* ``cbam`` Convolutional Block Attention Module (Woo et al., ECCV 2018)
* ``gc``   Global Context block of GCNet (Cao et al., ICCVW 2019)
* ``nl``   Non-local block (Wang et al., CVPR 2018)
* ``ra``   Residual Attention (Wang et al., CVPR 2017): (1 + M(x)) * T(x), an hourglass mask
  branch over the residual branch's output; its mask depth is searched (``stageN/mask_depth``)
* ``none`` no attention

(timm's ``ese``, ``ceca``, ``lcbam`` and ``gca`` variants may also be listed in ``choices``.)
Each module sits where timm's ``attn_layer`` puts it: at the end of the residual branch,
before the addition. Labels: ``stage1/attn`` .. ``stage4/attn`` and ``stageN/reduction`` (active
only when that stage's module has a reduction); with ``per_block: true`` one choice per block,
``stage1/block0/attn`` (block indices as in timm's ``layer1.0``). With ``stn: [false, true]``
the first decision, ``stem/stn``, puts a spatial transformer (Jaderberg et al., NeurIPS 2015) in
front of the stem or not.

Options: ``layers`` (blocks per stage, default [2, 2, 2, 2] = ResNet-18), ``width`` (channels
of stage 1, doubled per stage; default 64), ``block`` (basic | bottleneck), ``stem`` (auto |
cifar | imagenet; auto picks the CIFAR stem for inputs of 64 pixels or less), ``choices``,
``reductions`` (default [4, 8, 16]), ``per_block`` (default false), ``mask_depths`` (residual
attention's down-sampling steps, default [1, 2, 3]), ``stn`` (the choices of ``stem/stn``;
default [false]: no such decision), ``drop_path`` (stochastic depth's rate at the last block,
default 0: off; see `resnet.py`). ``ra`` is not among the default choices. This space does not
change depth or width; `reallocation` searches depths.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from . import resnet
from .registry import register_space
from .resnet_backbone import StageBackboneMixin
from .space import Categorical, Dim, Space

# name -> (what it is, whether it has a reduction ratio)
ATTENTIONS: dict[str, tuple[str, bool]] = {
    "none": ("no attention", False),
    "se": ("Squeeze-and-Excitation (Hu et al. 2018)", True),
    "ese": ("effective SE, one FC (Lee & Park 2020)", False),
    "eca": ("Efficient Channel Attention (Wang et al. 2020)", False),
    "ceca": ("ECA with circular padding", False),
    "cbam": ("CBAM channel + spatial attention (Woo et al. 2018)", True),
    "lcbam": ("light CBAM (avg+max summed)", True),
    "gc": ("Global Context block (Cao et al. 2019)", True),
    "gca": ("Global Context block, additive fusion", True),
    "nl": ("Non-local block (Wang et al. 2018)", True),
    "ra": ("Residual Attention, (1 + mask) x trunk (Wang et al. 2017)", False),
}
DEFAULT_CHOICES = ("none", "se", "eca", "cbam", "gc", "nl")
DEFAULT_REDUCTIONS = (4, 8, 16)
DEFAULT_MASK_DEPTHS = (1, 2, 3)


def has_reduction(name: str) -> bool:
    return ATTENTIONS[name][1]


@register_space
class AttentionSpace(StageBackboneMixin, Space):
    name = "attention"
    builds_network = True

    def __init__(self, layers: Sequence[int] = (2, 2, 2, 2), width: int = 64, block: str = "basic",
                 stem: str = "auto", choices: Sequence[str] = DEFAULT_CHOICES,
                 reductions: Sequence[int] = DEFAULT_REDUCTIONS, per_block: bool = False,
                 mask_depths: Sequence[int] = DEFAULT_MASK_DEPTHS, stn: Sequence[bool] = (False,),
                 drop_path: float = 0.0):
        layers = list(layers)
        if len(layers) != resnet.NUM_STAGES or any(
            isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in layers
        ):
            raise ValueError(f"attention.layers: give {resnet.NUM_STAGES} stage depths >= 1, got {layers}")
        resnet.check_backbone_options(width, block, stem)
        resnet.check_drop_path(drop_path)
        choices = list(choices)
        unknown = [c for c in choices if c not in ATTENTIONS]
        if unknown or not choices:
            raise ValueError(
                f"attention.choices: unknown attention {unknown[0] if unknown else None!r}; "
                f"valid: {', '.join(ATTENTIONS)}"
            )
        reductions = list(reductions)
        if not reductions or any(isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in reductions):
            raise ValueError(f"attention.reductions: give integers >= 1, got {reductions}")
        if not isinstance(per_block, bool):
            raise ValueError(f"attention.per_block: expected true or false, got {per_block!r}")
        mask_depths = list(mask_depths)
        if not mask_depths or any(isinstance(d, bool) or not isinstance(d, int) or d < 1
                                  for d in mask_depths):
            raise ValueError(f"attention.mask_depths: give integers >= 1, got {mask_depths}")
        stn = list(stn)
        if not stn or any(not isinstance(v, bool) for v in stn) or len(set(stn)) != len(stn):
            raise ValueError(f"attention.stn: give [false], [true] or [false, true], got {stn}")
        super().__init__(layers=layers, width=width, block=block, stem=stem, choices=choices,
                         reductions=reductions, per_block=per_block, mask_depths=mask_depths,
                         stn=stn, drop_path=drop_path)

    # -- the declaration --------------------------------------------------------------------
    def units(self) -> list[tuple[int, int | None, str]]:
        """(stage index 0..3, block index or None, label prefix) of each place a choice is made."""
        o = self.options
        if o["per_block"]:
            return [(s, b, f"stage{s + 1}/block{b}") for s in range(resnet.NUM_STAGES) for b in range(o["layers"][s])]
        return [(s, None, f"stage{s + 1}") for s in range(resnet.NUM_STAGES)]

    def dimensions(self) -> list[Dim]:
        o = self.options
        reducible = [c for c in o["choices"] if has_reduction(c)]
        dims: list[Dim] = []
        if self.searches_stn():
            dims.append(Categorical(
                "stem/stn", choices=tuple(o["stn"]),
                description="a spatial transformer in front of the stem (Jaderberg et al. 2015)"))
        for _s, _b, prefix in self.units():
            dims.append(Categorical(f"{prefix}/attn", choices=tuple(o["choices"]),
                                    description="attention module at the end of the residual branch"))
            if reducible:
                dims.append(Categorical(f"{prefix}/reduction", choices=tuple(o["reductions"]),
                                        when={f"{prefix}/attn": reducible},
                                        description="hidden width = channels // reduction"))
            if "ra" in o["choices"]:
                dims.append(Categorical(f"{prefix}/mask_depth", choices=tuple(o["mask_depths"]),
                                        when={f"{prefix}/attn": "ra"},
                                        description="down-sampling steps of the ra mask branch"))
        return dims

    def searches_stn(self) -> bool:
        """Whether ``stem/stn`` is a decision (the ``stn`` option is not just [false])."""
        return self.options["stn"] != [False]

    def size(self) -> float:
        o = self.options
        per_unit = sum(len(o["reductions"]) if has_reduction(c)
                       else len(o["mask_depths"]) if c == "ra" else 1 for c in o["choices"])
        return float(len(o["stn"]) * per_unit ** len(self.units()))

    # -- what a sample means ----------------------------------------------------------------
    def plan(self, sample: Mapping[str, Any]) -> list[list[tuple[str, int | None]]]:
        """Per stage, per block: (attention name, reduction or None)."""
        s = self.validate(sample)
        o = self.options
        out: list[list[tuple[str, int | None]]] = []
        for st in range(resnet.NUM_STAGES):
            row = []
            for b in range(o["layers"][st]):
                prefix = f"stage{st + 1}/block{b}" if o["per_block"] else f"stage{st + 1}"
                row.append((s[f"{prefix}/attn"], s.get(f"{prefix}/reduction")))
            out.append(row)
        return out

    def block_options(self, sample: Mapping[str, Any]) -> list[list[dict[str, Any]]]:
        """Per stage, per block: the module's own options besides the reduction
        (``{"depth": d}`` for residual attention, else ``{}``)."""
        s = self.validate(sample)
        o = self.options
        return [[{"depth": s[f"{p}/mask_depth"]} if f"{p}/mask_depth" in s else {}
                 for p in ((f"stage{st + 1}/block{b}" if o["per_block"] else f"stage{st + 1}")
                           for b in range(o["layers"][st]))]
                for st in range(resnet.NUM_STAGES)]

    def stn(self, sample: Mapping[str, Any]) -> bool:
        """Whether the sampled network has a spatial transformer stem."""
        return bool(self.validate(sample).get("stem/stn", self.options["stn"] == [True]))

    @staticmethod
    def _token(name: str, reduction: int | None, options: Mapping[str, Any] | None = None) -> str:
        if options and "depth" in options:
            return f"{name}_d{options['depth']}"
        return name if reduction is None else f"{name}{reduction}"

    def key(self, sample: Mapping[str, Any]) -> str:
        """Stages separated by ``|``; with per-block choices, blocks by ``,``; residual attention
        with its mask depth (``ra_d2``); ``stn/`` first for a spatial transformer stem.
        E.g. ``se16|eca|none|cbam8``, ``stn/ra_d2|se8|none|none``."""
        s = self.validate(sample)
        opts = self.block_options(s)
        rows = [[self._token(n, r, opts[st][b]) for b, (n, r) in enumerate(row)]
                for st, row in enumerate(self.plan(s))]
        text = "|".join(",".join(row) if self.options["per_block"] else row[0] for row in rows)
        return ("stn/" if self.stn(s) else "") + text

    def build(self, sample: Mapping[str, Any], input_shape: Sequence[int], num_classes: int):
        """A timm ResNet whose blocks carry the sampled attention modules.
        (B, C, H, W) -> (B, num_classes)."""
        o = self.options
        plan, opts = self.plan(sample), self.block_options(sample)
        model = resnet.build_resnet(o["layers"], o["width"], input_shape, num_classes,
                                    block=o["block"], stem=o["stem"], drop_path=o["drop_path"])
        for st, b, blk in resnet.iter_blocks(model):
            name, reduction = plan[st][b]
            resnet.set_attention(blk, name, reduction, **opts[st][b])
        model = resnet.finish(model)
        if self.stn(sample):
            resnet.set_stn_stem(model)  # after finish: the transformer starts at the identity
        return model

    def build_supernet(self, input_shape: Sequence[int], num_classes: int):
        """The same ResNet with every declared attention module in each block's slot, one
        `AttentionChoice` per unit (see resnet_supernet.py); with ``stem/stn`` searched, the stem
        conv is shared by both choices of a `LayerChoice` (with and without the transformer)."""
        from collections import OrderedDict

        from torch import nn

        from .create_attn import create_attn
        from .resnet_supernet import AttentionChoice
        from .supernet import LayerChoice

        o = self.options
        dims = {d.label: d for d in self.dims}
        model = resnet.build_resnet(o["layers"], o["width"], input_shape, num_classes,
                                    block=o["block"], stem=o["stem"], drop_path=o["drop_path"])
        for st, b, blk in resnet.iter_blocks(model):
            prefix = f"stage{st + 1}/block{b}" if o["per_block"] else f"stage{st + 1}"
            candidates: dict[str, nn.Module] = {}
            for name in dims[f"{prefix}/attn"].choices:
                variants: list[tuple[int | None, dict[str, Any]]] = [(None, {})]
                if has_reduction(name):
                    variants = [(r, {}) for r in dims[f"{prefix}/reduction"].choices]
                elif name == "ra":
                    variants = [(None, {"depth": d}) for d in dims[f"{prefix}/mask_depth"].choices]
                for reduction, options in variants:
                    resnet.set_attention(blk, name, reduction, **options)
                    key = AttentionChoice.key(name, reduction, options.get("depth"))
                    candidates[key] = blk.se or nn.Identity()
            blk.se = AttentionChoice(prefix, candidates)
        model = resnet.finish(model)
        if self.searches_stn():
            conv = model.conv1
            first = conv[0] if isinstance(conv, nn.Sequential) else conv
            with_stn = nn.Sequential(OrderedDict(stn=create_attn("stn", int(first.in_channels)), conv=conv))
            model.conv1 = LayerChoice("stem/stn", {v: with_stn if v else conv for v in dims["stem/stn"].choices})
        return model

    def draw(self, sample: Mapping[str, Any], path: str) -> list[str]:
        from .diagrams import draw_stage_table

        o = self.options
        plan, opts = self.plan(sample), self.block_options(sample)
        channels = resnet.stage_channels(o["width"], o["block"])

        def text(name: str, r: int | None, options: Mapping[str, Any]) -> str:
            if "depth" in options:
                return f"{name} (mask depth {options['depth']})"
            return name if r is None else f"{name} (r={r})"

        rows = []
        if self.searches_stn():
            rows.append(["stem", "-", "-", "spatial transformer" if self.stn(sample) else "-"])
        for st, row in enumerate(plan):
            cells = [text(n, r, opts[st][b]) for b, (n, r) in enumerate(row)]
            rows.append([f"stage {st + 1}", str(len(row)), str(channels[st]),
                         ", ".join(cells) if o["per_block"] else cells[0]])
        header = ["stage", "blocks", "channels", "attention per block" if o["per_block"] else "attention"]
        return draw_stage_table(header, rows, path, f"attention ResNet ({o['block']}): {self.key(sample)}")

