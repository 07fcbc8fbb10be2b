"""Helpers shared by the architecture-space tests (attention, reallocation): a real CIFAR-10
batch read from the shared zip, one SGD step, random samples drawn through Optuna (the path a
sweep takes) and an exhaustive walk over a small space's samples."""
from __future__ import annotations

import functools
import io
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def cifar_batch(zip_path: Path, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` real CIFAR-10 training images, one class after another, normalised:
    (n, 3, 32, 32) float and (n,) int64 labels."""
    x, y = _cifar_batch(str(zip_path), n)
    return x.clone(), y.clone()


@functools.lru_cache(maxsize=4)
def _cifar_batch(zip_path: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    with zipfile.ZipFile(zip_path) as z:
        names = sorted(m for m in z.namelist() if m.startswith("train/") and m.endswith(".jpg"))
        classes = sorted({m.split("/")[1] for m in names})
        by_class = {c: [m for m in names if m.split("/")[1] == c] for c in classes}
        xs, ys = [], []
        for i in range(n):
            c = classes[i % len(classes)]
            name = by_class[c][i // len(classes)]
            img = Image.open(io.BytesIO(z.read(name))).convert("RGB")
            xs.append(np.asarray(img, dtype=np.float32) / 255.0)  # (32, 32, 3)
            ys.append(classes.index(c))
    x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2)  # (n, 3, 32, 32)
    x = (x - torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)) / torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    return x.contiguous(), torch.tensor(ys, dtype=torch.int64)


def train_one_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """One SGD step on (x, y); asserts the loss is finite and the weights moved. Returns the loss."""
    model.train()
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert torch.isfinite(loss), f"loss is {loss.item()}"
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters())), "no weight changed"
    return loss.item()


def random_samples(space, n: int, seed: int = 0) -> list[dict]:
    """``n`` samples drawn by Optuna's RandomSampler through ``space.suggest`` (as a sweep
    does), each validated."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        sample = space.suggest(trial)
        out.append(space.validate(sample))
        study.tell(trial, 0.0)
    return out


def enumerate_samples(space) -> list[dict]:
    """Every sample of a small discrete space, walking its decisions in order and skipping the
    inactive ones (what a discrete strategy sees)."""
    decisions = space.decisions()
    out: list[dict] = []

    def walk(i: int, partial: dict) -> None:
        if i == len(decisions):
            out.append(dict(partial))
            return
        d = decisions[i]
        if not d.dim.is_active(partial):
            walk(i + 1, partial)
            return
        for c in d.choices:
            partial[d.label] = c
            walk(i + 1, partial)
            del partial[d.label]

    walk(0, {})
    return out


def assert_path_equals_standalone(space, shape, seed: int, batch: int) -> None:
    """A supernet of ``space`` with one path of a random sample active (weights redrawn, so a
    mix-up would show) gives exactly the stand-alone network's output, with the weights
    ``subnet_state_dict`` hands over loaded strictly, in train and in eval mode."""
    import random

    from nasforge.search_spaces.supernet import activate, subnet_state_dict

    supernet = space.build_supernet(shape, 10)
    for p in supernet.parameters():
        torch.nn.init.normal_(p, std=0.3)
    sample = space.sample(random.Random(seed))
    alone = space.build(sample, shape, 10)
    alone.load_state_dict(subnet_state_dict(supernet, sample), strict=True)  # every weight, no extra
    activate(supernet, sample)
    x = torch.randn(batch, *shape)
    for train in (True, False):  # batch statistics, then running statistics
        supernet.train(train)
        alone.train(train)
        torch.testing.assert_close(supernet(x), alone(x), rtol=0, atol=0)
