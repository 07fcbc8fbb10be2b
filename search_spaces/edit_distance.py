"""The edit distance between two `morphable` architectures (Auto-Keras, Jin, Song & Hu, KDD 2019,
section 3.1): how many (weighted) edits turn one network into the other.

    d(a, b) = sum over stages of D_layers(stage_a, stage_b) + skip_weight * D_skips(a, b)

* ``D_layers`` aligns the two stages' layer sequences by dynamic programming (Levenshtein):
  inserting or deleting a layer costs 1, matching two layers costs
  ``|w - w'| / max(w, w') + 0.5 [k != k']`` (a metric on layers);
* ``D_skips`` matches the two sets of skip connections with the Hungarian algorithm
  (``scipy.optimize.linear_sum_assignment``): a skip is (u, delta, op) with u the topological
  index of its source layer and delta the layers it jumps; two skips cost
  ``min(|u - u'| + |delta - delta'| + [op != op'], 2)`` and a skip left unmatched costs 1 (matching
  with padding under a truncated metric, so ``D_skips`` is a metric on sets).

Both parts are metrics, so ``d`` is one: zero only between equal architectures, symmetric, and
obeying the triangle inequality. The kernel built on it (`platform/strategies/morphism_gp.py`)
embeds the distances in Euclidean space first (Bourgain), so that it is positive semi-definite.

The strategy asks for the distances of every candidate to every trained architecture at each
proposal, and the same stages and skip sets recur across candidates and proposals, so both parts
are memoised (architectures are hashable tuples; the caches are bounded).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.optimize import linear_sum_assignment

from .morph_arch import Arch, Layer

UNMATCHED = 1.0  # a skip that has no partner


def layer_cost(a: Layer, b: Layer) -> float:
    return abs(a.width - b.width) / max(a.width, b.width) + (0.5 if a.kernel != b.kernel else 0.0)


@lru_cache(maxsize=1 << 16)
def layer_distance(a: tuple[Layer, ...], b: tuple[Layer, ...]) -> float:
    """Levenshtein distance between two layer sequences with `layer_cost` substitutions."""
    n, m = len(a), len(b)
    dp = np.zeros((n + 1, m + 1))
    dp[:, 0] = np.arange(n + 1)
    dp[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            dp[i, j] = min(dp[i - 1, j] + 1, dp[i, j - 1] + 1, dp[i - 1, j - 1] + layer_cost(a[i - 1], b[j - 1]))
    return float(dp[n, m])


def skips(arch: Arch) -> list[tuple[int, int, str]]:
    """(u, delta, op) per skip: u the source's index in the whole network's layer order."""
    out, offset = [], 0
    for stage in arch:
        for i, layer in enumerate(stage):
            if layer.skip is not None:
                op, j = layer.skip
                out.append((offset + j, i - j, op))
        offset += len(stage)
    return out


@lru_cache(maxsize=1 << 16)
def skip_distance(a: Arch, b: Arch) -> float:
    sa, sb = skips(a), skips(b)
    n = len(sa) + len(sb)
    if n == 0:
        return 0.0
    cost = np.zeros((n, n))  # rows: a's skips then b's nulls; columns: b's skips then a's nulls
    for i, (u, d, op) in enumerate(sa):
        for j, (u2, d2, op2) in enumerate(sb):
            cost[i, j] = min(abs(u - u2) + abs(d - d2) + (op != op2), 2 * UNMATCHED)
        cost[i, len(sb):] = UNMATCHED
    cost[len(sa):, :len(sb)] = UNMATCHED
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].sum())


def edit_distance(a: Arch, b: Arch, skip_weight: float = 1.0) -> float:
    a, b = tuple(map(tuple, a)), tuple(map(tuple, b))  # hashable, for the caches
    stages = max(len(a), len(b))
    pad = lambda arch: arch + ((),) * (stages - len(arch))  # noqa: E731 - a missing stage is empty
    layers = sum(layer_distance(x, y) for x, y in zip(pad(a), pad(b)))
    return layers + skip_weight * skip_distance(a, b)


def distance_matrix(rows: list[Arch], cols: list[Arch], skip_weight: float = 1.0) -> np.ndarray:
    return np.array([[edit_distance(a, b, skip_weight) for b in cols] for a in rows]).reshape(len(rows), len(cols))
