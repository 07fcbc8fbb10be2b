"""Errors the CLI turns into one line and an exit code, never a traceback.

`ConfigError` (exit 2): a bad sweep file, name, option or path, found before anything is
written. `UsageError` (exit 2): a command asked for something that does not exist (an unknown
sweep, trial or model). `NasforgeError` (exit 1): a run that started and could not finish.
"""


class NasforgeError(Exception):
    exit_code = 1


class ConfigError(NasforgeError):
    exit_code = 2


class UsageError(NasforgeError):
    exit_code = 2
