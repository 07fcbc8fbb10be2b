"""`nasforge space ...`: look at the search spaces from the command line.

* ``nasforge space list``             - every registered space, its size, a one-line description;
* ``nasforge space show NAME``        - its dimensions (label, kind, range) and size;
* ``nasforge space sample NAME``      - K random samples (Optuna's RandomSampler through
  ``space.suggest``, the path a sweep takes), each built for ``--input`` and ``--classes``, run
  forward and backward on a batch of 2 random inputs (a smoke test of the builder, not training),
  and tabulated with genotype key, params and FLOPs (``cost.measure_cost``). With ``--draw DIR``
  each sample's diagram is written there. Exits 1 naming every sample that failed.

``--set KEY=VALUE`` passes a space option (``--set C=8 --set N=1``), values read as YAML scalars;
``--json`` prints what the tables show, for scripts.
An unknown space name is a UsageError (one line, exit 2). torch, optuna and the spaces are
imported inside the handlers, so ``nasforge --help`` stays fast.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import sys
from typing import Any

from nasforge.platform.cli.common import add_json, add_set, parse_key_values
from nasforge.platform.errors import ConfigError, UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser("space", help="list, show and sample search spaces",
                                   description="List, show and sample the registered search spaces.")
    parser.set_defaults(print_group_help=parser.print_help)
    sub = parser.add_subparsers(dest="space_command", metavar="SUBCOMMAND")

    p = sub.add_parser("list", help="every registered space with its size")
    add_json(p)
    p.set_defaults(func=_list)

    def with_options(p):
        add_set(p, "a space option", "C=8")

    p = sub.add_parser("show", help="a space's dimensions and size")
    p.add_argument("name", help="space name (see `nasforge space list`)")
    with_options(p)
    add_json(p)
    p.set_defaults(func=_show)

    p = sub.add_parser("sample", help="build random samples, run forward+backward, tabulate params/FLOPs")
    p.add_argument("name", help="space name (see `nasforge space list`)")
    p.add_argument("--n", type=int, default=5, help="number of samples (default 5)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--input", default="3x32x32", metavar="CxHxW", help="input shape (default 3x32x32)")
    p.add_argument("--classes", type=int, default=10, help="number of classes (default 10)")
    p.add_argument("--draw", metavar="DIR", help="write each sample's diagram (PNG+SVG) into DIR")
    with_options(p)
    p.set_defaults(func=_sample)


# ----------------------------------------------------------------------------- helpers
def _json_size(size: float | None) -> int | None:
    """A space's size in JSON: an integer, or null when it needs options or is infinite (floats)."""
    return None if size is None or size == math.inf else int(size)


def _create(name: str, options: dict[str, Any]):
    from nasforge.search_spaces import create_space, list_spaces

    if name not in list_spaces():
        raise UsageError(f"unknown space {name!r}; valid: {', '.join(list_spaces())}")
    try:
        return create_space(name, **options)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"space {name!r}: {e}") from None


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(p) for p in text.lower().split("x"))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(f"--input {text!r} is not CxHxW, e.g. 3x32x32")
    return shape


def format_size(size: float) -> str:
    if math.isinf(size):
        return "inf (continuous)"
    if size < 1e7:
        return f"{int(size):,}"
    return f"{size:.3g}"


def _one_line(cls) -> str:
    import inspect

    for doc in (cls.__doc__, inspect.getmodule(cls).__doc__ if inspect.getmodule(cls) else None):
        if doc and doc.strip():
            return doc.strip().splitlines()[0].strip()
    return ""


def short_key(key: str, width: int = 44) -> str:
    """A key that fits a table cell: its head and a hash of the whole."""
    if len(key) <= width:
        return key
    digest = hashlib.sha1(key.encode()).hexdigest()[:8]
    return f"{key[: width - 11]}...#{digest}"


# ----------------------------------------------------------------------------- handlers
def _list(args) -> int:
    from nasforge.platform.console import terminal_console
    from rich.table import Table

    from nasforge.search_spaces import create_space, get_space_class, list_spaces

    table = Table(title="search spaces")
    table.add_column("name", style="bold")
    table.add_column("size", justify="right")
    table.add_column("dims", justify="right")
    table.add_column("builds", justify="center")
    table.add_column("description")
    rows = []
    for name in list_spaces():
        cls = get_space_class(name)
        try:
            space = create_space(name)
            size, dims = space.size(), len(space.dims)
        except Exception:  # a space that needs options still gets listed (`space show NAME` says which);
            # the reason stays out of the table, where it would squeeze the descriptions into wrapping
            size, dims = None, None
        rows.append({"name": name, "size": size, "dims": dims, "builds_network": bool(cls.builds_network),
                     "description": _one_line(cls)})
    if args.json:
        print(json.dumps([r | {"size": _json_size(r["size"])} for r in rows]))
        return 0
    for r in rows:
        table.add_row(r["name"], "needs options" if r["dims"] is None else format_size(r["size"]),
                      "-" if r["dims"] is None else str(r["dims"]), "yes" if r["builds_network"] else "no",
                      r["description"])
    terminal_console(100).print(table)
    return 0


def _show(args) -> int:
    from nasforge.platform.console import terminal_console
    from rich.table import Table

    space = _create(args.name, parse_key_values(args.set_values, "C=8"))
    if args.json:
        print(json.dumps({"name": space.name, "size": _json_size(space.size()), "options": space.options,
                          "dims": [{"label": label, "kind": kind, "range": rng}
                                   for label, kind, rng in space.describe()]}, default=str))
        return 0
    table = Table(title=f"space {space.name}: {len(space.dims)} dimensions, size {format_size(space.size())}")
    table.add_column("label", style="bold")
    table.add_column("kind")
    table.add_column("range")
    for label, kind, rng in space.describe():
        table.add_row(label, kind, rng)
    console = terminal_console(100)
    console.print(table)
    if space.options:
        console.print(f"options: {space.options}")
    return 0


def _sample(args) -> int:
    import os

    shape = _parse_shape(args.input)
    if args.n < 1:
        raise ConfigError(f"--n must be >= 1, got {args.n}")
    if args.classes < 1:
        raise ConfigError(f"--classes must be >= 1, got {args.classes}")
    space = _create(args.name, parse_key_values(args.set_values, "C=8"))

    import torch
    from nasforge.platform.console import terminal_console
    from rich.table import Table

    from nasforge.platform.engine.cost import measure_cost

    console = terminal_console(110)
    rng = random.Random(args.seed)
    samples = [space.sample(rng) for _ in range(args.n)]
    table = Table(title=f"{args.n} random samples of {space.name} (seed {args.seed}, input {shape}, "
                        f"{args.classes} classes)")
    table.add_column("#", justify="right")
    table.add_column("genotype key")
    table.add_column("params", justify="right")
    table.add_column("MFLOPs", justify="right")
    table.add_column("status")
    if args.draw:
        os.makedirs(args.draw, exist_ok=True)
    failures = []
    for i, sample in enumerate(samples):
        key = space.key(sample)
        if not space.builds_network:
            table.add_row(str(i), short_key(key), "-", "-", "ok (no network)")
            continue
        try:
            torch.manual_seed(args.seed + i)
            net = space.build(sample, shape, args.classes)
            net.train()
            x = torch.randn(2, *shape)  # (2, C, H, W): a smoke test of the builder
            out = net(x)
            if out.shape[:2] != (2, args.classes):
                raise RuntimeError(f"output shape {tuple(out.shape)}, expected (2, {args.classes}, ...)")
            target = torch.randint(0, args.classes, (2, *out.shape[2:]))
            loss = torch.nn.functional.cross_entropy(out, target)
            loss.backward()
            if not torch.isfinite(loss):
                raise RuntimeError(f"loss is {loss.item()}")
            cost = measure_cost(net, shape, latency_runs=1, warmup_runs=0)
            params, flops = cost["cost/params"], cost["cost/flops"]
            status = "ok"
            if args.draw:
                files = space.draw(sample, os.path.join(args.draw, f"sample{i}"))
                status += f", drew {len(files)} files" if files else ""
            table.add_row(str(i), short_key(key), f"{params:,}", f"{flops / 1e6:,.1f}", status)
        except Exception as e:  # report every failing sample, then exit non-zero
            failures.append((i, key, f"{type(e).__name__}: {e}"))
            table.add_row(str(i), short_key(key), "-", "-", f"[red]FAILED[/red] {type(e).__name__}")
    console.print(table)
    for i, key, err in failures:
        print(f"nasforge: sample {i} failed ({key}): {err}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":  # pragma: no cover
    from nasforge.platform.cli import main

    sys.exit(main(["space", *sys.argv[1:]]))
