"""Zero-cost proxies: scores that rank untrained networks from one batch, in seconds.

`score_network(net, batch, proxies, seed)` returns ``{name: float}`` for the names asked, higher
meaning "expected to train better" for every proxy:

* ``params``    - the number of parameters (`cost.count_params`);
* ``flops``     - per-sample FLOPs of one forward pass, as ``cost/flops`` counts them (`cost.measure_cost`);
* ``synflow``   - sum over weights of |w * dR/dw| with R the sum of the output of the network with
                  batch norm removed, every weight replaced by its absolute value and an all-ones
                  input (Tanaka et al. 2020; as a proxy, Abdelfattah et al., ICLR 2021);
* ``snip``      - sum |w * dL/dw| of the cross-entropy loss L on the batch (Lee et al. 2019);
* ``grad_norm`` - sum over weight tensors of ||dL/dw||_2;
* ``fisher``    - sum over the outputs a of every conv/linear layer of 0.5 * mean over the batch of
                  (sum over positions of a * dL/da)^2, per channel (Theis et al. 2018; Turner et al. 2020);
* ``jacob_cov`` - -sum(log(v + k) + 1/(v + k)) over the eigenvalues v of the correlation matrix of
                  the per-example input gradients of the output's sum, k = 1e-5 (Mellor et al. 2021 v1);
* ``naswot``    - log |K| of the kernel of binary activation codes before every ReLU,
                  K[i, j] = number of units on which examples i and j agree (Mellor et al., ICML 2021).

"Weights" are those of the conv and linear layers (every parameter when a network has none).
snip, grad_norm, fisher, jacob_cov and naswot share one forward pass in training mode and its two
backward passes; synflow has its own (all-ones input, float64, no batch norm); flops another.
Everything runs on a deep copy of ``net`` on the batch's device, so the network's parameters,
buffers and train/eval flags are left as they were; the copy's random draws (dropout) come from
``seed``, so a score is a function of (network, batch, seed).

A proxy that is undefined for a network gets `WORST` (never NaN, never an exception): the
output does not depend on the input at all (a cell of only ``none`` edges: zero gradients), a
singular kernel, a constant Jacobian row, an overflow. `strategies.proxy_prior.ensemble_scores` combines
proxies by rank. This is the measurement, not a search: the zero-cost sweep, the proxy callback
and the strategies' warm starts call it.
"""
from __future__ import annotations

import copy
import math
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
from torch import nn

from nasforge.platform.engine.cost import count_params, measure_cost

PROXIES = ("params", "flops", "synflow", "snip", "grad_norm", "fisher", "jacob_cov", "naswot")
DATA_PROXIES = ("snip", "grad_norm", "fisher", "jacob_cov", "naswot")  # one shared forward pass
WORST = -1e300
_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.ELU, nn.Hardswish)
_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def check_proxies(names: Iterable[str]) -> list[str]:
    """The names as a list, or ValueError naming the first unknown one and the valid ones."""
    names = list(names)
    for name in names:
        if name not in PROXIES and name != "ensemble":
            raise ValueError(f"unknown proxy {name!r}; valid: {', '.join(PROXIES)}, ensemble")
    return names


def _finite(value: float) -> float:
    return float(value) if math.isfinite(value) else WORST


def _weights(net: nn.Module) -> list[torch.Tensor]:
    ws = [m.weight for m in net.modules() if isinstance(m, _LAYERS) and m.weight is not None]
    return ws or [p for p in net.parameters()]


def _output(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, Mapping):
        out = list(out.values())
    if isinstance(out, (list, tuple)) and out and isinstance(out[-1], torch.Tensor):
        return out[-1]  # a backbone's feature maps: the deepest
    raise TypeError(f"proxies need a network that returns a tensor, got {type(out).__name__}")


def _split(batch: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, Mapping):
        return batch.get("image", batch.get("x")), batch.get("label", batch.get("y"))
    x, y = batch[0], batch[1] if len(batch) > 1 else None
    return x, (y if isinstance(y, torch.Tensor) else None)


def _strip_batchnorm(net: nn.Module) -> None:
    for name, child in net.named_children():
        if isinstance(child, _BATCHNORMS):
            setattr(net, name, nn.Identity())
        else:
            _strip_batchnorm(child)


def synflow(net: nn.Module, input_shape: Sequence[int], device: torch.device) -> float:
    """synflow of a copy of ``net`` (modified in place: pass a copy)."""
    _strip_batchnorm(net)
    net.to(device=device, dtype=torch.float64).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    ones = torch.ones(1, *input_shape, dtype=torch.float64, device=device, requires_grad=True)  # (1, C, H, W)
    weights = _weights(net)
    total = _output(net(ones)).sum()
    if not total.requires_grad:
        return WORST
    grads = torch.autograd.grad(total, [*weights, ones], allow_unused=True)
    if grads[-1] is None or not bool(grads[-1].abs().sum() > 0):
        return WORST  # the output does not depend on the input
    with torch.no_grad():
        score = sum(float((w * g).abs().sum()) for w, g in zip(weights, grads[:-1]) if g is not None)
    return _positive(score)


def data_proxies(net: nn.Module, x: torch.Tensor, y: torch.Tensor | None, names: Sequence[str],
                 loss_fn: Callable | None = None) -> dict[str, float]:
    """snip, grad_norm, fisher, jacob_cov and naswot (those in ``names``) from one forward pass of
    ``net`` (a copy, put in training mode) on ``x`` (B, ...) and two backward passes."""
    net.train()
    codes: list[torch.Tensor] = []
    acts: list[torch.Tensor] = []
    hooks = []
    if "naswot" in names:
        def code(module, inp):
            codes.append((inp[0].detach().flatten(1) > 0).to(torch.float64))  # (B, units)
        hooks += [m.register_forward_pre_hook(code) for m in net.modules() if isinstance(m, _ACTIVATIONS)]
    if "fisher" in names:
        def keep(module, inp, out):
            acts.append(out)
        hooks += [m.register_forward_hook(keep) for m in net.modules() if isinstance(m, _LAYERS)]
    x = x.detach().clone().requires_grad_(True)
    try:
        out = _output(net(x))  # (B, K, ...)
    finally:
        for h in hooks:
            h.remove()
    res: dict[str, float] = {}
    weights = _weights(net)
    jac = torch.autograd.grad(out.sum(), x, retain_graph=True, allow_unused=True)[0] if out.requires_grad else None
    if jac is None or not bool(jac.abs().sum() > 0):
        return {n: WORST for n in names}  # the output ignores the input: nothing to measure
    if "jacob_cov" in names:
        res["jacob_cov"] = _jacob_cov(jac.flatten(1))
    if "naswot" in names:
        res["naswot"] = _naswot(codes, x.shape[0])
    if any(n in names for n in ("snip", "grad_norm", "fisher")):
        if y is None:
            y = out.detach().argmax(1)
        loss = (loss_fn or nn.functional.cross_entropy)(out, y)
        grads = torch.autograd.grad(loss, [*weights, *acts], allow_unused=True)
        wg, ag = grads[:len(weights)], grads[len(weights):]
        pairs = [(w.detach(), g) for w, g in zip(weights, wg) if g is not None]
        if "snip" in names:
            res["snip"] = _positive(sum(float((w * g).abs().sum()) for w, g in pairs))
        if "grad_norm" in names:
            res["grad_norm"] = _positive(sum(float(g.norm()) for _, g in pairs))
        if "fisher" in names:
            res["fisher"] = _positive(sum(_fisher(a, g) for a, g in zip(acts, ag) if g is not None))
    return res


def _positive(score: float) -> float:
    return _finite(score) if score > 0 else WORST


def _fisher(act: torch.Tensor, grad: torch.Tensor) -> float:
    prod = (act.detach() * grad).double()  # (B, C, ...)
    per_channel = prod.flatten(2).sum(2) if prod.dim() > 2 else prod  # (B, C)
    return float(0.5 * per_channel.pow(2).mean(0).sum())


def _jacob_cov(jac: torch.Tensor, k: float = 1e-5) -> float:
    jac = jac.double()  # (B, D)
    if jac.shape[0] < 2 or bool((jac.std(1) == 0).any()):
        return WORST  # a constant row: its correlation is undefined
    corr = torch.corrcoef(jac)
    v = torch.linalg.eigvalsh(corr)
    return _finite(float(-(torch.log(v + k) + 1.0 / (v + k)).sum()))


def _naswot(codes: list[torch.Tensor], batch: int) -> float:
    if not codes:
        return WORST
    kernel = torch.zeros(batch, batch, dtype=torch.float64)
    for c in codes:
        c = c.cpu()
        kernel += c @ c.t() + (1 - c) @ (1 - c).t()  # (B, B)
    sign, logdet = torch.linalg.slogdet(kernel)
    return _finite(float(logdet)) if float(sign) > 0 else WORST


def score_network(net: nn.Module, batch: Any, proxies: Sequence[str] = PROXIES, seed: int = 0,
                  loss_fn: Callable | None = None) -> dict[str, float]:
    """The proxies named (see the module docstring) of ``net`` on ``batch`` ((x, y), a dict with
    ``image``/``label`` or x alone), on a copy, on x's device, with torch's RNG seeded by ``seed``
    inside a forked RNG state (the caller's random streams are untouched)."""
    names = [n for n in check_proxies(proxies) if n != "ensemble"]
    x, y = _split(batch)
    device = x.device
    out: dict[str, float] = {}
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        if "params" in names:
            out["params"] = float(count_params(net))
        if "flops" in names:
            out["flops"] = float(measure_cost(copy.deepcopy(net), x.shape[1:], device=device,
                                              latency=False)["cost/flops"])
        if "synflow" in names:
            out["synflow"] = synflow(copy.deepcopy(net), x.shape[1:], device)
        wanted = [n for n in names if n in DATA_PROXIES]
        if wanted:
            work = copy.deepcopy(net).to(device)
            out.update(data_proxies(work, x, y, wanted, loss_fn))
    return {n: out[n] for n in names}


def first_batch(datamodule, device: torch.device | str = "cpu") -> Any:
    """The first training batch of a Lightning data module as the model sees it (after the
    module's ``on_after_batch_transfer``, outside a trainer, so without augmentation); the
    training loader's order is the data module's seeded shuffle."""
    datamodule.prepare_data()
    datamodule.setup("fit")
    return model_batch(datamodule, device)


def model_batch(datamodule, device: torch.device | str = "cpu") -> Any:
    """The first batch of a data module that is set up, on ``device``, after its
    ``on_after_batch_transfer`` (what the model's forward receives, without augmentation)."""
    batch = next(iter(datamodule.train_dataloader()))
    batch = _to(batch, torch.device(device))
    hook = getattr(datamodule, "on_after_batch_transfer", None)
    if hook is None:
        return batch
    trainer = getattr(datamodule, "trainer", None)
    try:  # outside the trainer: a data module augments only while its trainer trains
        datamodule.trainer = None
        return hook(batch, 0)
    finally:
        datamodule.trainer = trainer


def _to(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: _to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to(v, device) for v in batch)
    return batch
