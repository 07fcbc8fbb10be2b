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

# Command modules, in the order their groups appear in --help. A module not written yet is
# skipped, so the CLI works while the project grows.
COMMAND_MODULES = ("sweep", "space", "compare", "dashboard", "report", "registry")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nasforge",
        description="Neural architecture and hyperparameter search on PyTorch Lightning + Optuna + W&B.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"{__package__}.{name}":
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from importlib.metadata import version

        print(f"nasforge {version('nasforge')}")
        return 0
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
