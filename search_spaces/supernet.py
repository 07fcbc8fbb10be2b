"""Supernets for weight-sharing NAS: one module holding every choice of a space.

Single-path one-shot NAS (SPOS, Guo et al., ECCV 2020) and ENAS (Pham et al., ICML 2018) train
one network whose weights all candidates share, then rank candidates by their accuracy with
inherited weights. Here a supernet is the space's own network builder with every categorical
dimension replaced by a `LayerChoice`: a module that holds one candidate per choice of that
dimension, keyed by the dimension's label. So the supernet's choices come from the space's one
declaration (labels and choices), never from a second list.

* ``activate(net, sample)`` makes one path active: every `LayerChoice` runs the candidate the
  sample picks for its label (single path; the others hold their weights and get no gradient).
* ``subnet_state_dict(net, sample)`` is the stand-alone network's state dict: the active
  candidates' weights under the names ``space.build(sample)`` uses, so a candidate found on the
  supernet can be built alone with the weights it inherited.
* ``space.sample(rng)`` draws a path uniformly (SPOS): each active decision's choice
  with equal probability, redrawn until the space accepts it.

Every decision of the path is a `Choice` module. `LayerChoice` is the common one; a space whose
networks differ in more than which module sits in a slot adds its own kind (NASNet's cell
inputs, a stage's depth, a conv's dilation; see nasnet_network.py and resnet_supernet.py): a
``Choice`` reads its value from the sample (``value_of``), takes it (``activate``) and may say
how the stand-alone network's state dict differs from its own (``subnet_state``: blocks a
shallower stage lacks, input channels a narrower cell does not produce).

Spaces that can build a supernet implement ``Space.build_supernet(input_shape, num_classes)``:
``nb201`` (nb201.py), ``nasnet`` (nasnet.py), ``attention`` and ``reallocation``
(resnet_supernet.py).
This is not DARTS: nothing here mixes candidates with weights; one path runs at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from torch import nn

from .space import SampleValidationError, Space


class Choice(nn.Module):
    """One decision of the path, governed by the dimension ``label``. Subclasses implement
    ``activate(value)``; ``value_of(sample)`` is the value they take (the sample's value of
    ``label`` unless a subclass reads more labels); ``subnet_state(prefix, state)`` edits, in
    place, the stand-alone network's state dict where it differs from this module's own."""

    def __init__(self, label: str):
        super().__init__()
        self.label = label

    def value_of(self, sample: Mapping[str, Any]) -> Any:
        if self.label not in sample:
            raise SampleValidationError(f"missing value for {self.label!r}", self.label)
        return sample[self.label]

    def activate(self, value: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def subnet_state(self, prefix: str, state: dict[str, Any]) -> None:
        """Nothing to edit by default."""


class LayerChoice(Choice):
    """The candidates of one dimension (``label``), one active at a time.

    ``candidates`` maps each choice (as ``str``) to its module; ``active`` is the running
    choice (the first one until a path is activated)."""

    def __init__(self, label: str, candidates: Mapping[Any, nn.Module]):
        super().__init__(label)
        if not candidates:
            raise ValueError(f"{label}: a LayerChoice needs at least one candidate")
        self.candidates = nn.ModuleDict({str(k): m for k, m in candidates.items()})
        self.active = next(iter(self.candidates))

    def activate(self, choice: Any) -> None:
        key = str(choice)
        if key not in self.candidates:
            raise SampleValidationError(
                f"{self.label}={choice!r} has no candidate; valid: {', '.join(self.candidates)}",
                self.label,
            )
        self.active = key

    def forward(self, *args, **kwargs):
        return self.candidates[self.active](*args, **kwargs)

    def extra_repr(self) -> str:
        return f"label={self.label!r}, active={self.active!r}"


def choice_factory(space: Space, build_op: Callable[..., nn.Module]) -> Callable[..., LayerChoice]:
    """A factory ``(label, *args) -> LayerChoice`` holding ``build_op(choice, *args)`` for every
    choice that ``space`` declares for ``label`` (the choices come from the declaration)."""
    dims = {d.label: d for d in space.dims}

    def make(label: str, *args: Any) -> LayerChoice:
        if label not in dims:
            raise ValueError(f"space {space.name!r} has no dimension {label!r}")
        return LayerChoice(label, {c: build_op(c, *args) for c in dims[label].grid()})

    return make


def layer_choices(net: nn.Module) -> Iterator[tuple[str, LayerChoice]]:
    """(module name, LayerChoice) for every choice in ``net``, in module order."""
    for name, m in net.named_modules():
        if isinstance(m, LayerChoice):
            yield name, m


def choices(net: nn.Module) -> Iterator[tuple[str, Choice]]:
    """(module name, Choice) for every decision in ``net`` (LayerChoices and the others)."""
    for name, m in net.named_modules():
        if isinstance(m, Choice):
            yield name, m


def activate(net: nn.Module, sample: Mapping[str, Any]) -> None:
    """Make the path of ``sample`` active in every `Choice` of ``net`` (one label may govern
    several choices, e.g. the same cell repeated in every stage)."""
    for _, choice in choices(net):
        choice.activate(choice.value_of(sample))


def subnet_state_dict(net: nn.Module, sample: Mapping[str, Any]) -> dict[str, Any]:
    """The state dict of the stand-alone network of ``sample``: ``<choice>.candidates.<c>.<rest>``
    of the active candidate becomes ``<choice>.<rest>``; inactive candidates are dropped; then
    every module with a ``subnet_state(prefix, state)`` method (other `Choice` kinds, networks
    whose widths follow the path) edits what differs."""
    activate(net, sample)
    prefixes = {name + ".": c for name, c in layer_choices(net)}
    out = {}
    for key, value in net.state_dict().items():
        owner = max((p for p in prefixes if key.startswith(p)), key=len, default=None)
        if owner is None:
            out[key] = value
            continue
        rest = key[len(owner) :]
        head = f"candidates.{prefixes[owner].active}."
        if rest.startswith(head):
            out[owner + rest[len(head) :]] = value
    for name, m in net.named_modules():  # Choices, and networks whose widths follow the path
        if callable(getattr(m, "subnet_state", None)):
            m.subnet_state(name + "." if name else "", out)
    return out


