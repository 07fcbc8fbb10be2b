"""Training and scoring a supernet one path at a time (SPOS, Guo et al., ECCV 2020).

* `SinglePathSampling`: a Lightning callback that activates one path of the supernet before
  every training batch. The task is unchanged: its LightningModule trains the supernet as its
  injected network and never knows. The path of step ``s`` is a function of ``(seed, s)``
  only (a `random.Random` seeded by that string), so under DDP every rank activates the same
  path on the same step without any communication, and a resumed fit redraws the same paths.
  Validation during supernet training runs one path per epoch, seeded the same way.
  With ``fair=True`` the paths are FairNAS's strictly fair rounds (`fair_path_for_step`).
* `ControllerPathSampling`: the same callback with ENAS's paths: drawn by the RL controller
  (an Optuna study with the `controller` sampler), rank 0 draws and broadcasts, and each
  path's accuracy on a validation batch is the controller's reward.
* `InheritedWeightScorer`: the score of a sample on the trained supernet: activate its path,
  recalibrate the batch-norm statistics on a few training batches (the running statistics that
  training accumulated are a mix over all paths; Guo et al. recompute them per path), then
  top-1 accuracy on fixed validation batches. Nothing is trained; the weights are inherited.

This module sees a supernet and batches; the strategies that choose the samples never import it.
"""

from __future__ import annotations

import json
import os
import random
from typing import Any, Iterable

import lightning as L
import torch
from torch import nn

from nasforge.search_spaces import SampleValidationError, Space
from nasforge.search_spaces.supernet import activate


def path_for_step(space: Space, seed: int, step: int, stage: str = "train") -> dict[str, Any]:
    """The uniform path of ``step``: the same on every process that asks (no global RNG)."""
    return space.sample(random.Random(f"nasforge-spos:{seed}:{stage}:{step}"))


def fair_path_for_step(space: Space, seed: int, step: int) -> dict[str, Any]:
    """The strictly fair path of ``step`` (FairNAS, Chu et al., ICCV 2021): steps run in rounds
    of ``n`` = the most choices any decision has; in each round every decision takes each of
    its choices exactly once, in an order drawn per round and decision (so no choice gets more
    updates than another and the early lead of parameter-free ops is not compounded). A
    decision with fewer than ``n`` choices draws uniformly once it has taken each; inactive
    decisions are skipped; a combination the space rejects falls back to the uniform path.
    A function of ``(seed, step)`` only, like `path_for_step`."""
    decisions = space.decisions()
    n = max(d.n for d in decisions)
    round_, pos = divmod(step, n)
    sample: dict[str, Any] = {}
    for d in decisions:
        if not d.dim.is_active(sample):
            continue
        order = list(range(d.n))
        random.Random(f"nasforge-fair:{seed}:{round_}:{d.label}").shuffle(order)
        index = order[pos] if pos < d.n else random.Random(f"nasforge-fair:{seed}:{step}:{d.label}").randrange(d.n)
        sample[d.label] = d.choices[index]
    try:
        return space.validate(sample)
    except SampleValidationError:
        return path_for_step(space, seed, step)


class SinglePathSampling(L.Callback):
    """Activates ``path_for_step(space, seed, trainer.global_step)`` before each training
    batch (``fair``: `fair_path_for_step`, FairNAS's strict fairness). With ``record_dir``,
    each rank writes the paths it trained to ``record_dir/paths_rank<r>.json`` when training
    ends (how the DDP test sees both ranks)."""

    def __init__(self, space: Space, seed: int = 0, record_dir: str | None = None, fair: bool = False):
        self.space, self.seed, self.record_dir, self.fair = space, seed, record_dir, fair
        self.paths: list[tuple[int, str]] = []  # (global step, space key) on this rank

    def draw(self, trainer, step: int) -> dict[str, Any]:
        """The path of training step ``step`` (the same on every rank)."""
        if self.fair:
            return fair_path_for_step(self.space, self.seed, step)
        return path_for_step(self.space, self.seed, step)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        sample = self.draw(trainer, trainer.global_step)
        activate(pl_module, sample)
        if self.record_dir is not None:
            self.paths.append((trainer.global_step, self.space.key(sample)))

    def on_validation_start(self, trainer, pl_module):
        activate(
            pl_module, path_for_step(self.space, self.seed, trainer.current_epoch, stage="val")
        )

    def on_train_end(self, trainer, pl_module):
        if self.record_dir is None:
            return
        os.makedirs(self.record_dir, exist_ok=True)
        path = os.path.join(self.record_dir, f"paths_rank{trainer.global_rank}.json")
        with open(path, "w") as f:
            json.dump(
                {
                    "rank": trainer.global_rank,
                    "world_size": trainer.world_size,
                    "pid": os.getpid(),
                    "paths": self.paths,
                },
                f,
            )


class ControllerPathSampling(SinglePathSampling):
    """ENAS (Pham et al. 2018): the paths come from the RL controller, an ordinary Optuna
    study (``study_name`` in ``storage_url``, the `controller` sampler) whose trials are paths.
    Every ``every`` training steps rank 0 asks the study for a path, broadcasts it (every rank
    trains it), and after those steps tells the study the path's accuracy on the next of a few
    fixed validation batches (the reward; the policy updates from these as from any trial).
    The policy's state is the study's trials, so it is stored, resumed and shown like any
    strategy's."""

    def __init__(
        self,
        space: Space,
        storage_url: str,
        study_name: str,
        seed: int = 0,
        every: int = 10,
        reward_batches: int = 8,
        record_dir: str | None = None,
    ):
        super().__init__(space, seed, record_dir)
        self.storage_url, self.study_name, self.every, self.reward_batches = (
            storage_url,
            study_name,
            every,
            reward_batches,
        )
        self._study = self._trial = self._sample = None
        self._val: list = []

    def _open(self):
        if self._study is None:
            import optuna

            from nasforge.platform.strategies import create_sampler
            from nasforge.platform.engine.storage import create_storage

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            self._study = optuna.create_study(
                study_name=self.study_name,
                storage=create_storage(self.storage_url),
                direction="maximize",
                sampler=create_sampler("controller", self.space, self.seed),
                load_if_exists=True,
            )
        return self._study

    def setup(self, trainer, pl_module, stage):
        if not trainer.is_global_zero:
            return
        # fixed reward batches, prepared as for evaluation: the trainer is already "training"
        # here, which would make an image data module augment them
        dm = trainer.datamodule
        dm.setup("fit")
        augment = getattr(dm, "augment", None)
        if augment is not None:
            dm.augment = 0.0
        try:
            for i, batch in enumerate(dm.val_dataloader()):
                if i >= self.reward_batches:
                    break
                self._val.append(dm.on_after_batch_transfer(batch, 0))
        finally:
            if augment is not None:
                dm.augment = augment

    def draw(self, trainer, step: int) -> dict[str, Any]:
        if step % self.every == 0 or self._sample is None:
            sample = None
            if trainer.is_global_zero:
                self._trial = self._open().ask()
                sample = self.space.validate(self.space.suggest(self._trial))
                self._trial.set_user_attr("sample", sample)
                self._trial.set_user_attr("step", step)
            self._sample = trainer.strategy.broadcast(sample, src=0)
        return self._sample

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if (
            self._trial is None
            or trainer.global_step % self.every != 0
            or not trainer.is_global_zero
        ):
            return
        x, y = self._val[(trainer.global_step // self.every) % len(self._val)]
        with torch.no_grad():  # batch statistics, as in training (ENAS's reward)
            reward = float((pl_module(x.to(pl_module.device)).argmax(1).cpu() == y).float().mean())
        self._trial.set_user_attr("metrics", {"val/acc": reward})
        self._open().tell(self._trial, reward)
        self._trial = None


# ----------------------------------------------------------------------------- scoring
def recalibrate_batchnorm(net: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """Recompute every BatchNorm's running statistics as the plain average over ``batches``
    (inputs only), with the active path (torch's ``swa_utils.update_bn``); leaves ``net`` in eval mode."""
    from torch.optim.swa_utils import update_bn

    update_bn(batches, net)
    net.eval()


class InheritedWeightScorer:
    """Scores samples on a trained supernet (``net``: the supernet, or a module holding it).

    ``calib``: input batches for the batch-norm recalibration; ``val``: (inputs, labels)
    batches for the accuracy. Both are fixed, so every sample is scored on the same images."""

    def __init__(
        self,
        net: nn.Module,
        calib: list[torch.Tensor],
        val: list[tuple[torch.Tensor, torch.Tensor]],
    ):
        self.net, self.calib, self.val = net, calib, val

    @classmethod
    def from_datamodule(
        cls, net: nn.Module, dm, calib_batches: int = 4, val_batches: int | None = None
    ):
        """Fixed batches from ``dm`` (already set up), prepared as the trainer would see them
        in evaluation (``on_after_batch_transfer`` outside a fit: no augmentation)."""

        def take(loader, n):
            out = []
            for i, batch in enumerate(loader):
                if n is not None and i >= n:
                    break
                out.append(dm.on_after_batch_transfer(batch, 0))
            return out

        calib = [x for x, _ in take(dm.train_dataloader(), calib_batches)]
        return cls(net, calib, take(dm.val_dataloader(), val_batches))

    def correct_per_batch(self, sample: dict[str, Any]) -> list[int]:
        """How many images of each validation batch ``sample``'s path classifies right, with
        inherited weights (BN recalibrated)."""
        device = next(self.net.parameters()).device  # where training left it (a GPU, say)
        activate(self.net, sample)
        recalibrate_batchnorm(self.net, [x.to(device) for x in self.calib])
        with torch.no_grad():
            return [int((self.net(x.to(device)).argmax(1).cpu() == y).sum()) for x, y in self.val]

    def score(self, sample: dict[str, Any]) -> float:
        """Top-1 accuracy of ``sample``'s path with inherited weights (BN recalibrated)."""
        return sum(self.correct_per_batch(sample)) / max(1, sum(len(y) for _, y in self.val))
