"""Adaptive inference on a promoted model: train per-input block skipping, measure its real
cost, and register it as a new version of the same model.

* `train_adaptive(backbone, datamodule, options)` wraps a trained residual backbone in an
  `AdaptiveResNet` (``search_spaces.gated``) and fits `AdaptiveTask` (``tasks.adaptive``) with Lightning: the decider
  first, backbone frozen; then the backbone with the decisions fixed.
* `promote_adaptive(ref, options)` trains one and measures it (``engine.adaptive_cost.measure``:
  accuracy, FLOPs per input for the blocks each input ran, latency with blocks really skipped) on
  the data a registered version was trained and
  validated with and writes the result as the next version of that model: the full adaptive
  state, the base's genotype and config, ``adaptive.json`` (the decider's kind and options and
  the version it came from) and the measured metrics. `promote.load` rebuilds such a version
  around its decider; `promote.evaluate` re-measures accuracy and mean FLOPs (`remeasure`).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
from dataclasses import asdict, dataclass
from typing import Any

ADAPTIVE = "adaptive.json"


@dataclass
class AdaptiveOptions:
    """How an adaptive version is made (every field can be searched or given on the CLI)."""

    kind: str = "policy"  # policy (BlockDrop, REINFORCE) | gates (ConvNet-AIG, Gumbel-softmax)
    cost_weight: float = 1.0  # lambda: the price of the FLOPs used
    wrong_penalty: float = 1.0  # gamma: BlockDrop's reward for a wrong prediction is -gamma
    decide_epochs: int = 2
    finetune_epochs: int = 1
    lr: float = 1e-3  # the decider's Adam
    finetune_lr: float = 0.005  # the backbone's SGD
    alpha: float = 0.8  # BlockDrop's exploration bound on keep probabilities
    curriculum: float = 0.5  # fraction of the decide phase over which decided blocks grow 1 -> K
    policy_width: int = 16
    downsample: int = 2
    gate_hidden: int = 16
    tau: float = 1.0  # Gumbel-softmax temperature
    limit_train_batches: int | float | None = None
    seed: int = 0

    def check(self) -> None:
        """Raise ValueError naming the first option that cannot be honoured."""
        from nasforge.search_spaces.gated import KINDS

        if self.kind not in KINDS:
            raise ValueError(f"unknown adaptive kind {self.kind!r}; valid: {', '.join(KINDS)}")
        for name in ("cost_weight", "wrong_penalty", "decide_epochs", "finetune_epochs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("lr", "finetune_lr", "tau"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0.5 < self.alpha <= 1 or not 0 <= self.curriculum <= 1:
            raise ValueError(f"alpha must be in (0.5, 1] and curriculum in [0, 1], "
                             f"got {self.alpha}, {self.curriculum}")
        if min(self.policy_width, self.downsample, self.gate_hidden) < 1:
            raise ValueError("policy_width, downsample and gate_hidden must be >= 1")

    def network_options(self) -> dict[str, Any]:
        return {"kind": self.kind, "policy_width": self.policy_width, "downsample": self.downsample,
                "gate_hidden": self.gate_hidden, "tau": self.tau}


def wrap(network, spec: dict[str, Any]):
    """The `AdaptiveResNet` around ``network`` that ``spec`` (``adaptive.json``'s ``network``)
    describes, untrained: load the version's weights into it."""
    from nasforge.search_spaces.gated import AdaptiveResNet

    return AdaptiveResNet(network, **spec)


def _trainer(epochs: int, limit_train_batches, seed: int):
    import lightning as L

    from nasforge.platform.engine.assembly import create_trainer

    L.seed_everything(seed, workers=True, verbose=False)
    return create_trainer(max_epochs=epochs, limit_train_batches=limit_train_batches, limit_val_batches=0)


def train_adaptive(backbone, datamodule, o: AdaptiveOptions):
    """Train the decisions, then the backbone, of an adaptive version of ``backbone`` (modified
    in place: it becomes the adaptive network's backbone; an `AdaptiveResNet` is trained as it
    is). Returns the `AdaptiveResNet` in eval mode."""
    import warnings

    from nasforge.search_spaces.gated import AdaptiveResNet
    from nasforge.tasks.adaptive import AdaptiveTask

    from nasforge.platform.engine.trial import quiet_libraries

    quiet_libraries()
    # the frozen half of the network sits in eval mode on purpose (BN statistics stay fixed)
    warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")
    net = backbone if isinstance(backbone, AdaptiveResNet) else wrap(backbone, o.network_options())
    task = AdaptiveTask(net, num_classes=int(datamodule.num_classes), decide_epochs=o.decide_epochs,
                        cost_weight=o.cost_weight, wrong_penalty=o.wrong_penalty, lr=o.lr,
                        finetune_lr=o.finetune_lr, alpha=o.alpha, curriculum=o.curriculum)
    epochs = o.decide_epochs + o.finetune_epochs
    if epochs > 0:
        _trainer(epochs, o.limit_train_batches, o.seed).fit(task, datamodule=datamodule)
    for p in net.parameters():
        p.requires_grad_(True)
    return net.eval()


def promote_adaptive(ref: str, o: AdaptiveOptions, model: str | None = None, aliases=(),
                     registry=None, data_path: str | None = None):
    """Make an adaptive version of registered model ``ref`` and register it as the next version
    of ``model`` (default: the same model). Returns the new `Version`."""
    import torch

    from nasforge.platform.engine.adaptive_cost import remeasure
    from nasforge.platform.errors import UsageError
    from nasforge.platform.registry.promote import create_datamodule, load_version
    from nasforge.platform.registry.versions import (CONFIG, GENOTYPE, LATEST, META, VERSION_RE,
                                                     WEIGHTS, Registry, _check_name)

    try:
        o.check()
    except ValueError as e:
        raise UsageError(str(e)) from None
    base, v = load_version(ref, registry)
    meta = v.meta()
    if meta.get("adaptive"):
        base_ref = meta["adaptive"]["base"]
        raise UsageError(f"{v.ref} is already adaptive; adapt its base {base_ref} instead")
    if not hasattr(base, "layer1") or not hasattr(base, "forward_head"):
        raise UsageError(f"{v.ref} is not a residual network (timm ResNet): no blocks to skip")
    aliases = list(dict.fromkeys(aliases))
    for a in aliases:
        _check_name("alias", a)
        if a == LATEST or VERSION_RE.match(a):
            raise UsageError(f"alias {a!r} is reserved (latest and vN name versions); "
                             "choose another")
    model = _check_name("model name", model or meta["model"])
    dm = create_datamodule(meta, data_path)
    net = train_adaptive(base, dm, o)
    metrics = remeasure(net, dm, meta)  # the same measurement `registry evaluate` repeats
    spec = {"base": v.ref, "network": o.network_options(), "training": asdict(o)}

    reg = Registry(registry)
    new = reg.allocate(model)
    try:
        torch.save(net.state_dict(), os.path.join(new.path, WEIGHTS))
        for name in (GENOTYPE, CONFIG):
            shutil.copyfile(os.path.join(v.path, name), os.path.join(new.path, name))
        with open(os.path.join(new.path, ADAPTIVE), "w") as f:
            json.dump(spec, f, indent=2, sort_keys=True)
        meta = dict(meta, model=model, version=new.version, diagrams=[], adaptive=spec,
                    created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    metrics=metrics, num_params=sum(p.numel() for p in net.parameters()))
        with open(os.path.join(new.path, META), "w") as f:
            json.dump(meta, f, indent=2, default=str)
        reg.seal(new)
    except BaseException:
        shutil.rmtree(new.path, ignore_errors=True)
        raise
    for a in aliases:
        reg.set_alias(model, a, new.version)
    return new
