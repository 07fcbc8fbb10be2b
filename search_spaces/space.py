"""The search-space API: a space is declared once, as data.

A `Space` lists its dimensions (`Categorical`, `Int`, `Float`), each with a stable
hierarchical label such as ``normal/node2/op0`` or ``hp/lr``. Everything else derives
from that one declaration (the idea of NNI's ``Mutable.simplify()``):

* ``space.suggest(trial)``        - Optuna suggestions, in declaration order, active dims only;
* ``space.decisions()``           - the ordered, discrete decision list an RL controller or an
                                    evolution strategy acts on (floats become a fixed grid);
* ``space.validate(sample)``      - raises `SampleValidationError` with the reason;
* ``space.to_json`` / ``from_json`` - a genotype that round-trips;
* ``space.build(sample, input_shape, num_classes)`` - the network (`nn.Module`);
* ``space.build_backbone(sample, input_shape)`` - the same network without its head, returning
                                    each stage's feature map (conv spaces; see `backbone.py`);
* ``space.sample(rng)``           - a random valid sample (uniform over each active decision);
* ``space.size()``                - the number of distinct samples (``inf`` with floats).

A dimension may be *conditional*: ``when={"hp/optimizer": "sgd"}`` makes it active only when
another (earlier) dimension takes one of the given values. Inactive dimensions are absent from
a sample.

This module has no torch import: spaces are data, and strategies read them without loading
any framework. Builders import torch lazily inside ``build``.
"""
from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

Sample = dict[str, Any]


class SampleValidationError(ValueError):
    """A sample that breaks the space: unknown label, value out of range, or a structural rule
    (stage depths that do not add up, a cell input that does not exist). ``label`` names the
    dimension at fault when there is one."""

    def __init__(self, reason: str, label: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.label = label


# ----------------------------------------------------------------------------- dimensions
@dataclass(frozen=True)
class Dim:
    """One dimension. ``when`` maps earlier labels to the value (or list of values) that make
    this dimension active."""

    label: str
    when: Mapping[str, Any] | None = field(default=None, kw_only=True)
    description: str = field(default="", kw_only=True)

    def is_active(self, partial: Mapping[str, Any]) -> bool:
        if not self.when:
            return True
        for lab, allowed in self.when.items():
            if lab not in partial:
                return False
            allowed = allowed if isinstance(allowed, (list, tuple, set, frozenset)) else [allowed]
            if partial[lab] not in allowed:
                return False
        return True

    # subclasses implement these
    def suggest(self, trial) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def check(self, value: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def grid(self) -> list[Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def count(self) -> float:
        return float(len(self.grid()))


@dataclass(frozen=True)
class Categorical(Dim):
    """A choice among a fixed list of JSON-able values (str, int, float, bool, None)."""

    choices: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "choices", tuple(self.choices))
        if not self.choices:
            raise ValueError(f"{self.label}: a categorical dimension needs at least one choice")
        if len(set(map(repr, self.choices))) != len(self.choices):
            raise ValueError(f"{self.label}: duplicate choices {self.choices}")

    def suggest(self, trial) -> Any:
        return trial.suggest_categorical(self.label, list(self.choices))

    def check(self, value: Any) -> Any:
        for c in self.choices:
            if value == c and isinstance(value, bool) == isinstance(c, bool):
                return c
        raise SampleValidationError(
            f"{self.label}={value!r} is not one of {list(self.choices)}", self.label
        )

    def grid(self) -> list[Any]:
        return list(self.choices)


@dataclass(frozen=True)
class Int(Dim):
    """An integer in [low, high] (inclusive), with an optional step or log scale."""

    low: int = 0
    high: int = 0
    step: int = 1
    log: bool = False

    def __post_init__(self):
        if self.high < self.low:
            raise ValueError(f"{self.label}: high {self.high} < low {self.low}")
        if self.log and self.step != 1:
            raise ValueError(f"{self.label}: log scale needs step 1")
        if self.log and self.low < 1:
            raise ValueError(f"{self.label}: log scale needs low >= 1")

    def suggest(self, trial) -> int:
        return trial.suggest_int(self.label, self.low, self.high, step=self.step, log=self.log)

    def check(self, value: Any) -> int:
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value) or int(value) != value):
            raise SampleValidationError(f"{self.label}={value!r} is not an integer", self.label)
        value = int(value)
        if not self.low <= value <= self.high or (value - self.low) % self.step:
            raise SampleValidationError(
                f"{self.label}={value} is outside [{self.low}, {self.high}] step {self.step}", self.label
            )
        return value

    def grid(self, max_points: int = 64) -> list[int]:
        values = list(range(self.low, self.high + 1, self.step))
        if len(values) <= max_points:
            return values
        if self.log:
            pts = [self.low * (self.high / self.low) ** (i / (max_points - 1)) for i in range(max_points)]
        else:
            pts = [self.low + (self.high - self.low) * i / (max_points - 1) for i in range(max_points)]
        return sorted({self.check(self.low + round((p - self.low) / self.step) * self.step) for p in pts})

    def count(self) -> float:
        return float((self.high - self.low) // self.step + 1)


@dataclass(frozen=True)
class Float(Dim):
    """A real number in [low, high], optionally on a log scale. Discrete strategies see it as
    a grid of ``grid_points`` values (log-spaced when ``log``)."""

    low: float = 0.0
    high: float = 1.0
    log: bool = False
    grid_points: int = 8

    def __post_init__(self):
        if self.high < self.low:
            raise ValueError(f"{self.label}: high {self.high} < low {self.low}")
        if self.log and self.low <= 0:
            raise ValueError(f"{self.label}: log scale needs low > 0")

    def suggest(self, trial) -> float:
        return trial.suggest_float(self.label, self.low, self.high, log=self.log)

    def check(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise SampleValidationError(f"{self.label}={value!r} is not a number", self.label)
        if not self.low <= value <= self.high:
            raise SampleValidationError(
                f"{self.label}={value} is outside [{self.low}, {self.high}]", self.label
            )
        return float(value)

    def grid(self) -> list[float]:
        n = self.grid_points
        if self.low == self.high or n == 1:
            return [float(self.low)]
        if self.log:
            r = math.log(self.high / self.low)
            return [float(self.low * math.exp(r * i / (n - 1))) for i in range(n)]
        return [float(self.low + (self.high - self.low) * i / (n - 1)) for i in range(n)]

    def count(self) -> float:
        return math.inf if self.low != self.high else 1.0


@dataclass(frozen=True)
class Decision:
    """One step of a discrete strategy: pick an index into ``choices`` for ``label``.
    ``dim`` is kept so conditions can be evaluated on the partial sample."""

    label: str
    choices: tuple
    dim: Dim

    @property
    def n(self) -> int:
        return len(self.choices)


# ----------------------------------------------------------------------------- spaces
class Space:
    """Base class of every search space.

    Subclasses set ``name`` and implement ``dimensions()``; architecture spaces also implement
    ``build()`` and may add structural rules in ``check()``, a canonical ``key()`` (for
    de-duplication and table look-ups) and ``draw()`` (a diagram). Call order for a trial:
    ``suggest`` (or a strategy's own sampling) -> ``validate`` -> ``build``.
    """

    name: str = "space"
    builds_network: bool = False

    def __init__(self, **options: Any):
        self.options = options

    # -- the declaration ------------------------------------------------------------------
    def dimensions(self) -> list[Dim]:
        raise NotImplementedError

    def check(self, sample: Sample) -> None:
        """Structural rules beyond each dimension's own range. Raise SampleValidationError."""

    # -- derived ------------------------------------------------------------------------
    @property
    def dims(self) -> list[Dim]:
        cached = self.__dict__.get("_dims")
        if cached is None:
            cached = list(self.dimensions())
            labels = [d.label for d in cached]
            dup = {lab for lab in labels if labels.count(lab) > 1}
            if dup:
                raise ValueError(f"space {self.name}: duplicate labels {sorted(dup)}")
            self.__dict__["_dims"] = cached
        return cached

    def labels(self) -> list[str]:
        return [d.label for d in self.dims]

    def suggest(self, trial) -> Sample:
        """Ask an Optuna trial for a value of every active dimension, in declaration order."""
        sample: Sample = {}
        for d in self.dims:
            if d.is_active(sample):
                sample[d.label] = d.suggest(trial)
        return sample

    def decisions(self) -> list[Decision]:
        """The ordered discrete decisions (all of them; a strategy skips inactive ones with
        ``decision.dim.is_active(partial_sample)``)."""
        return [Decision(d.label, tuple(d.grid()), d) for d in self.dims]

    def sample(self, rng: random.Random, max_tries: int = 1000) -> Sample:
        """A random valid sample: each active decision's choice with equal probability, in
        declaration order (a float on its grid); an invalid draw is drawn again. The one random
        sample of the house (strategies, the preflight, ``space sample``, a supernet's uniform
        path), so one generator state gives the same sample everywhere."""
        decisions = self.decisions()
        last: SampleValidationError | None = None
        for _ in range(max_tries):
            draw: Sample = {}
            for d in decisions:
                if d.dim.is_active(draw):
                    draw[d.label] = d.choices[rng.randrange(d.n)]
            try:
                return self.validate(draw)
            except SampleValidationError as e:
                last = e
        raise SampleValidationError(f"no valid sample of space {self.name!r} in {max_tries} random draws "
                                    f"(last: {last})")

    def validate(self, sample: Mapping[str, Any]) -> Sample:
        """Return the canonical sample or raise SampleValidationError with the reason."""
        if not isinstance(sample, Mapping):
            raise SampleValidationError(f"a sample is a mapping of label to value, got {type(sample).__name__}")
        known = {d.label: d for d in self.dims}
        unknown = [k for k in sample if k not in known]
        if unknown:
            raise SampleValidationError(
                f"unknown label {unknown[0]!r} for space {self.name!r}", unknown[0]
            )
        out: Sample = {}
        for d in self.dims:
            if d.is_active(out):
                if d.label not in sample:
                    raise SampleValidationError(f"missing value for {d.label!r}", d.label)
                out[d.label] = d.check(sample[d.label])
            elif d.label in sample:
                raise SampleValidationError(
                    f"{d.label!r} is inactive here (it needs {dict(d.when or {})})", d.label
                )
        self.check(out)
        return out

    def size(self) -> float:
        """Number of distinct samples; exact for unconditional discrete spaces, an upper bound
        with conditions, ``inf`` with a continuous dimension."""
        total = 1.0
        for d in self.dims:
            total *= d.count() if not d.when else d.count() + 1
        return total

    def key(self, sample: Mapping[str, Any]) -> str:
        """A canonical string for a sample (used to spot duplicates and look samples up)."""
        return json.dumps(self.validate(sample), sort_keys=True, separators=(",", ":"))

    def to_json(self, sample: Mapping[str, Any]) -> str:
        return json.dumps(
            {"space": self.name, "options": self.options, "sample": self.validate(sample)},
            sort_keys=True,
        )

    def from_json(self, text: str) -> Sample:
        try:
            data = json.loads(text)
        except ValueError as e:
            raise SampleValidationError(f"genotype is not JSON: {e}") from None
        if not isinstance(data, dict) or "sample" not in data:
            raise SampleValidationError('a genotype is a JSON object {"space": ..., "sample": {...}}')
        if data.get("space") != self.name:
            raise SampleValidationError(f"genotype is for space {data.get('space')!r}, not {self.name!r}")
        return self.validate(data["sample"])

    def build(self, sample: Mapping[str, Any], input_shape: Sequence[int], num_classes: int):
        raise NotImplementedError(f"space {self.name!r} does not build a network")

    def build_backbone(self, sample: Mapping[str, Any], input_shape: Sequence[int]):
        """The network without its head: a `backbone.StageBackbone` returning each stage's
        feature map, with ``channels`` and ``reductions`` known before data is read. Spaces
        whose networks have no stages to expose raise NotImplementedError."""
        raise NotImplementedError(f"space {self.name!r} does not build a backbone with stage features")

    def build_supernet(self, input_shape: Sequence[int], num_classes: int):
        """One network holding every choice (see `supernet.py`); ``supernet.activate(net,
        sample)`` picks the path that ``build(sample)`` would be."""
        raise NotImplementedError(f"space {self.name!r} does not build a supernet")

    @property
    def has_supernet(self) -> bool:
        return type(self).build_supernet is not Space.build_supernet

    @property
    def has_backbone(self) -> bool:
        return type(self).build_backbone is not Space.build_backbone

    # A space whose networks take another space's backbone as their encoder (``encdec``) sets this
    # and has ``build(sample, input_shape, num_classes, encoder=None)`` and ``check_backbone``.
    takes_backbone = False

    def check_backbone(self, backbone: "Space | None") -> None:
        """Raise ValueError when this space's options do not fit the sweep's backbone space
        (``backbone``: the part that builds the encoder, or None when there is none)."""

    def features(self, sample: Mapping[str, Any]) -> dict[str, float]:
        """Numeric features of a (valid) sample beyond its decision values, for the surrogate
        models of strategies (`local_search` orders neighbours with them). A space whose samples
        are graphs returns structural features (`nb201`: its path encoding); default: none."""
        return {}

    def paths(self) -> dict[str, str]:
        """Label -> the config value its sample value sets: a dotted path in the resolved config
        (``model.init_args.lr``) or a bare name that the platform gives to the first part taking it.
        Architecture dimensions set no config value and are absent."""
        return {}

    def draw(self, sample: Mapping[str, Any], path: str) -> list[str]:
        """Draw the architecture to ``path`` (without suffix); return the files written.
        Spaces without a picture return []."""
        return []

    def describe(self) -> list[tuple[str, str, str]]:
        """(label, kind, range) rows for `nasforge space show`."""
        rows = []
        for d in self.dims:
            if isinstance(d, Categorical):
                rng = ", ".join(map(str, d.choices))
            elif isinstance(d, Int):
                rng = f"[{d.low}, {d.high}]" + (f" step {d.step}" if d.step != 1 else "") + (" log" if d.log else "")
            else:
                rng = f"[{d.low:g}, {d.high:g}]" + (" log" if d.log else "")
            if d.when:
                rng += f"  (when {dict(d.when)})"
            rows.append((d.label, type(d).__name__.lower(), rng))
        return rows

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dims={len(self.dims)}, options={self.options})"


class CompositeSpace(Space):
    """Several spaces searched together (e.g. an architecture space + ``hparams``). Labels must
    not clash; at most one part builds the network."""

    name = "composite"

    def __init__(self, parts: Iterable[Space]):
        super().__init__()
        self.parts = list(parts)
        builders = [p for p in self.parts if p.builds_network]
        # a backbone space (`registry.backbone_spaces`) and a space that puts a network on it
        # (encdec): the second builds, the first gives it its encoder
        takers = [p for p in builders if p.takes_backbone]
        givers = [p for p in builders if p.has_backbone and not p.takes_backbone]
        self.backbone = givers[0] if len(builders) == 2 and len(takers) == 1 and len(givers) == 1 else None
        if self.backbone is not None:
            builders = takers
        if len(builders) > 1:
            raise ValueError(
                "a sweep can search at most one architecture space, or a backbone space (one with "
                "build_backbone: `nasforge.search_spaces.backbone_spaces()`) with one that takes it as its "
                "encoder (encdec); got " + ", ".join(p.name for p in builders)
            )
        self.arch = builders[0] if builders else None
        if self.arch is not None and self.arch.takes_backbone:
            self.arch.check_backbone(self.backbone)
        self.builds_network = self.arch is not None
        self.name = "+".join(p.name for p in self.parts)
        self.options = {p.name: p.options for p in self.parts}
        self.dims  # a label clash between parts fails here, when the sweep is loaded

    def dimensions(self) -> list[Dim]:
        return [d for p in self.parts for d in p.dims]

    def part_sample(self, part: Space, sample: Mapping[str, Any]) -> Sample:
        mine = set(part.labels())
        return {k: v for k, v in sample.items() if k in mine}

    def check(self, sample: Sample) -> None:
        for p in self.parts:
            p.check(self.part_sample(p, sample))

    def key(self, sample: Mapping[str, Any]) -> str:
        sample = self.validate(sample)
        return "|".join(p.key(self.part_sample(p, sample)) for p in self.parts)

    def features(self, sample: Mapping[str, Any]) -> dict[str, float]:
        """Each part's features, named ``<part>:<feature>`` (parts may use the same names)."""
        return {f"{p.name}:{k}": v for p in self.parts for k, v in p.features(self.part_sample(p, sample)).items()}

    def build(self, sample, input_shape, num_classes):
        if self.arch is None:
            raise NotImplementedError(f"none of {self.name!r} builds a network")
        if self.backbone is not None:
            encoder = self.backbone.build_backbone(self.part_sample(self.backbone, sample), input_shape)
            return self.arch.build(self.part_sample(self.arch, sample), input_shape, num_classes, encoder=encoder)
        return self.arch.build(self.part_sample(self.arch, sample), input_shape, num_classes)

    def build_backbone(self, sample, input_shape):
        if self.arch is None:
            raise NotImplementedError(f"none of {self.name!r} builds a network")
        return self.arch.build_backbone(self.part_sample(self.arch, sample), input_shape)

    def paths(self) -> dict[str, str]:
        return {label: path for p in self.parts for label, path in p.paths().items()}

    def draw(self, sample, path):
        if self.arch is None:
            return []
        files = self.arch.draw(self.part_sample(self.arch, sample), path)
        if self.backbone is not None:  # the encoder's own stage table beside the decoder's
            files += self.backbone.draw(self.part_sample(self.backbone, sample), f"{path}-backbone")
        return files

    def build_supernet(self, input_shape, num_classes):
        if self.arch is None or not self.arch.has_supernet:
            raise NotImplementedError(f"none of {self.name!r} builds a supernet")
        return self.arch.build_supernet(input_shape, num_classes)

    @property
    def has_supernet(self) -> bool:
        return self.arch is not None and self.arch.has_supernet

    @property
    def has_backbone(self) -> bool:
        return self.arch is not None and self.arch.has_backbone
