"""Per-input block skipping on a residual network: BlockDrop (Wu et al., CVPR 2018), SkipNet
(Wang et al., ECCV 2018) and ConvNet-AIG (Veit & Belongie, ECCV 2018).

CR-NAS (`reallocation`) moves computation once for a whole data set; these papers move it per
input: for every image a decider says which residual blocks of a trained ResNet run.

* `GatedResNet(backbone)` runs a timm ResNet (`resnet.build_resnet`, the `attention` and
  `reallocation` spaces) block by block and asks ``decide(k, h)`` before block k. A dropped block
  is really skipped: its module is not called; the samples that keep it are gathered and only
  they go through it, so FLOPs and wall time fall with every dropped block. A dropped block with
  a projection shortcut (the first block of a stage that changes width or stride) runs only its
  shortcut (1x1 conv + BN) and the block's final activation, as BlockDrop does. With every gate
  open the output is bit-for-bit the static network's. A skipped block outputs exactly what the
  block gives when stochastic depth (``build_resnet(drop_path=...)``) drops its residual branch,
  so a backbone trained with stochastic depth has already learned to do without it.
* `AdaptiveResNet(backbone, kind)` adds the decider:
  ``policy`` - BlockDrop's policy network: a small CNN on the downsampled image emits one
  keep-logit per block, once, before the backbone runs (trained with REINFORCE; see
  ``nasforge.tasks.adaptive``);
  ``gates`` - ConvNet-AIG / SkipNet's per-block gates: before each block, global pooling of the
  block's input -> 2-layer MLP -> (drop, keep) logits; trained with the Gumbel-softmax
  straight-through estimator (hard decisions forward, soft gradients backward), argmax at
  inference (``last_soft`` keeps the differentiable decisions while the gates learn).
  In inference (eval mode, or the decider frozen) decisions are hard and blocks are skipped;
  ``last_keep`` holds the (B, K) decisions of the last forward.
* `AdaptiveResNet.cost_table(input_shape)` counts, with PyTorch's ``FlopCounterMode`` on one
  input, the FLOPs of the always-run parts (stem, head, decider) and of every block run or
  skipped; ``CostTable.per_input(keep)`` turns decisions into each input's FLOPs.

torch only (no Lightning, no Optuna): this module is the network; training lives in ``tasks``'
and ``platform``'s modules.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from . import resnet

KINDS = ("policy", "gates")

# decide(k, h) -> None (run block k for every input), a (B,) bool tensor (real skipping), or a
# (B,) float tensor in [0, 1] with gradients (training: both paths run and are mixed).
Decide = Callable[[int, torch.Tensor], "torch.Tensor | None"]


def _final_act(block: nn.Module) -> nn.Module:
    """The activation after a timm block's addition (act2 of BasicBlock, act3 of Bottleneck)."""
    return block.act3 if hasattr(block, "act3") else block.act2


def skip_block(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What a dropped block outputs: its input, or its projected shortcut when it has one."""
    if block.downsample is None:
        return x
    return _final_act(block)(block.downsample(x))


def run_gated(block: nn.Module, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """Block output for the inputs with ``keep`` and the skip output for the others."""
    if keep is None:
        return block(x)
    if keep.dtype != torch.bool:  # soft/straight-through gate: both paths, mixed (training only)
        g = keep.view(-1, 1, 1, 1)
        return g * block(x) + (1 - g) * skip_block(block, x)
    n_keep = int(keep.sum())
    if n_keep == len(keep):
        return block(x)
    if n_keep == 0:
        return skip_block(block, x)
    on, off = keep.nonzero()[:, 0], (~keep).nonzero()[:, 0]
    y_on = block(x[on])  # only the kept inputs go through the block
    y_off = skip_block(block, x[off])
    out = y_on.new_empty((len(x), *y_on.shape[1:]))
    out[on] = y_on
    out[off] = y_off
    return out


class GatedResNet(nn.Module):
    """A timm ResNet whose residual blocks run per input as ``decide`` says; see the module
    docstring. (B, C, H, W) -> (B, num_classes)."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def blocks(self) -> list[nn.Module]:
        return [blk for _, _, blk in resnet.iter_blocks(self.backbone)]

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        b = self.backbone
        return b.maxpool(b.act1(b.bn1(b.conv1(x))))

    def forward(self, x: torch.Tensor, decide: Decide | None = None) -> torch.Tensor:
        h = self.stem(x)
        for k, blk in enumerate(self.blocks()):
            h = run_gated(blk, h, decide(k, h) if decide is not None else None)
        return self.backbone.forward_head(h)


class BlockDropPolicy(nn.Module):
    """BlockDrop's policy network, sized for small images: average-pool by ``downsample``, three
    3x3 conv-BN-ReLU (widths w, 2w, 4w; the last two stride 2), global pool, linear.
    (B, C, H, W) -> keep logits (B, K)."""

    def __init__(self, in_chans: int, num_blocks: int, width: int = 16, downsample: int = 2):
        super().__init__()
        w = width
        layers: list[nn.Module] = [nn.AvgPool2d(downsample)] if downsample > 1 else []
        for cin, cout, stride in ((in_chans, w, 1), (w, 2 * w, 2), (2 * w, 4 * w, 2)):
            layers += [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                       nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(4 * w, num_blocks)
        nn.init.constant_(self.fc.bias, 2.0)  # start near "keep everything" (p = 0.88)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class BlockGate(nn.Module):
    """ConvNet-AIG's gate: global average pool -> Linear -> BN -> ReLU -> Linear to (drop, keep)
    logits. (B, C, H, W) -> (B, 2). The keep logit starts ahead so a fresh gate is open."""

    def __init__(self, channels: int, hidden: int = 16):
        super().__init__()
        self.net = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, hidden),
                                 nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, 2))
        with torch.no_grad():
            self.net[-1].bias.copy_(torch.tensor([0.0, 2.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass
class CostTable:
    """FLOPs per input of each part (FlopCounterMode on one input, a multiply-add = 2)."""

    fixed: int  # stem + head + decider: run for every input
    run: list[int]  # block k run
    skip: list[int]  # block k dropped (its projection shortcut, or 0)
    decider: int = 0  # the part of ``fixed`` that the policy or the gates cost

    @property
    def static(self) -> int:
        """FLOPs of the backbone alone, every block run (no decider)."""
        return self.fixed - self.decider + sum(self.run)

    def per_input(self, keep: torch.Tensor) -> torch.Tensor:
        """(B, K) decisions -> (B,) FLOPs of each input."""
        k = keep.float()
        run = torch.tensor(self.run, dtype=torch.float64)
        skip = torch.tensor(self.skip, dtype=torch.float64)
        return self.fixed + k.double() @ run + (1 - k.double()) @ skip


class AdaptiveResNet(nn.Module):
    """A residual backbone with a per-input decider (``kind``: policy | gates); see the module
    docstring. (B, C, H, W) -> (B, num_classes); ``last_keep`` (B, K) bool after each forward."""

    def __init__(self, backbone: nn.Module, kind: str = "policy", policy_width: int = 16,
                 downsample: int = 2, gate_hidden: int = 16, tau: float = 1.0):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown adaptive kind {kind!r}; valid: {', '.join(KINDS)}")
        self.kind = kind
        self.tau = tau
        self.net = GatedResNet(backbone)
        blocks = self.net.blocks()
        if kind == "policy":
            in_chans = int(backbone.conv1.in_channels)
            self.policy = BlockDropPolicy(in_chans, len(blocks), policy_width, downsample)
        else:
            self.gates = nn.ModuleList(BlockGate(int(_in_channels(b)), gate_hidden) for b in blocks)
        self.last_keep: torch.Tensor | None = None
        self.last_soft: torch.Tensor | None = None  # gates while learning: differentiable (B, K)

    @property
    def backbone(self) -> nn.Module:
        return self.net.backbone

    @property
    def num_blocks(self) -> int:
        return len(self.net.blocks())

    def decider(self) -> nn.Module:
        return self.policy if self.kind == "policy" else self.gates

    def _learning(self) -> bool:
        """Decisions carry gradients only while the decider trains."""
        return self.decider().training and torch.is_grad_enabled()

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Logits; ``keep`` (B, K) bool overrides the decider (REINFORCE samples, tests)."""
        decisions: list[torch.Tensor] = []
        soft: list[torch.Tensor] = []
        self.last_soft = None
        if keep is None and self.kind == "policy":
            keep = self.policy(x) > 0  # sigmoid(logit) > 0.5, (B, K)
        if keep is not None:
            out = self.net(x, lambda k, h: keep[:, k])
            self.last_keep = keep.detach().bool()
            return out

        def gate(k: int, h: torch.Tensor) -> torch.Tensor:
            logits = self.gates[k](h)  # (B, 2): drop, keep
            if self._learning():
                g = F.gumbel_softmax(logits, tau=self.tau, hard=True)[:, 1]  # straight-through
                soft.append(g)
            else:
                g = logits[:, 1] > logits[:, 0]
            decisions.append(g.detach() > 0.5 if g.dtype != torch.bool else g)
            return g

        out = self.net(x, gate)
        self.last_keep = torch.stack(decisions, 1)
        if soft:
            self.last_soft = torch.stack(soft, 1)  # (B, K) hard values, soft gradients
        return out

    def cost_table(self, input_shape: Sequence[int]) -> CostTable:
        """Count each part's FLOPs on one input of shape (C, H, W) (eval mode, no grad)."""
        modes = {m: m.training for m in self.modules()}
        self.eval()
        try:
            with torch.no_grad():
                p = next(self.parameters())
                x = torch.zeros(1, *[int(s) for s in input_shape], device=p.device, dtype=p.dtype)
                decider = _run_counted(self.policy, x)[0] if self.kind == "policy" else 0
                stem, h = _run_counted(self.net.stem, x)
                run, skip = [], []
                for k, blk in enumerate(self.net.blocks()):
                    if self.kind == "gates":
                        decider += _run_counted(self.gates[k], h)[0]
                    skip.append(_run_counted(partial(skip_block, blk), h)[0])
                    f, h = _run_counted(blk, h)
                    run.append(f)
                head = _run_counted(self.backbone.forward_head, h)[0]
        finally:
            for m, t in modes.items():
                m.training = t
        return CostTable(fixed=stem + head + decider, run=run, skip=skip, decider=decider)


def _in_channels(block: nn.Module) -> int:
    return int(block.conv1.in_channels)


def _run_counted(fn: Callable[[torch.Tensor], torch.Tensor],
                 x: torch.Tensor) -> tuple[int, torch.Tensor]:
    """(FLOPs of ``fn(x)`` as FlopCounterMode counts them, the output)."""
    counter = FlopCounterMode(display=False)
    with counter:
        y = fn(x)
    return int(counter.get_total_flops()), y
