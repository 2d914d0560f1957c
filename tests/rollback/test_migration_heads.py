"""The committed heads tables equal Airflow's own maps, core and FAB, in every release venv they cover; each release
venv holds the FAB provider its image carries (IMAGE_FAB_PROVIDER)."""

from __future__ import annotations

import ast
import subprocess
import sys

from airflow_gitops import airflow_versions
from airflow_gitops.airflow_migration_heads import (
    FAB_GENERATED_FROM,
    FAB_REVISION_HEADS,
    GENERATED_FROM,
    REVISION_HEADS,
)
from airflow_gitops.airflow_versions import IMAGE_FAB_PROVIDER
from airflow_gitops.dev.airflow_venvs import airflow_venv

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


READ_FAB_MAP = ("from airflow.providers.fab.auth_manager.models.db import _REVISION_HEADS_MAP as m; "
                "from importlib.metadata import version; print(version('apache-airflow-providers-fab')); print(m)")


def installed_fab_map(release: str) -> tuple[str, dict[str, str]]:
    python = str(airflow_venv(release) / "bin" / "python")
    out = subprocess.run([python, "-c", READ_FAB_MAP], capture_output=True, text=True, timeout=300, check=True).stdout
    version, mapping = out.strip().splitlines()[-2:]
    return version, ast.literal_eval(mapping)


def test_the_fab_table_is_the_map_of_the_fab_provider_in_the_project_airflow_image():
    version, mapping = installed_fab_map(GENERATED_FROM)
    assert version == FAB_GENERATED_FROM == IMAGE_FAB_PROVIDER[GENERATED_FROM]
    assert mapping == FAB_REVISION_HEADS


def test_each_release_venv_holds_its_image_fab_provider_whose_map_is_a_prefix_of_the_table():
    for release in ("3.2.2", "3.1.8"):
        version, mapping = installed_fab_map(release)
        assert version == IMAGE_FAB_PROVIDER[release]
        assert mapping == {v: h for v, h in FAB_REVISION_HEADS.items() if airflow_versions.compare(v, version) <= 0}


def test_fab_heads_3_3_2_and_3_2_2_are_equal_and_3_1_8_differs():
    """What the real releases showed (tests/rollback/test_fab_schema.py runs them): FAB's head moved in FAB 3.5.0,
    after Airflow 3.1.8's image (FAB 3.4.0) and before 3.2.x's."""
    assert airflow_versions.fab_migration_head("3.3.2") == airflow_versions.fab_migration_head("3.2.2")
    assert not airflow_versions.fab_heads_differ("3.3.2", "3.2.2")
    assert airflow_versions.fab_heads_differ("3.2.2", "3.1.8")
    assert airflow_versions.core_heads_differ("3.3.2", "3.2.2")


def test_a_release_whose_image_fab_is_unknown_counts_as_differing():
    assert "3.0.0" not in IMAGE_FAB_PROVIDER and airflow_versions.fab_migration_head("3.0.0") is None
    assert airflow_versions.fab_heads_differ("3.3.2", "3.0.0") and airflow_versions.heads_differ("3.3.2", "3.0.0")


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
