"""The Go runtimes' collector settings (airflow_gitops/go_runtime.py): a Go runtime reads them only from the
environment its process was started with, so the command line re-executes itself once to set them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from airflow_gitops import cli, go_runtime

SCRIPTS = str(Path(__file__).resolve().parents[2] / "scripts")
# Prints a line each time the process starts, then asks for the settings, then prints what it runs with.
PROBE = """
import os
print("start", flush=True)
from airflow_gitops import go_runtime
go_runtime.reexec_with_settings()
print(os.environ.get("GOGC"), os.environ.get("GOMEMLIMIT"), flush=True)
"""


def _probe(**environment: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in go_runtime.SETTINGS}
    env.update(environment, PYTHONPATH=SCRIPTS)
    result = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60,
                            check=True)
    return result.stdout.splitlines()


def test_a_process_started_without_the_settings_restarts_once_with_them():
    assert _probe() == ["start", "start", "400 1GiB"]


def test_the_users_own_setting_wins():
    assert _probe(GOGC="100") == ["start", "start", "100 1GiB"]


def test_nothing_restarts_when_every_setting_is_given():
    assert _probe(GOGC="200", GOMEMLIMIT="512MiB") == ["start", "200 512MiB"]


def test_the_go_commands_are_commands_of_the_tool_and_not_the_airflow_side():
    assert set(cli.SUBCOMMANDS) >= cli.GO_COMMANDS
    # The Airflow side starts no Go runtime: no restart for it.
    assert not {"dev", "postgres"} & cli.GO_COMMANDS
