"""`mash-broker <command>` imports only the sub-app it names (start-up cost, paid by every spawned command and
process), and a command reached that way behaves exactly as it does when every sub-app is registered."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from broker.cli.main import FILE_COMMANDS, SUB_APPS, _named_command, app

PROGRAMS = ("/venv/bin/mash-broker", "/src/broker/cli/main.py", "-c")


@pytest.mark.parametrize("program", PROGRAMS)
def test_a_program_naming_a_command_loads_that_command_only(program: str) -> None:
    for name in (*SUB_APPS, *FILE_COMMANDS, "adapters", "run", "worker"):
        assert _named_command([program, name, "--help"]) == name


@pytest.mark.parametrize("argv", [
    [], ["/venv/bin/mash-broker"], ["/venv/bin/mash-broker", "--help"], ["/venv/bin/mash-broker", "polcy"],
    ["/venv/bin/mash-broker", "--install-completion"], ["-c"],
    # imported as a library: pytest (or an xdist worker) whose first argument happens to be a command's name
    ["/venv/lib/python3.11/site-packages/pytest/__main__.py", "policy"], ["/venv/bin/pytest", "kafka"],
])
def test_help_typos_completion_and_library_use_register_every_command(argv: list[str]) -> None:
    assert _named_command(argv) is None


def test_the_library_app_registers_every_sub_app_and_file_command() -> None:
    names = {g.name for g in app.registered_groups} | {c.name or c.callback.__name__ for c in app.registered_commands
                                                         if c.callback is not None}
    assert set(SUB_APPS) | set(FILE_COMMANDS) | {"adapters", "run", "worker"} <= names


@pytest.mark.parametrize("argv", [["kafka", "--help"], ["validate", "--help"], ["--help"]])
def test_a_named_command_answers_as_the_fully_loaded_app_does(argv: list[str]) -> None:
    spawned = subprocess.run([sys.executable, "-m", "broker.cli.main", *argv], capture_output=True, text=True,
                             timeout=60, env={"COLUMNS": "200", "TERM": "dumb", "PATH": "/usr/bin:/bin"})
    in_process = CliRunner().invoke(app, argv, prog_name="python -m broker.cli.main", env={"COLUMNS": "200"})
    assert spawned.returncode == in_process.exit_code == 0, spawned.stderr
    assert _words(spawned.stdout) == _words(in_process.stdout)


def _words(text: str) -> list[str]:
    """The help's words, without Rich's box drawing (its width follows the terminal)."""
    return [w for w in text.split() if not re.fullmatch("[\u2500-\u257f]+", w)]
