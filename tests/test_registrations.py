"""Classes registered by "module:attr" strings import, each from the room of its kind: the check of
pyproject.toml's ``registered_rooms`` contract (`lint-imports`), run here on the same settings."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from registered_rooms import check, parse_rooms, source_files

REPO = Path(__file__).resolve().parents[1]


def _contract() -> dict:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "registered_rooms"]
    return contract


def test_every_string_registration_imports_from_the_room_of_its_kind():
    contract = _contract()
    rooms = parse_rooms(contract["rooms"])
    assert rooms["tasks"] == rooms["datasets"] == "nasforge.tasks"
    assert check(rooms, source_files(contract["sources"])) == []


def test_a_registration_outside_its_room_or_not_importing_is_reported(monkeypatch, tmp_path):
    from nasforge.tasks import task_factory
    from nasforge.tasks.task_factory import DatasetSpec, TaskSpec

    monkeypatch.setitem(task_factory.TASKS, "platform-task", TaskSpec(
        "platform-task", "lightning", "nasforge.platform.registry.adaptive:AdaptiveOptions"))
    monkeypatch.setitem(task_factory.DATASETS, "gone", DatasetSpec("gone", "nasforge.tasks.no_such_module:Data"))
    stray = tmp_path / "stray.py"  # a registry that no reader reads
    stray.write_text('PLUGINS = {"x": "nasforge.platform.engine.trial:TrialContext"}\n')
    contract = _contract()
    problems = check(parse_rooms(contract["rooms"]), [*source_files(contract["sources"]), stray])
    assert problems == [
        "tasks: tasks.task_factory.TASKS['platform-task'] = 'nasforge.platform.registry.adaptive:AdaptiveOptions' "
        "lives in nasforge.platform.registry.adaptive, outside nasforge.tasks",
        "datasets: tasks.task_factory.DATASETS['gone'] = 'nasforge.tasks.no_such_module:Data' does not import: "
        "ModuleNotFoundError: No module named 'nasforge.tasks.no_such_module'",
        f"{stray}:1: 'nasforge.platform.engine.trial:TrialContext' is a class path no registry reader reads "
        "(add its registry to tests/registered_rooms.py READERS)",
    ]


def test_a_kind_without_a_room_is_reported_and_a_malformed_room_refused():
    rooms = parse_rooms(_contract()["rooms"])
    del rooms["pruners"]
    assert check(rooms, []) == ["pruners: registrations no contract room covers (add 'pruners: PACKAGE' to rooms)"]
    with pytest.raises(ValueError, match="rooms: 'tasks nasforge.tasks' is not 'KIND: PACKAGE'"):
        parse_rooms(["tasks nasforge.tasks"])
