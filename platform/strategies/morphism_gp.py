"""The Gaussian process of the `morphism` strategy (Auto-Keras, Jin, Song & Hu, KDD 2019, 3.1):
a GP over architectures whose kernel is built on their edit distance
(`nasforge.search_spaces.edit_distance`), with an upper-confidence-bound acquisition.

An edit distance is a metric but not a Euclidean one, and ``exp(-d^2)`` of a non-Euclidean metric
need not be positive semi-definite. As in Auto-Keras, the trained architectures are first
embedded with Bourgain's method: coordinate k of an architecture is its distance to a random
subset S_k of the trained ones (subsets of size 2^i, i = 1..log2 n, about log2 n of each size),
scaled by 1/sqrt(#subsets). Distances between embeddings are Euclidean, so the RBF kernel on them
is PSD for any set of architectures, trained or candidate. The GP itself is exact (Cholesky) on
standardised scores, with a length scale of the median embedded distance.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import numpy as np

from nasforge.search_spaces.edit_distance import distance_matrix
from nasforge.search_spaces.morph_arch import Arch


def bourgain_subsets(n: int, rng: random.Random) -> list[list[int]]:
    """Index subsets of n points for Bourgain's embedding: sizes 2^i (capped at n), about log2 n
    subsets of each size."""
    levels = max(1, math.ceil(math.log2(max(n, 2))))
    return [rng.sample(range(n), min(n, 2 ** i)) for i in range(1, levels + 1) for _ in range(levels)]


@dataclass
class BourgainEmbedding:
    anchors: list[Arch]
    subsets: list[list[int]]
    skip_weight: float = 1.0

    @classmethod
    def fit(cls, archs: list[Arch], seed: int = 0, skip_weight: float = 1.0) -> "BourgainEmbedding":
        return cls(list(archs), bourgain_subsets(len(archs), random.Random(seed)), skip_weight)

    def __call__(self, archs: list[Arch]) -> np.ndarray:
        """(len(archs), #subsets): each architecture's distance to each subset."""
        d = distance_matrix(list(archs), self.anchors, self.skip_weight)  # (m, n)
        coords = np.stack([d[:, s].min(axis=1) for s in self.subsets], axis=1)
        return coords / math.sqrt(len(self.subsets))


def rbf(x: np.ndarray, y: np.ndarray, length: float) -> np.ndarray:
    sq = ((x[:, None, :] - y[None, :, :]) ** 2).sum(axis=-1)
    return np.exp(-sq / (2.0 * length ** 2))


def kernel_matrix(archs: list[Arch], seed: int = 0) -> np.ndarray:
    """The kernel between ``archs`` with the embedding fitted on them (what the GP factorises)."""
    emb = BourgainEmbedding.fit(archs, seed)
    e = emb(archs)
    return rbf(e, e, _median_length(e))


def _median_length(e: np.ndarray) -> float:
    d = np.sqrt(((e[:, None, :] - e[None, :, :]) ** 2).sum(axis=-1))
    upper = d[np.triu_indices(len(e), 1)]
    med = float(np.median(upper)) if upper.size else 1.0
    return med if med > 0 else 1.0


@dataclass
class EditDistanceGP:
    """``fit(archs, scores)``, then ``predict(candidates) -> (mean, std)`` and ``ucb``."""

    noise: float = 1e-3
    seed: int = 0
    embed: BourgainEmbedding | None = field(default=None, init=False)

    def fit(self, archs: list[Arch], scores: list[float]) -> "EditDistanceGP":
        y = np.asarray(scores, dtype=float)
        self.mu, self.sd = float(y.mean()), float(y.std()) or 1.0
        self.embed = BourgainEmbedding.fit(archs, self.seed)
        self.x = self.embed(archs)
        self.length = _median_length(self.x)
        k = rbf(self.x, self.x, self.length) + self.noise * np.eye(len(y))
        self.chol = np.linalg.cholesky(k)
        self.alpha = np.linalg.solve(self.chol.T, np.linalg.solve(self.chol, (y - self.mu) / self.sd))
        return self

    def predict(self, archs: list[Arch]) -> tuple[np.ndarray, np.ndarray]:
        e = self.embed(archs)
        ks = rbf(e, self.x, self.length)  # (m, n)
        mean = ks @ self.alpha
        v = np.linalg.solve(self.chol, ks.T)
        var = np.clip(1.0 - (v ** 2).sum(axis=0), 1e-12, None)
        return self.mu + self.sd * mean, self.sd * np.sqrt(var)

    def ucb(self, archs: list[Arch], beta: float) -> np.ndarray:
        mean, std = self.predict(archs)
        return mean + beta * std
