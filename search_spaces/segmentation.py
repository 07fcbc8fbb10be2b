"""`encdec`: a search space of encoder-decoder segmentation networks (U-Net family).

What is searched, per sample:

* ``encdec/encoder`` - the encoder: the built-in U-Net encoder (``unet``), a timm backbone by
  name (``features_only``, not pretrained: resnet10t, resnet18, mobilenetv3_small_100, ...), or
  ``backbone``: the sweep's backbone space, searched together with the decoder (``space:
  [{name: reallocation}, {name: encdec, options: {encoders: [backbone], stages: 3}}]``; a
  ResNet backbone gives 4 maps, so at most 3 decoder stages);
* ``encdec/unet/width`` - the built-in encoder's first-level width (only when it is chosen);
* ``encdec/decoder/width`` - the decoder width ``w``: stage j (deepest first) has ``w * 2**(n-j)``
  channels, so the shallowest stage has ``w``;
* ``encdec/bottleneck`` - PAN's Feature Pyramid Attention on the encoder's deepest map (``fpa``,
  Li et al., BMVC 2018) or none; a decision only when the ``bottlenecks`` option lists more than
  ``none``;
* ``encdec/stage<j>/gate`` - an attention gate on stage j's skip connection (``ag``: Attention
  U-Net, Oktay et al. 2018), PAN's Global Attention Upsample (``gau``, not among the default
  choices) or none;
* ``encdec/stage<j>/attn`` - the attention block after stage j's convolutions (timm's
  create_attn names: se = Squeeze-and-Excitation, eca = ECA-Net, cbam = CBAM, gc = GCNet), or none.

Stage 1 is the deepest decoder stage (next to the bottleneck), stage ``stages`` the shallowest.
Options choose the choices: ``encoders``, ``unet_widths``, ``widths``, ``gates``, ``attns``,
``bottlenecks`` (default [none]), ``stages`` (decoder stages, 1-4). The network
(`encoder_decoder.EncoderDecoderNet`) returns ``(B, num_classes, H, W)`` logits for any input
size. Pretrained weights are not used (nothing is downloaded).

`autodeeplab`: Auto-DeepLab's network-level search (Liu et al., CVPR 2019), also here: per
layer ``autodeeplab/layer<i>/move`` (down = half the resolution, same, up = double it; the path
starts at 1/4 and stays between 1/4 and 1/32: a move past either end keeps the level, and
``key()`` names the path actually taken, so such samples are recognised as duplicates) and
``autodeeplab/layer<i>/op`` (the layer's cell op), with ``autodeeplab/width``. The network is
`autodeeplab_network.AutoDeepLabNet` (stem to 1/4, the path, an ASPP head).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from .registry import backbone_spaces, register_space
from .space import Categorical, Dim, SampleValidationError, Space

DEFAULT_ENCODERS = ("unet", "resnet10t", "resnet18", "mobilenetv3_small_100")
BACKBONE = "backbone"  # the encoder: the sweep's backbone space (attention, reallocation, convnet), searched with it
ATTENTIONS = ("none", "se", "eca", "cbam", "gc")
GATES = ("none", "ag")  # the default choices; VALID_GATES adds PAN's GAU
VALID_GATES = ("none", "ag", "gau")
BOTTLENECKS = ("none", "fpa")


@register_space
class EncoderDecoderSpace(Space):
    """`encdec`: encoder-decoder segmentation networks (U-Net family): encoder, widths, an
    attention gate per skip (Attention U-Net) and an attention block per decoder stage."""

    name = "encdec"
    builds_network = True
    takes_backbone = True

    def __init__(self, encoders: Sequence[str] = DEFAULT_ENCODERS, unet_widths: Sequence[int] = (8, 16, 32),
                 widths: Sequence[int] = (8, 16, 32), gates: Sequence[str] = GATES,
                 attns: Sequence[str] = ATTENTIONS, stages: int = 4,
                 bottlenecks: Sequence[str] = ("none",)):
        if not 1 <= int(stages) <= 4:
            raise ValueError(f"encdec.stages must be in 1..4 (the encoders have 5 levels), got {stages}")
        for g in gates:
            if g not in VALID_GATES:
                raise ValueError(f"encdec.gates: unknown gate {g!r}; "
                                 f"valid: {', '.join(VALID_GATES)}")
        if not bottlenecks or any(b not in BOTTLENECKS for b in bottlenecks):
            raise ValueError(f"encdec.bottlenecks: give some of {', '.join(BOTTLENECKS)}, "
                             f"got {list(bottlenecks)}")
        for a in attns:
            if a not in ATTENTIONS:
                raise ValueError(f"encdec.attns: unknown attention {a!r}; valid: {', '.join(ATTENTIONS)}")
        for name, ws in (("widths", widths), ("unet_widths", unet_widths)):
            if not ws or any(not isinstance(w, int) or isinstance(w, bool) or w < 1 for w in ws):
                raise ValueError(f"encdec.{name}: give a list of positive integers, got {list(ws)}")
        if not encoders or any(not isinstance(e, str) or not e for e in encoders):
            raise ValueError(f"encdec.encoders: give a list of encoder names, got {list(encoders)}")
        super().__init__(encoders=list(encoders), unet_widths=list(unet_widths), widths=list(widths),
                         gates=list(gates), attns=list(attns), stages=int(stages),
                         bottlenecks=list(bottlenecks))

    def dimensions(self) -> list[Dim]:
        o = self.options
        dims: list[Dim] = [Categorical("encdec/encoder", choices=tuple(o["encoders"]),
                                       description="encoder: built-in U-Net or a timm backbone")]
        if "unet" in o["encoders"]:
            dims.append(Categorical("encdec/unet/width", choices=tuple(o["unet_widths"]),
                                    when={"encdec/encoder": "unet"},
                                    description="first-level width of the built-in U-Net encoder"))
        if o["bottlenecks"] != ["none"]:
            dims.append(Categorical(
                "encdec/bottleneck", choices=tuple(o["bottlenecks"]),
                description="attention on the encoder's deepest map (PAN's FPA, Li et al. 2018)"))
        dims.append(Categorical("encdec/decoder/width", choices=tuple(o["widths"]),
                                description="width of the shallowest decoder stage (doubles per stage deeper)"))
        for j in range(1, o["stages"] + 1):
            dims.append(Categorical(f"encdec/stage{j}/gate", choices=tuple(o["gates"]),
                                    description="skip attention: gate (Oktay 2018), GAU (Li 2018)"))
            dims.append(Categorical(f"encdec/stage{j}/attn", choices=tuple(o["attns"]),
                                    description="attention block after the stage's convolutions"))
        return dims

    def config(self, sample: Mapping[str, Any]):
        """The `EncDecConfig` a sample describes (validated)."""
        from .encoder_decoder import EncDecConfig, StageConfig

        s = self.validate(sample)
        n, w = self.options["stages"], s["encdec/decoder/width"]
        stages = tuple(
            StageConfig(width=w * 2 ** (n - j), gate=s[f"encdec/stage{j}/gate"] == "ag",
                        attn=s[f"encdec/stage{j}/attn"], gau=s[f"encdec/stage{j}/gate"] == "gau")
            for j in range(1, n + 1)
        )
        return EncDecConfig(encoder=s["encdec/encoder"], stages=stages,
                            unet_width=s.get("encdec/unet/width", 16),
                            bottleneck=s.get("encdec/bottleneck", self.options["bottlenecks"][0]))

    def check_backbone(self, backbone: Space | None) -> None:
        encoders = self.options["encoders"]
        if backbone is not None and encoders != [BACKBONE]:
            raise ValueError(f"encdec.encoders: with the backbone space {backbone.name!r} in the sweep the "
                             f"encoder is that backbone; set encoders: [{BACKBONE}] (got {encoders})")
        if backbone is None and BACKBONE in encoders:
            raise ValueError(f"encdec.encoders: {BACKBONE!r} is the sweep's backbone space; add one to "
                             f"space: ({', '.join(backbone_spaces())}) or choose other encoders")

    def build(self, sample: Mapping[str, Any], input_shape: Sequence[int], num_classes: int,
              encoder=None):
        """The network of ``sample``; ``encoder``: the sweep's searched backbone (encoder ``backbone``)."""
        from .encoder_decoder import EncoderDecoderNet

        cfg = self.config(sample)
        if cfg.encoder == BACKBONE and encoder is None:
            raise SampleValidationError(f"encdec: encoder {BACKBONE!r} needs the sweep's backbone space "
                                        f"({', '.join(backbone_spaces())}) beside encdec in space:",
                                        "encdec/encoder")
        try:
            return EncoderDecoderNet(cfg, int(input_shape[0]), int(num_classes), encoder=encoder)
        except ValueError as e:  # an encoder name timm does not know, or too few backbone stages
            raise SampleValidationError(str(e), "encdec/encoder") from None

    def draw(self, sample: Mapping[str, Any], path: str) -> list[str]:
        from .diagrams import draw_stage_table

        cfg = self.config(sample)
        n = len(cfg.stages)
        base = 1 if cfg.encoder == "unet" else 2  # stride of the shallowest encoder map

        def resolution(k: int) -> str:  # of the encoder map k levels above the shallowest used
            # a searched backbone's strides depend on its stem: name its stage (ResNets: 4 stages)
            return f"backbone stage {4 - n + k}" if cfg.encoder == BACKBONE else f"1/{base * 2 ** k}"

        rows = [[f"stage{j + 1}", resolution(n - 1 - j),
                 "GAU" if st.gau else "gate" if st.gate else "-", str(st.width),
                 st.attn if st.attn != "none" else "-"]
                for j, st in enumerate(cfg.stages)]
        if cfg.bottleneck != "none":  # the encoder's deepest map, before decoder stage 1
            rows.insert(0, ["bottleneck", resolution(n), "-", "-", cfg.bottleneck.upper()])
        enc = cfg.encoder + (f" (width {cfg.unet_width})" if cfg.encoder == "unet"
                             else " (searched: see its own table)" if cfg.encoder == BACKBONE else "")
        return draw_stage_table(["decoder stage", "resolution", "skip", "width", "attention"], rows, path,
                                f"encdec: encoder {enc}")


@register_space
class AutoDeepLabSpace(Space):
    """`autodeeplab`: Auto-DeepLab's network-level path (Liu et al. 2019): per layer down, same
    or up in resolution between 1/4 and 1/32, and the layer's op; ASPP head."""

    name = "autodeeplab"
    builds_network = True
    MOVES = ("down", "same", "up")

    def __init__(self, layers: int = 8, widths: Sequence[int] = (8, 16, 32),
                 ops: Sequence[str] = ("sep3", "sep5", "conv3")):
        valid_ops = ("sep3", "sep5", "conv3")  # autodeeplab_network.OPS (no torch import here)
        if not 1 <= int(layers) <= 16:
            raise ValueError(f"autodeeplab.layers must be in 1..16, got {layers}")
        for op in ops:
            if op not in valid_ops:
                raise ValueError(f"autodeeplab.ops: unknown op {op!r}; valid: {', '.join(valid_ops)}")
        if not widths or any(not isinstance(w, int) or isinstance(w, bool) or w < 1 for w in widths):
            raise ValueError(f"autodeeplab.widths: give a list of positive integers, got {list(widths)}")
        super().__init__(layers=int(layers), widths=list(widths), ops=list(ops))

    def dimensions(self) -> list[Dim]:
        o = self.options
        dims: list[Dim] = [Categorical("autodeeplab/width", choices=tuple(o["widths"]),
                                       description="channels at 1/4 (doubled per halving)")]
        for i in range(1, o["layers"] + 1):
            dims.append(Categorical(f"autodeeplab/layer{i}/move", choices=self.MOVES,
                                    description="resolution change: down = x0.5, same, up = x2"))
            dims.append(Categorical(f"autodeeplab/layer{i}/op", choices=tuple(o["ops"]),
                                    description="the layer's cell op"))
        return dims

    def path(self, sample: Mapping[str, Any]) -> list[int]:
        """The level after each layer (0 = 1/4 ... 3 = 1/32), moves past either end clamped."""
        s = self.validate(sample)
        level, out = 0, []
        for i in range(1, self.options["layers"] + 1):
            step = {"down": 1, "same": 0, "up": -1}[s[f"autodeeplab/layer{i}/move"]]
            level = min(3, max(0, level + step))
            out.append(level)
        return out

    def key(self, sample: Mapping[str, Any]) -> str:
        s = self.validate(sample)
        ops = [s[f"autodeeplab/layer{i}/op"] for i in range(1, self.options["layers"] + 1)]
        return f"w{s['autodeeplab/width']}|" + "|".join(
            f"1/{4 * 2 ** lv}:{op}" for lv, op in zip(self.path(s), ops))

    def config(self, sample: Mapping[str, Any]):
        from .autodeeplab_network import PathConfig

        s = self.validate(sample)
        return PathConfig(width=s["autodeeplab/width"], levels=tuple(self.path(s)),
                          ops=tuple(s[f"autodeeplab/layer{i}/op"] for i in range(1, self.options["layers"] + 1)))

    def build(self, sample: Mapping[str, Any], input_shape: Sequence[int], num_classes: int):
        from .autodeeplab_network import AutoDeepLabNet

        return AutoDeepLabNet(self.config(sample), int(input_shape[0]), int(num_classes))

    def draw(self, sample: Mapping[str, Any], path: str) -> list[str]:
        from .diagrams import draw_stage_table

        cfg = self.config(sample)
        rows, prev = [], 0
        for i, (lv, op) in enumerate(zip(cfg.levels, cfg.ops), 1):
            move = "down" if lv > prev else "up" if lv < prev else "same"
            rows.append([f"layer{i}", move, f"1/{4 * 2 ** lv}", str(cfg.width * 2 ** lv), op])
            prev = lv
        return draw_stage_table(["layer", "move", "resolution", "channels", "op"], rows, path,
                                f"autodeeplab path (stem to 1/4, ASPP head), width {cfg.width}")
