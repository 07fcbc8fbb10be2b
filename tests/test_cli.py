"""The command line's grammar: every command on a sweep under `nasforge sweep`, the old top-level
spellings as aliases, help text on every argument, `--json` on the read commands, `--version`,
and `--root` from the environment. The sweeps read are real (a 2-trial quickstart on digits)."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

import optuna
import pytest

from nasforge.platform.cli import build_parser, main

SWEEP_COMMANDS = {"run", "check", "status", "best", "report", "compare", "dashboard", "promote"}


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps its sub-parsers only here
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    yield path, parser
    for name, sub in _subcommands(parser).items():
        yield from _walk(sub, path + (name,))


def test_every_argument_of_every_command_has_help_text():
    missing = []
    commands = 0
    for path, parser in _walk(build_parser()):
        commands += 1
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
                missing.append(f"nasforge {' '.join(path)} {action.option_strings or action.dest}")
    assert commands > 20  # the walk reached the sub-commands
    assert not missing, "arguments without help text:\n" + "\n".join(missing)


def test_sweep_help_lists_every_command_on_a_sweep(capsys):
    assert main(["sweep", "--help"]) == 0
    out = capsys.readouterr().out
    listed = {line.split()[0] for line in out.splitlines() if line.startswith("    ") and line.split()}
    assert SWEEP_COMMANDS <= listed, out
    assert set(_subcommands(_subcommands(build_parser())["sweep"])) == SWEEP_COMMANDS


@pytest.mark.parametrize("command", ["report", "dashboard", "promote"])
def test_the_old_top_level_spelling_is_an_alias_of_the_sweep_command(command):
    parser = build_parser()
    args = ["quickstart", "--root", "r", "--storage", "journal://x"]
    old, new = parser.parse_args([command, *args]), parser.parse_args(["sweep", command, *args])
    assert old.func is new.func
    assert {k: v for k, v in vars(old).items() if k not in ("command", "sweep_command", "print_group_help")} == \
           {k: v for k, v in vars(new).items() if k not in ("command", "sweep_command", "print_group_help")}


def test_output_is_always_output_and_overrides_are_always_set():
    for path, parser in _walk(build_parser()):
        for action in parser._actions:
            if "-o" in action.option_strings:
                assert "--output" in action.option_strings, path
            if action.metavar == "KEY=VALUE":
                assert "--set" in action.option_strings, path


def test_version_is_argparse_version_action():
    from importlib.metadata import version

    done = subprocess.run([sys.executable, "-m", "nasforge.platform.cli", "--version"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"nasforge {version('nasforge')}", done


def test_status_json_reads_the_root_from_the_environment_and_equals_the_study(quick_runs, monkeypatch, capsys):
    monkeypatch.setenv("NASFORGE_ROOT", str(quick_runs))
    assert main(["sweep", "status", "quickstart", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    study = optuna.load_study(study_name="quickstart", storage=_storage(quick_runs))
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    assert got["trials"] == counts
    assert got["finished"] == counts.get("COMPLETE", 0) + counts.get("PRUNED", 0)
    assert [b["trial"] for b in got["best"]] == [study.best_trial.number]
    assert got["best"][0]["values"]["val/acc"] == pytest.approx(study.best_value)


def test_a_sweep_name_under_an_unknown_root_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NASFORGE_ROOT", str(tmp_path / "nowhere"))
    assert main(["sweep", "best", "quickstart", "--json"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nasforge: error: no sweep named 'quickstart'") and "\n" not in err, err


def test_space_list_and_show_json(capsys):
    assert main(["space", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["nb201"]["size"] == 15625 and rows["nb201"]["dims"] == 6
    assert main(["space", "show", "nb201", "--set", "C=8", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["options"]["C"] == 8 and len(shown["dims"]) == 6 and shown["size"] == 15625


def _storage(root):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(root / "quickstart" / "study.journal")))
