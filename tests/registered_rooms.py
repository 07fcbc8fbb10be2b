"""String registrations as import-linter sees them: the ``registered_rooms`` contract type.

`lint-imports` builds its graph from ``import`` statements. A registry that names its entries by
string, so that looking a name up imports nothing heavy (``TASKS["adaptive"]`` is
``"nasforge.tasks.adaptive:AdaptiveTask"``), hides that arrow from it: a task registered from a
module of ``platform/`` passed every contract. This contract type (registered in pyproject.toml's
``[tool.importlinter] contract_types``) reads every registry of `READERS`, imports each path it
names and fails when one does not import, or when what it gives lives outside the room its
contract gives that kind of registration (``rooms = ["tasks: nasforge.tasks", ...]``; the home is
the object's ``__module__``, so a re-export from another room is caught too). So that no registry
goes unread, every string literal ``"nasforge.<module>:<attr>"`` in the sources (``sources``: the
packages whose ``.py`` files are scanned) must be a path some reader yields.

`check(rooms, files)` returns the problems as lines; the contract and tests/test_registrations.py
both call it. Plugins installed through entry points are the user's code and are not checked.
"""
from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path
from typing import Callable, Iterable, Iterator

from importlinter import Contract, ContractCheck, fields, output
from importlinter.domain.contract import InvalidContractOptions

CLASS_PATH = re.compile(r"^nasforge(\.[A-Za-z_]\w*)+:[A-Za-z_]\w*$")


# ----------------------------------------------------------------------------- the registries
def _tasks() -> Iterator[tuple[str, str]]:
    from nasforge.tasks.task_factory import TASKS

    for name, spec in TASKS.items():
        yield f"tasks.task_factory.TASKS[{name!r}]", spec.module


def _datasets() -> Iterator[tuple[str, str]]:
    from nasforge.tasks.task_factory import DATASETS

    for name, spec in DATASETS.items():
        yield f"tasks.task_factory.DATASETS[{name!r}]", spec.datamodule
        if spec.checker:
            yield f"tasks.task_factory.DATASETS[{name!r}].checker", spec.checker


def _spaces() -> Iterator[tuple[str, str]]:
    """The modules whose import registers the built-in spaces, and the classes each registers."""
    from nasforge.search_spaces import registry

    for mod in registry._BUILTIN_MODULES:
        path = f"{registry.__package__}.{mod}"
        yield f"search_spaces.registry._BUILTIN_MODULES {mod!r}", path
        try:
            names = vars(importlib.import_module(path))
        except Exception:  # noqa: BLE001 - reported by the module's own entry above
            continue
        for attr, obj in names.items():
            if isinstance(obj, type) and obj in registry._SPACES.values():
                yield f"space {obj.name!r} (registered by {mod})", f"{path}:{attr}"


def _attention() -> Iterator[tuple[str, str]]:
    from nasforge.search_spaces import create_attn

    for table in ("ATTN_BLOCKS", "SKIP_ATTNS"):
        for name, (mod, cls) in getattr(create_attn, table).items():
            yield f"search_spaces.create_attn.{table}[{name!r}]", f"{create_attn.__package__}.{mod}:{cls}"


def _samplers() -> Iterator[tuple[str, str]]:
    from nasforge.platform.strategies import OPTUNA_SAMPLERS

    for name, cls in OPTUNA_SAMPLERS.items():
        yield f"strategies.OPTUNA_SAMPLERS[{name!r}]", f"optuna.samplers:{cls}"


def _pruners() -> Iterator[tuple[str, str]]:
    from nasforge.platform.engine.pruners import PRUNER_CLASSES

    for name, cls in PRUNER_CLASSES.items():
        yield f"engine.pruners.PRUNER_CLASSES[{name!r}]", f"optuna.pruners:{cls}"


def _commands() -> Iterator[tuple[str, str]]:
    from nasforge.platform import cli

    for mod in cli.COMMAND_MODULES:
        yield f"cli.COMMAND_MODULES {mod!r}", f"{cli.__name__}.{mod}:register"


# kind -> the (where, "module[:attr]") of every registration of that kind
READERS: dict[str, Callable[[], Iterable[tuple[str, str]]]] = {
    "tasks": _tasks, "datasets": _datasets, "spaces": _spaces, "attention": _attention,
    "samplers": _samplers, "pruners": _pruners, "commands": _commands,
}


# ----------------------------------------------------------------------------- the check
def _home(path: str) -> str:
    """The module that defines what ``path`` names (the import error propagates)."""
    mod, _, attr = path.partition(":")
    module = importlib.import_module(mod)
    if not attr:
        return module.__name__
    obj = getattr(module, attr)
    return getattr(obj, "__module__", None) or module.__name__


def _inside(module: str, room: str) -> bool:
    return module == room or module.startswith(room + ".")


def literals(files: Iterable[Path]) -> dict[str, str]:
    """Every ``"nasforge.<module>:<attr>"`` string literal of ``files`` -> where it is (file:line)."""
    out: dict[str, str] = {}
    for f in files:
        for node in ast.walk(ast.parse(Path(f).read_text(), str(f))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and CLASS_PATH.match(node.value):
                out.setdefault(node.value, f"{f}:{node.lineno}")
    return out


def check(rooms: dict[str, str], files: Iterable[Path], readers=READERS) -> list[str]:
    """The problems (one line each) of every registration of ``readers``, against ``rooms``
    (kind -> the package its registrations must live in), and the class-path literals of
    ``files`` that no reader yields."""
    problems = [f"{kind}: registrations no contract room covers (add '{kind}: PACKAGE' to rooms)"
                for kind in readers if kind not in rooms]
    seen: set[str] = set()
    for kind, read in readers.items():
        if kind not in rooms:
            continue
        for where, path in read():
            seen.add(path)
            try:
                home = _home(path)
            except Exception as e:  # noqa: BLE001 - any failure to import is the finding
                text = str(e).strip().splitlines()[0] if str(e).strip() else ""
                problems.append(f"{kind}: {where} = {path!r} does not import: {type(e).__name__}: {text}")
                continue
            if not _inside(home, rooms[kind]):
                problems.append(f"{kind}: {where} = {path!r} lives in {home}, outside {rooms[kind]}")
    for path, at in sorted(literals(files).items()):
        if path not in seen:
            problems.append(f"{at}: {path!r} is a class path no registry reader reads (add its registry "
                            "to tests/registered_rooms.py READERS)")
    return problems


def source_files(packages: Iterable[str]) -> list[Path]:
    """The ``.py`` files of ``packages`` (namespace packages included)."""
    files: list[Path] = []
    for pkg in packages:
        for folder in importlib.import_module(pkg).__path__:
            files.extend(sorted(Path(folder).rglob("*.py")))
    return files


def parse_rooms(lines: Iterable[str]) -> dict[str, str]:
    """``["tasks: nasforge.tasks", ...]`` -> {"tasks": "nasforge.tasks", ...}."""
    out = {}
    for line in lines:
        kind, sep, room = (s.strip() for s in line.partition(":"))
        if not sep or not kind or not room:
            raise ValueError(f"rooms: {line!r} is not 'KIND: PACKAGE'")
        out[kind] = room
    return out


class RegisteredRoomsContract(Contract):
    """Every string registration imports, and lives in the room of its kind (module docstring).

    Options: ``rooms`` (``KIND: PACKAGE`` for every kind of `READERS`) and ``sources`` (packages
    whose files are scanned for class-path literals)."""

    type_name = "registered_rooms"
    rooms = fields.ListField(subfield=fields.StringField())
    sources = fields.ListField(subfield=fields.StringField())

    def validate(self) -> None:
        try:
            parsed = parse_rooms(self.rooms)
        except ValueError as e:
            raise InvalidContractOptions({"rooms": str(e)}) from None
        unknown = sorted(set(parsed) - set(READERS))
        if unknown:
            raise InvalidContractOptions({"rooms": f"unknown kinds {unknown}; known: {', '.join(READERS)}"})

    def check(self, graph, verbose: bool) -> ContractCheck:
        # the graph holds import statements only: string registrations are read from the registries
        problems = check(parse_rooms(self.rooms), source_files(self.sources))
        return ContractCheck(kept=not problems, metadata={"problems": problems})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for line in check.metadata["problems"]:
            output.print_error(line, bold=False)
            output.new_line()
