"""The morphable space and its function-preserving operations: a trained network's child gives the
same outputs in eval mode on real CIFAR-10 images, per operation and along a chain of five, and
every child is an ordinary sample of the space (it rebuilds, round-trips as JSON and draws)."""
from __future__ import annotations

import random

import pytest
import torch

from arch_helpers import cifar_batch
from nasforge.search_spaces import SampleValidationError, create_space
from nasforge.search_spaces.morph_network import MorphNet
from nasforge.search_spaces.morph_arch import Layer
from nasforge.search_spaces.morphism import Morph, apply_arch, apply_state, random_morph

pytestmark = pytest.mark.usefixtures("one_thread")
SPACE = create_space("morphable", stages=2, max_depth=5, max_width=128)


def trained(arch, x, y, steps: int = 5) -> MorphNet:
    """A network of ``arch`` after a few SGD steps on (x, y): its BN statistics and weights are no
    longer those of a fresh network."""
    torch.manual_seed(0)
    net = MorphNet(arch, 3, 10)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    net.train()
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def child_of(arch, net: MorphNet, morphs) -> tuple[tuple, MorphNet]:
    state = net.state_dict()
    for m in morphs:
        state = apply_state(arch, state, m)
        arch = apply_arch(arch, m)
    child = MorphNet(SPACE.arch(SPACE.sample_of(arch)), 3, 10)  # rebuilt from its genotype
    child.load_state_dict(state)
    return arch, child.eval()


@pytest.fixture(scope="module")
def images(cifar10_zip):
    return cifar_batch(cifar10_zip, 32)


# a parent with two layers per stage and an added skip in stage 2, so every operation meets
# both a plain layer and a skip
PARENT = ((Layer(16, 3), Layer(24, 5)), (Layer(32, 3), Layer(32, 3), Layer(40, 1, ("add", 0))))


@pytest.mark.parametrize("morph", [
    Morph("deepen", 0, 1, 3),
    Morph("deepen", 1, 0, 5),
    Morph("deepen", 1, 2, 3),  # before the layer with the skip: the skip's source index moves
    Morph("widen", 0, 0, 32, seed=1),
    Morph("widen", 1, 0, 64, seed=2),  # the widened layer feeds a later skip
    Morph("widen", 1, 2, 48, seed=3),  # the last layer: the head's weights are split
    Morph("skip", 0, 1, "add:0", seed=4),
    Morph("skip", 1, 1, "add:0", seed=5),
    Morph("skip", 0, 1, "concat:0"),
    Morph("skip", 1, 1, "concat:0"),
], ids=lambda m: f"{m.kind}-{m.stage}-{m.layer}-{m.value}")
def test_each_operation_keeps_a_trained_networks_outputs_on_real_images(images, morph):
    x, y = images
    parent = trained(PARENT, x, y)
    arch, child = child_of(PARENT, parent, [morph])
    assert arch != PARENT
    with torch.no_grad():
        torch.testing.assert_close(child(x), parent(x), rtol=1e-4, atol=1e-4)


def test_widened_concatenated_layer_keeps_outputs_after_its_consumer_is_widened(images):
    x, y = images
    parent = trained(PARENT, x, y)
    arch, child = child_of(PARENT, parent, [Morph("skip", 1, 1, "concat:0"), Morph("widen", 1, 0, 48, seed=7),
                                            Morph("deepen", 1, 2, 3), Morph("widen", 1, 2, 96, seed=8)])
    assert arch[1][2].width == 96  # the inserted layer is as wide as the concatenation it copies
    with torch.no_grad():
        torch.testing.assert_close(child(x), parent(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("seed", range(6))
def test_a_chain_of_five_random_operations_keeps_outputs_and_stays_in_the_space(images, seed, tmp_path):
    x, y = images
    rng = random.Random(seed)
    arch0 = SPACE.arch(SPACE.sample(rng))
    parent = trained(arch0, x, y, steps=3)
    arch, morphs = arch0, []
    for _ in range(5):
        morphs.append(random_morph(SPACE, arch, rng))
        arch = apply_arch(arch, morphs[-1])
    arch, child = child_of(arch0, parent, morphs)
    with torch.no_grad():
        torch.testing.assert_close(child(x), parent(x), rtol=1e-4, atol=1e-4)
    sample = SPACE.sample_of(arch)
    assert SPACE.arch(SPACE.from_json(SPACE.to_json(sample))) == arch
    assert all(p.endswith((".png", ".svg")) for p in SPACE.draw(sample, str(tmp_path / "child")))
    assert [Morph.from_list(m.to_list()) for m in morphs] == morphs


def test_operations_that_leave_the_arch_or_the_space_are_refused():
    with pytest.raises(ValueError, match="deepen"):
        apply_arch(PARENT, Morph("deepen", 0, 0, 3))  # before the first layer: its input is the image
    with pytest.raises(ValueError, match="widen"):
        apply_arch(PARENT, Morph("widen", 0, 0, 8))
    with pytest.raises(ValueError, match="skip"):
        apply_arch(PARENT, Morph("skip", 1, 2, "add:1"))  # the layer has a skip already
    with pytest.raises(SampleValidationError):
        SPACE.sample_of(apply_arch(PARENT, Morph("widen", 0, 0, 256)))  # wider than max_width


def test_seed_network_is_a_sample_and_builds(images):
    x, _ = images
    sample = SPACE.sample_of(SPACE.seed_arch())
    assert SPACE.build(sample, (3, 32, 32), 10)(x).shape == (32, 10)
