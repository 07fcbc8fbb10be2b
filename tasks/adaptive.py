"""Training the per-input decisions of an `AdaptiveResNet`, then its backbone, as one
LightningModule: one ``fit``, two phases (manual optimization, one optimizer per phase).

The first ``decide_epochs`` epochs, the backbone is frozen (eval mode, no gradients) and only the
decider learns:

* ``policy`` (BlockDrop, Wu et al. CVPR 2018): per image the policy's keep-probabilities p are
  bounded for exploration (``p' = alpha p + (1 - alpha)(1 - p)``), keep/drop is sampled per
  block, the backbone runs with exactly those blocks, and the reward is BlockDrop's with an
  explicit cost weight lambda: ``1 - lambda * u^2`` for a correct prediction and ``-gamma``
  (``wrong_penalty``) for a wrong one, where u is the fraction of the blocks' FLOPs used
  (BlockDrop counts blocks; the CIFAR ResNet's blocks cost nearly the same, and FLOPs are what
  the target measures). REINFORCE: the controller's reward transform, EMA baseline and loss
  (`nasforge.platform.reinforce`, pure pieces at the bottom of the platform, importing nothing of
  ours). Curriculum as in the paper: at first only the last block is decided and the others are
  kept; one more block (counting from the end) joins at equal steps until, after the fraction
  ``curriculum`` of the phase's optimizer steps, all K are decided.
* ``gates`` (ConvNet-AIG, Veit & Belongie ECCV 2018; SkipNet's hybrid RL is not used): the gates
  draw hard decisions with the Gumbel-softmax straight-through estimator; the loss is the cross
  entropy plus ``lambda * u`` (u as above, per image, differentiable through the gates).

The remaining epochs fine-tune: the decider is frozen in eval mode, so its decisions are hard and
fixed, and the backbone is trained (SGD) on the blocks each image actually runs. Its BatchNorm
layers stay in eval mode (the base's running statistics; their affine weights still learn): a
block runs on the part of the batch that keeps it and its projection shortcut on the rest, so in
training mode BN would normalise by the statistics of a few images, and update its running
statistics from them, twice a step - which ruined the base when only a few images dropped a
block. (Stochastic depth inside the blocks stays on, as the base was trained.)

``base`` (a state-dict file of the backbone, e.g. a registry version's ``weights.pt``) is loaded
into the backbone, strictly, when fitting starts - how a sweep over cost weights starts every trial
from the same promoted model. A sweep file may name a registered model instead
(``base: MODEL[:VERSION|:ALIAS]``): the command line resolves it to that version's file before
anything runs (`registry.weight_refs`; the task never reads the registry). Validation and
`registry evaluate` never reload it.

The network is any module with the interface below (`ADAPTIVE_INTERFACE`; the `adaptive` space's
``AdaptiveResNet`` is the one nasforge builds): checked by its attributes, not its class, so the
task imports no search space.

Validation in both phases runs the network as at inference (hard decisions, blocks skipped) and
logs ``val/acc``, ``val/loss``, ``val/blocks`` (fraction of blocks run) and ``val/mflops``
(mean FLOPs per image, from the network's cost table, decider included).
"""
from __future__ import annotations

import os

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from nasforge.platform.reinforce import EmaBaseline, policy_gradient_loss
from nasforge.platform.reinforce import reward_transform as make_transform

# What the task uses of its network: ``forward(x, keep=None)``, the decider's ``kind`` (policy |
# gates), ``num_blocks``, ``backbone``, ``decider()``, ``cost_table(input_shape)``, the last
# forward's ``last_keep`` / ``last_soft``, and ``policy`` (policy kind only).
ADAPTIVE_INTERFACE = ("kind", "num_blocks", "backbone", "decider", "cost_table")


class AdaptiveTask(L.LightningModule):
    # init args that hold a state-dict file; a sweep file may give a registry reference there,
    # which the command line turns into that version's file (`registry.weight_refs`)
    registry_weights = ("base",)

    def __init__(self, network: nn.Module, num_classes: int,
                 input_shape: tuple[int, ...] | None = None,
                 decide_epochs: int = 1, cost_weight: float = 1.0, wrong_penalty: float = 1.0,
                 lr: float = 1e-3, finetune_lr: float = 0.005, alpha: float = 0.8,
                 curriculum: float = 0.5, entropy_weight: float = 0.0, baseline_decay: float = 0.9,
                 reward_transform: str = "none", reward_window: int = 4096, base: str | None = None):
        super().__init__()
        missing = [a for a in ADAPTIVE_INTERFACE if not hasattr(network, a)]
        if missing:
            raise TypeError(f"the adaptive task needs an adaptive network (the `adaptive` space's "
                            f"AdaptiveResNet); {type(network).__name__} has no {', '.join(missing)}")
        make_transform(reward_transform, [])  # an unknown name fails here, before training
        self.save_hyperparameters(ignore=["network"])
        self.automatic_optimization = False
        self.network = network
        self.table = network.cost_table(input_shape) if input_shape is not None else None
        self.baseline = EmaBaseline(baseline_decay)
        self.seen: list[float] = []
        self.criterion = nn.CrossEntropyLoss()
        self.val_acc = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.val_blocks = MeanMetric()
        self.val_mflops = MeanMetric()

    # -- what trains in which phase --------------------------------------------------------
    @property
    def phase(self) -> str:
        return "decide" if self.current_epoch < self.hparams.decide_epochs else "finetune"

    def setup(self, stage: str) -> None:
        if self.table is None:  # FLOPs per input need the input's shape: the data module knows it
            shape = getattr(self.trainer.datamodule, "input_shape", None)
            if shape is None:
                raise ValueError("AdaptiveTask needs input_shape (C, H, W); "
                                 "the data module has none")
            self.table = self.network.cost_table(tuple(int(v) for v in shape))

    def on_fit_start(self) -> None:
        if self.hparams.base:
            if not os.path.isfile(self.hparams.base):
                raise FileNotFoundError(f"base {self.hparams.base!r} is not a file: give the backbone's state-dict "
                                        "file (a registry version's weights.pt); `nasforge sweep run` resolves a "
                                        "registered model MODEL[:VERSION|:ALIAS] to its file")
            state = torch.load(self.hparams.base, map_location="cpu", weights_only=True)
            try:
                self.network.backbone.load_state_dict(state, strict=True)
            except RuntimeError as e:  # torch's message: a header, then one line per kind of misfit
                lines = [line.strip() for line in str(e).splitlines()[1:] if line.strip()]
                raise ValueError(f"base {self.hparams.base!r} does not fit the backbone ({(lines or ['?'])[0][:160]}); "
                                 "the space's backbone genotype must be that model's genotype.json") from None

    def on_train_epoch_start(self) -> None:
        decide = self.phase == "decide"
        for p in self.network.parameters():
            p.requires_grad_(False)
        part = self.network.decider() if decide else self.network.backbone
        for p in part.parameters():
            p.requires_grad_(True)
        self.network.backbone.train(not decide)
        if not decide:  # BN keeps the base's statistics: a kept block sees a part of the batch
            for m in self.network.backbone.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        self.network.decider().train(decide)

    def configure_optimizers(self):
        decide = torch.optim.Adam(self.network.decider().parameters(), lr=self.hparams.lr)
        finetune = torch.optim.SGD(self.network.backbone.parameters(), lr=self.hparams.finetune_lr,
                                   momentum=0.9, weight_decay=5e-4)
        return [decide, finetune]

    # -- the cost of decisions --------------------------------------------------------------
    def used_fraction(self, keep: torch.Tensor) -> torch.Tensor:
        """(B, K) decisions (bool or differentiable float) -> (B,) fraction of block FLOPs run."""
        run = torch.tensor(self.table.run, dtype=torch.float32, device=keep.device)
        skip = torch.tensor(self.table.skip, dtype=torch.float32, device=keep.device)
        k = keep.float()
        return (k @ run + (1 - k) @ skip) / run.sum()

    # -- steps ------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        x, y = batch  # (B, C, H, W), (B,)
        decide_opt, finetune_opt = self.optimizers()
        opt = decide_opt if self.phase == "decide" else finetune_opt
        loss = self._loss(x, y)
        opt.zero_grad()
        self.manual_backward(loss)
        opt.step()
        return loss.detach()

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.phase == "finetune":
            loss = self.criterion(self.network(x), y)
            self.log("train/loss", loss, prog_bar=True, batch_size=len(y))
            return loss
        if self.network.kind == "policy":
            return self._reinforce_step(x, y)
        logits = self.network(x)  # Gumbel-softmax straight-through gates
        used = self.used_fraction(self.network.last_soft)  # (B,), differentiable through the gates
        loss = self.criterion(logits, y) + self.hparams.cost_weight * used.mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=len(y))
        self.log("train/blocks", self.network.last_keep.float().mean(), batch_size=len(y))
        return loss

    def _reinforce_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        hp = self.hparams
        K = self.network.num_blocks
        j = self.decided_blocks()
        p = torch.sigmoid(self.network.policy(x))  # (B, K)
        p = hp.alpha * p + (1 - hp.alpha) * (1 - p)  # bounded for exploration
        dist = torch.distributions.Bernoulli(probs=p[:, K - j:])
        u = dist.sample()  # (B, j)
        keep = torch.cat([torch.ones_like(p[:, :K - j]), u], 1).bool()
        with torch.no_grad():
            correct = self.network(x, keep).argmax(1) == y
            reward = torch.where(correct, 1 - hp.cost_weight * self.used_fraction(keep) ** 2,
                                 torch.full_like(p[:, 0], -hp.wrong_penalty))
        raw = reward.tolist()
        self.seen = (self.seen + raw)[-hp.reward_window:]
        transform = make_transform(hp.reward_transform, self.seen)
        rewards = [transform(r) for r in raw]
        baseline = self.baseline.update(rewards)
        adv = torch.tensor(rewards, device=x.device) - baseline
        logp = dist.log_prob(u).sum(1)
        loss = policy_gradient_loss(logp, adv, dist.entropy().sum(1), hp.entropy_weight)
        self.log("train/reward", reward.mean(), prog_bar=True, batch_size=len(y))
        self.log("train/blocks", keep.float().mean(), batch_size=len(y))
        self.log("train/decided", float(j), batch_size=len(y))
        return loss

    def decided_blocks(self) -> int:
        """How many blocks (counting from the last) the policy decides at this step."""
        K = self.network.num_blocks
        hp = self.hparams
        steps = hp.curriculum * hp.decide_epochs * self.trainer.num_training_batches
        if steps <= 0:
            return K
        return min(K, 1 + int(self.global_step * K / steps))

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.network(x)
        keep = self.network.last_keep
        self.val_acc(logits, y)
        self.val_blocks(keep.float().mean(1))
        self.val_mflops(self.table.per_input(keep.cpu()).float() / 1e6)
        self.log("val/loss", self.criterion(logits, y), batch_size=len(y))
        self.log("val/acc", self.val_acc, prog_bar=True)
        self.log("val/blocks", self.val_blocks)
        self.log("val/mflops", self.val_mflops, prog_bar=True)

