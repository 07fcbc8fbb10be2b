"""The `nasforge` command line.

Each command group lives in its own module (``cli.sweep``, ``cli.space``, ...) exposing
``register(subparsers)``, which adds its parser and sets ``func`` to a handler taking the
parsed arguments and returning an exit code. Modules are imported here, so they must keep
torch, Lightning, timm and W&B imports inside their handlers: `nasforge --help` has to answer
in well under a second (Lightning alone takes about 5 s to import).

Errors: a `NasforgeError` becomes one line on stderr and its exit code (2 for bad input);
Ctrl-C exits 130 after the handler has recorded what it was doing.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from nasforge.platform.errors import NasforgeError

# Command modules, in the order their groups appear in --help. `sweep` holds every command on a
# sweep; the top-level `promote`, `report` and `dashboard` are kept as its aliases.
COMMAND_MODULES = ("sweep", "space", "compare", "registry", "dashboard", "report")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nasforge")
    except PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nasforge",
        description="Neural architecture and hyperparameter search on PyTorch Lightning + Optuna + W&B.",
    )
    parser.add_argument("--version", action="version", version=f"nasforge {_version()}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version (0) and usage errors (2) end here, as argparse says
        return int(e.code or 0)
    func = getattr(args, "func", None)
    if func is None:
        # a group given without its sub-command prints that group's help
        helper = getattr(args, "print_group_help", None)
        (helper or parser.print_help)()
        return 0 if args.command is None else 2
    try:
        return int(func(args) or 0)
    except NasforgeError as e:
        print(f"nasforge: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("nasforge: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `nasforge sweep best --json | head`: the reader left; no traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not fail again
        return 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader went away
