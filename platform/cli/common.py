"""Arguments shared by the commands: one spelling, one help text, one default each.

A command on an existing sweep takes ``NAME`` with ``--root`` and ``--storage``
(`add_sweep_ref`); a read command takes ``--json`` (`add_json`). ``--root`` defaults to
``$NASFORGE_ROOT`` or ``./runs``, as ``--registry`` defaults to ``$NASFORGE_REGISTRY``.
"""
from __future__ import annotations

import argparse
import os

ROOT_ENV = "NASFORGE_ROOT"


def default_root() -> str:
    return os.environ.get(ROOT_ENV) or "runs"


def add_root(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", default=default_root(), metavar="DIR",
                   help=f"folder holding the sweeps' run folders (default: ${ROOT_ENV} or ./runs)")


def add_sweep_ref(p: argparse.ArgumentParser) -> None:
    """``NAME [--root DIR] [--storage URL]``: an existing sweep, found through its run folder."""
    p.add_argument("name", help="sweep name (its run folder is <root>/NAME)")
    add_root(p)
    add_storage(p)


def add_storage(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", default=None, metavar="URL",
                   help="the study's storage URL, if not the one recorded in the run folder")


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON (for scripts) instead of tables")


def add_set(p: argparse.ArgumentParser, what: str, example: str) -> None:
    """``--set KEY=VALUE`` (repeatable, the value read as YAML): the one spelling of an override."""
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="set_values",
                   help=f"{what}, value in YAML (e.g. --set {example}); repeatable")


def parse_key_values(pairs: list[str], example: str) -> dict:
    """{KEY: YAML value} of ``--set KEY=VALUE`` items, or a one-line ConfigError naming the item."""
    import yaml

    from nasforge.platform.errors import ConfigError

    out = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set {example}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML") from None
    return out


def add_alias(subparsers, name: str, configure, help: str) -> None:
    """The old top-level spelling ``nasforge NAME`` of ``nasforge sweep NAME``, kept as an alias."""
    p = subparsers.add_parser(name, help=f"{help} (same as `nasforge sweep {name}`)")
    configure(p)
