"""Look spaces up by name (the timm ``register_model`` / ``create_model`` pattern).

``@register_space`` adds a `Space` subclass under its ``name``; ``create_space(name, **options)``
builds one and raises `ValueError` listing the valid names for an unknown one. Spaces defined in
this package are imported on first look-up, so importing the registry stays cheap.
"""
from __future__ import annotations

import importlib
import sys
from importlib.metadata import entry_points
from typing import Any, Iterable, Mapping

from .space import CompositeSpace, Space

_SPACES: dict[str, type[Space]] = {}

# Modules whose import registers the built-in spaces.
_BUILTIN_MODULES = (
    "hparams",
    "params",
    "convnet",
    "nasnet",
    "nb201",
    "attention",
    "reallocation",
    "segmentation",
    "adaptive",
    "morphable",
)


def register_space(cls: type[Space]) -> type[Space]:
    if not getattr(cls, "name", None) or cls.name == Space.name:
        raise ValueError(f"{cls.__name__} needs a class attribute `name`")
    if cls.name in _SPACES and _SPACES[cls.name] is not cls:
        raise ValueError(f"space name {cls.name!r} is already registered by {_SPACES[cls.name].__name__}")
    _SPACES[cls.name] = cls
    return cls


SPACE_GROUP = "nasforge.spaces"  # entry points of installed plugins: name -> "module:SpaceClass"
_INSTALLED: dict[str, tuple[tuple[str, ...], tuple]] = {}  # group -> (sys.path scanned, its entry points)


def installed_entry_points(group: str) -> tuple:
    """The entry points that installed distributions declare in ``group`` (spaces here, task
    aliases in `platform.engine.resolve`). Distributions are found through ``sys.path``, so the
    scan, which reads every installed distribution's metadata (~50 ms), runs again only when
    ``sys.path`` changed: names are looked up several times a trial."""
    path = tuple(sys.path)
    hit = _INSTALLED.get(group)
    if hit is None or hit[0] != path:
        hit = _INSTALLED[group] = (path, tuple(entry_points(group=group)))
    return hit[1]


def _load_builtins() -> None:
    for mod in _BUILTIN_MODULES:
        importlib.import_module(f"{__package__}.{mod}")
    for ep in installed_entry_points(SPACE_GROUP):
        if ep.name not in _SPACES:
            register_space(ep.load())


def import_space(class_path: str) -> type[Space]:
    """A user's `Space` subclass by class path (``pkg.mod.Class`` or ``pkg.mod:Class``), registered
    under its ``name``; the import error propagates."""
    mod, _, attr = class_path.partition(":") if ":" in class_path else class_path.rpartition(".")
    cls = getattr(importlib.import_module(mod), attr)
    if not (isinstance(cls, type) and issubclass(cls, Space)):
        raise ValueError(f"{class_path!r} is not a Space subclass")
    return register_space(cls)


def list_spaces() -> list[str]:
    _load_builtins()
    return sorted(_SPACES)


def backbone_spaces() -> list[str]:
    """The registered spaces whose networks give a backbone (``build_backbone``), sorted: what a
    space that takes one (``encdec``) can be paired with."""
    _load_builtins()
    return sorted(n for n, cls in _SPACES.items() if cls.build_backbone is not Space.build_backbone)


def get_space_class(name: str) -> type[Space]:
    _load_builtins()
    if name not in _SPACES:
        raise ValueError(f"unknown space {name!r}; valid: {', '.join(sorted(_SPACES))}")
    return _SPACES[name]


def create_space(name: str, **options: Any) -> Space:
    return get_space_class(name)(**options)


def create_composite(parts: Iterable[Mapping[str, Any]]) -> Space:
    """Build the space of a sweep file's ``space:`` list (``[{name, options}, ...]``); a single
    part is returned as itself."""
    spaces = [(import_space(p["class_path"]) if p.get("class_path") else get_space_class(p["name"]))(
        **(p.get("options") or {})) for p in parts]
    if len(spaces) == 1:
        if spaces[0].takes_backbone:
            spaces[0].check_backbone(None)  # e.g. encdec's encoder "backbone" with no backbone space
        return spaces[0]
    return CompositeSpace(spaces)
