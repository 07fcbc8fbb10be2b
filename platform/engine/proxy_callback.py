"""`ProxyCallback`: zero-cost proxies of a trial's network, logged as ``proxy/*`` before it trains.

Asked for by a sweep file's ``proxies: [naswot, synflow, ...]`` (engine/zero_cost_config.py). At
fit start, on rank 0 and on the trial's own device, it scores the task's network
(``pl_module.network`` when there is one, else the module) on the first training batch of the
trainer's data module (`proxies.model_batch`), keeps the result in ``callback.scores`` (which
the trial runner adds to the trial's metrics beside ``cost/*``) and logs it to every logger at
step 0, so a user can see whether a proxy tracks their own metric. The network is scored on a
copy (`proxies.score_network`): training starts from the weights it had.
"""
from __future__ import annotations

from typing import Sequence

import lightning as L
from torch import nn

from nasforge.platform.engine import phases
from nasforge.platform.engine.proxies import model_batch, score_network


class ProxyCallback(L.Callback):
    def __init__(self, proxies: Sequence[str], seed: int = 0):
        super().__init__()
        self.proxies, self.seed = list(proxies), seed
        self.scores: dict[str, float] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.datamodule is None:
            return
        network = getattr(pl_module, "network", None)
        model = network if isinstance(network, nn.Module) else pl_module
        with phases.phase("fit/proxies"):
            batch = model_batch(trainer.datamodule, pl_module.device)
            raw = score_network(model, batch, self.proxies, seed=self.seed)
        self.scores = {f"proxy/{k}": v for k, v in raw.items()}
        for logger in trainer.loggers:
            logger.log_metrics(dict(self.scores), step=0)
