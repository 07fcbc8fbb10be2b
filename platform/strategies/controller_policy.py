"""The RL controller's policy (see `controller`): an LSTM over the space's decision sequence with
one embedding table and one head per decision, ENAS-shaped logits, and the one-thread context its
maths runs in (bitwise-reproducible across processes)."""
from __future__ import annotations

import contextlib


@contextlib.contextmanager
def one_thread():
    """Policy maths on one thread: bitwise-reproducible across processes, and it leaves the
    trial's own thread setting alone."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def build_policy(decisions, o, seed: int):
    """The controller's LSTM policy over ``decisions``, initialised uniformly in
    +/- ``o.init_range`` from ``seed`` (``o``: `ControllerOptions`)."""
    import torch
    from torch import nn

    class Policy(nn.Module):
        """LSTM over the decision sequence; one embedding table and one head per decision."""

        def __init__(self):
            super().__init__()
            H = o.hidden
            self.go = nn.Parameter(torch.zeros(1, H))  # the first step's input
            self.cells = nn.ModuleList(nn.LSTMCell(H, H) for _ in range(o.layers))
            self.embed = nn.ModuleList(nn.Embedding(d.n, H) for d in decisions)
            self.heads = nn.ModuleList(nn.Linear(H, d.n, bias=False) for d in decisions)

        def logits(self, i: int, h: torch.Tensor) -> torch.Tensor:  # (B, H) -> (B, n_i)
            z = self.heads[i](h)
            if o.temperature:
                z = z / o.temperature
            if o.tanh_constant:
                z = o.tanh_constant * torch.tanh(z)
            return z

        def step(self, x, state):  # x (B, H); state: per layer (h, c), each (B, H)
            new = []
            for cell, (h, c) in zip(self.cells, state):
                h, c = cell(x, (h, c))
                new.append((h, c))
                x = h
            return x, new

    gen = torch.Generator().manual_seed(seed)
    policy = Policy()
    with torch.no_grad():
        for p in policy.parameters():
            p.copy_(torch.rand(p.shape, generator=gen) * 2 * o.init_range - o.init_range)
    return policy
