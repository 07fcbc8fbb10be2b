"""The edit distance between morphable architectures is a metric (examples worked out by hand, and
the metric axioms on random architectures), and the Bourgain-embedded kernel the morphism
strategy's GP uses is positive semi-definite."""
from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nasforge.platform.strategies.morphism_gp import EditDistanceGP, kernel_matrix
from nasforge.search_spaces import create_space
from nasforge.search_spaces.edit_distance import edit_distance
from nasforge.search_spaces.morph_arch import Layer

SPACE = create_space("morphable", stages=2, max_depth=5, max_width=128)
L = Layer

# (a, b, distance worked out by hand)
HAND = [
    (((L(16),),), ((L(16),),), 0.0),
    (((L(16),),), ((L(32),),), 0.5),                       # |16 - 32| / 32
    (((L(24),), (L(32),)), ((L(32),), (L(32),)), 0.25),    # |24 - 32| / 32 in stage 1
    (((L(16, 3),),), ((L(16, 5),),), 0.5),                 # another kernel
    (((L(16),),), ((L(16), L(16)),), 1.0),                 # one layer inserted
    (((L(16),), (L(32),)), ((L(16),), (L(32), L(48))), 1.0),
    (((L(16), L(32)),), ((L(16), L(16), L(32)),), 1.0),    # aligned: insert, not two substitutions
    (((L(16), L(16), L(16, 3, ("add", 0))),), ((L(16), L(16), L(16)),), 1.0),            # a skip unmatched
    (((L(16), L(16), L(16, 3, ("add", 0))),), ((L(16), L(16), L(16, 3, ("concat", 0))),), 1.0),  # op
    # (u, delta) = (0, 2) against (1, 1): |0 - 1| + |2 - 1| = 2, the same as leaving both unmatched
    (((L(16), L(16), L(16, 3, ("add", 0))),), ((L(16), L(16), L(16, 3, ("add", 1))),), 2.0),
    # stage 2's skip sits after stage 1's two layers: u = 2 + 0 against u = 1 + 0, one apart
    (((L(16), L(16)), (L(32), L(32, 3, ("add", 0)))), ((L(16),), (L(32), L(32, 3, ("add", 0)))), 1.0 + 1.0),
]


@pytest.mark.parametrize("a,b,expected", HAND)
def test_hand_worked_distances(a, b, expected):
    assert edit_distance(a, b) == pytest.approx(expected)
    assert edit_distance(b, a) == pytest.approx(expected)


def test_hand_worked_triangle():
    e, f, h = (tuple((L(16), L(16), L(16, 3, s)) for s in (("add", 0), None, ("add", 1))))
    assert edit_distance((e,), (h,)) <= edit_distance((e,), (f,)) + edit_distance((f,), (h,))


def arch(seed: int):
    return SPACE.arch(SPACE.sample(random.Random(seed)))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10 ** 6), st.integers(0, 10 ** 6), st.integers(0, 10 ** 6))
def test_metric_axioms_on_random_triples(sa, sb, sc):
    a, b, c = arch(sa), arch(sb), arch(sc)
    assert edit_distance(a, a) == 0.0
    assert (edit_distance(a, b) == 0.0) == (a == b)
    assert edit_distance(a, b) == pytest.approx(edit_distance(b, a))
    assert edit_distance(a, c) <= edit_distance(a, b) + edit_distance(b, c) + 1e-9


def test_kernel_of_fifty_random_architectures_is_positive_semidefinite():
    archs = [arch(s) for s in range(50)]
    k = kernel_matrix(archs, seed=3)
    assert np.allclose(k, k.T)
    assert np.linalg.eigvalsh(k).min() >= -1e-9
    assert np.allclose(np.diag(k), 1.0)


def test_gp_interpolates_what_it_saw_and_is_unsure_far_from_it():
    rng = random.Random(0)
    seed_arch = SPACE.seed_arch()
    near = [seed_arch] + [SPACE.arch(SPACE.sample(rng)) for _ in range(11)]
    scores = [float(sum(len(s) for s in a)) for a in near]  # deeper scores higher
    gp = EditDistanceGP(noise=1e-4).fit(near, scores)
    mean, std = gp.predict(near)
    assert np.allclose(mean, scores, atol=0.05 * np.std(scores))
    far = ((L(128, 1),) * 5, (L(128, 1),) * 5)
    assert gp.predict([far])[1][0] > 5 * std.max()
    assert gp.ucb([far], beta=2.0)[0] > gp.predict([far])[0][0]
