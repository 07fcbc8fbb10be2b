"""Zero-cost proxies: each equals its value worked out by hand on a tiny network, leaves the
network as it was, is a function of its seed, and gives the worst score where it is undefined."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nasforge.platform.engine.proxies import PROXIES, WORST, score_network
from nasforge.platform.strategies.proxy_prior import ensemble_scores
from nasforge.search_spaces.nb201 import LABELS, NB201Space


def linear(*rows) -> nn.Linear:
    layer = nn.Linear(len(rows[0]), len(rows), bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(rows, dtype=torch.float32))
    return layer


def test_synflow_of_two_linear_layers_is_twice_c_times_a_plus_b():
    # R = |c| (|a| + |b|) on an all-ones input; |w dR/dw| sums to |c||a| + |c||b| + |c|(|a| + |b|)
    net = nn.Sequential(linear([2.0, -3.0]), nn.BatchNorm1d(1), linear([-0.5]))
    got = score_network(net, torch.randn(4, 2), ["synflow"])["synflow"]
    assert got == pytest.approx(2 * 0.5 * (2 + 3))


def test_loss_proxies_of_one_linear_layer_match_the_softmax_gradient():
    w = [[1.0, -1.0], [2.0, 0.5]]
    x, y = torch.tensor([[1.0, 2.0]]), torch.tensor([0])
    z = [w[0][0] * 1 + w[0][1] * 2, w[1][0] * 1 + w[1][1] * 2]  # logits (-1, 3)
    e = [math.exp(v) for v in z]
    p = [v / sum(e) for v in e]
    dz = [p[0] - 1, p[1]]  # dL/dz of the cross-entropy of class 0
    g = [[dz[k] * xi for xi in (1.0, 2.0)] for k in range(2)]  # dL/dW = dz x^T
    got = score_network(linear(*w), (x, y), ["snip", "grad_norm", "fisher", "params", "flops"])
    assert got["snip"] == pytest.approx(sum(abs(w[k][i] * g[k][i]) for k in range(2) for i in range(2)))
    assert got["grad_norm"] == pytest.approx(math.sqrt(sum(v * v for row in g for v in row)))
    assert got["fisher"] == pytest.approx(0.5 * sum((z[k] * dz[k]) ** 2 for k in range(2)))
    assert got["params"] == 4 and got["flops"] == 8  # a 1x2 @ 2x2 product: 4 multiply-adds


def test_naswot_is_the_log_determinant_of_the_agreement_kernel():
    x = torch.tensor([[1.0, -1.0], [1.0, 1.0], [-1.0, -1.0]])  # codes 10, 11, 00
    net = nn.Sequential(nn.ReLU(), linear([1.0, 1.0], [1.0, -1.0]))
    # K = [[2, 1, 1], [1, 2, 0], [1, 0, 2]], det 4
    assert score_network(net, (x, torch.tensor([0, 1, 0])), ["naswot"])["naswot"] == pytest.approx(math.log(4))


def test_jacob_cov_of_a_linear_map_sees_two_identical_jacobians():
    # every example's input gradient is (a, b): correlation matrix of ones, eigenvalues 2 and 0
    k = 1e-5
    got = score_network(linear([2.0, -3.0]), torch.randn(2, 2), ["jacob_cov"])["jacob_cov"]
    assert got == pytest.approx(-(math.log(2 + k) + 1 / (2 + k) + math.log(k) + 1 / k), rel=1e-6)


def small_nb201(ops: list[str] | None = None) -> nn.Module:
    space = NB201Space(C=4, N=1)
    sample = dict(zip(LABELS, ops or ["nor_conv_3x3", "skip_connect", "nor_conv_1x1", "avg_pool_3x3",
                                      "none", "nor_conv_3x3"]))
    torch.manual_seed(0)
    return space.build(sample, (3, 8, 8), 10)


def cifar_like_batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 10, (8,), generator=g)


def test_scoring_leaves_parameters_buffers_and_modes_bit_identical():
    net = small_nb201()
    net.eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    modes = [m.training for m in net.modules()]
    score_network(net, cifar_like_batch(), PROXIES, seed=3)
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [m.training for m in net.modules()] == modes
    assert all(p.grad is None for p in net.parameters())


def test_scores_are_a_function_of_the_seed():
    net = nn.Sequential(nn.Flatten(), nn.Linear(192, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10))
    batch = cifar_like_batch()
    a = score_network(net, batch, PROXIES, seed=1)
    assert a == score_network(net, batch, PROXIES, seed=1)
    assert a["snip"] != score_network(net, batch, PROXIES, seed=2)["snip"]  # dropout draws follow the seed


def test_a_cell_of_only_none_edges_gets_the_worst_score_and_no_nan():
    got = score_network(small_nb201(["none"] * 6), cifar_like_batch(), PROXIES)
    assert all(math.isfinite(v) for v in got.values())
    assert {k: v for k, v in got.items() if k not in ("params", "flops")} == {
        k: WORST for k in PROXIES if k not in ("params", "flops")}
    ordinary = score_network(small_nb201(), cifar_like_batch(), PROXIES)
    assert all(WORST < v for v in ordinary.values())


def test_an_unknown_proxy_name_is_refused_with_the_valid_ones():
    with pytest.raises(ValueError, match="unknown proxy 'zen'.*naswot"):
        score_network(small_nb201(), cifar_like_batch(), ["zen"])


def test_the_ensemble_is_the_mean_rank_of_its_members():
    rows = [{"a": 1.0, "b": 30.0}, {"a": 3.0, "b": 10.0}, {"a": 2.0, "b": WORST}]
    # ranks a: 1, 3, 2; b: 3, 2, 1 -> means 2, 2.5, 1.5, over 3 rows
    assert ensemble_scores(rows, ["a", "b"]) == pytest.approx([2 / 3, 2.5 / 3, 1.5 / 3])
