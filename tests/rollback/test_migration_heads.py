"""The committed heads table equals Airflow's own map, in every installed release it covers."""

from __future__ import annotations

import ast
import subprocess
import sys

from airflow_gitops.operate import airflow_versions
from airflow_gitops.operate.airflow_migration_heads import GENERATED_FROM, REVISION_HEADS

from tests.rollback.airflow_venvs import airflow_venv

READ_MAP = "from airflow.utils.db import _REVISION_HEADS_MAP as m; import airflow; print(airflow.__version__); print(m)"


def installed_map(python: str) -> tuple[str, dict[str, str]]:
    out = subprocess.run([python, "-c", READ_MAP], capture_output=True, text=True, timeout=300, check=True).stdout
    version, mapping = out.strip().splitlines()[-2:]
    return version, ast.literal_eval(mapping)


def test_the_table_is_the_project_airflow_map():
    version, mapping = installed_map(sys.executable)
    assert version == GENERATED_FROM
    assert mapping == REVISION_HEADS


def test_an_older_release_map_is_a_prefix_of_the_table():
    version, mapping = installed_map(str(airflow_venv("3.2.2") / "bin" / "python"))
    assert version == "3.2.2"
    assert mapping == {v: h for v, h in REVISION_HEADS.items() if airflow_versions.compare(v, version) <= 0}


def test_a_release_carries_the_head_of_the_newest_listed_release_below_it():
    assert airflow_versions.migration_head("3.2.2") == REVISION_HEADS["3.2.0"]
    assert airflow_versions.migration_head("3.3.1") == airflow_versions.migration_head("3.3.2")


def test_a_release_newer_than_the_table_is_unknown_and_counts_as_differing():
    assert airflow_versions.migration_head("9.0.0") is None
    assert airflow_versions.heads_differ("3.3.2", "9.0.0")


def test_render_validate_and_diff_do_not_import_airflow():
    code = ("import sys; import airflow_gitops.commands.validate, airflow_gitops.commands.diff, "
            "airflow_gitops.commands.rollback, airflow_gitops.operate.rollback, airflow_gitops.rendered_diff; "
            "sys.exit(1 if any(m == 'airflow' or m.startswith('airflow.') for m in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
