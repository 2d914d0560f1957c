"""Issue 15 item 7 on real parts: the FAB auth manager's schema in a downgrade.

`airflow db migrate` and `db check-migrations` cover the FAB provider's schema (`alembic_version_fab`), `airflow db
downgrade` does not. Between 3.3.2 and 3.2.2 the images' FAB heads are equal (test_airflow_downgrade.py shows the
downgrade, check-migrations and a FAB login there). Between 3.2.2 (FAB 3.6.4) and 3.1.8 (FAB 3.4.0) they differ:
FAB 3.5.0 moved the head. There a core-only downgrade leaves 3.1.8 unable to start (check-migrations times out on
FAB, and its migrate Job fails with "Can't locate revision"); the step 1 the tool renders also runs
`airflow fab-db downgrade`, and 3.1.8 starts. Each release runs in its own venv with its image's FAB provider.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow_gitops import airflow_versions
from airflow_gitops.dev.airflow_venvs import airflow_venv

from tests.rollback.test_airflow_downgrade import (  # noqa: F401  (the airflow fixture)
    airflow,
    alembic_version,
    fab_version,
    history,
    ok,
    step1_migrate_job,
)

pytestmark = pytest.mark.postgres

OLD, NEW = "3.1.8", "3.2.2"


@pytest.fixture(scope="module")
def bins() -> tuple[Path, Path]:
    return airflow_venv(OLD) / "bin", airflow_venv(NEW) / "bin"


def test_the_two_images_fab_heads_differ():
    assert airflow_versions.fab_heads_differ(OLD, NEW)
    assert airflow_versions.core_heads_differ(OLD, NEW)


def upgraded(airflow, bins, pg_url) -> None:  # noqa: F811
    old_bin, new_bin = bins
    ok(airflow(old_bin, "db", "migrate"))
    assert fab_version(pg_url) == airflow_versions.fab_migration_head(OLD)
    ok(airflow(new_bin, "db", "migrate"))
    assert fab_version(pg_url) == airflow_versions.fab_migration_head(NEW)


def test_a_core_only_downgrade_leaves_the_older_release_stuck_on_fab(airflow, bins, pg_url):  # noqa: F811
    old_bin, new_bin = bins
    upgraded(airflow, bins, pg_url)
    ok(airflow(new_bin, "db", "downgrade", "--to-version", OLD, "-y"))
    assert alembic_version(pg_url) == airflow_versions.migration_head(OLD)
    assert fab_version(pg_url) == airflow_versions.fab_migration_head(NEW)  # untouched by `db downgrade`
    # The chart's wait-for-migrations init container: the core is right, FAB is not.
    assert airflow(old_bin, "db", "check-migrations", "-t", "10", timeout=180).returncode != 0
    # The older release's migrate Job: FAB's upgrade cannot find the newer FAB revision.
    migrate = airflow(old_bin, "db", "migrate", timeout=300)
    assert migrate.returncode != 0
    assert "Can't locate revision" in migrate.stdout + migrate.stderr


def test_step1_downgrades_fab_too_and_the_older_release_starts(airflow, bins, pg_url, repo_copy):  # noqa: F811
    old_bin, new_bin = bins
    upgraded(airflow, bins, pg_url)
    history(repo_copy, OLD, NEW)
    args, pod_env = step1_migrate_job(repo_copy)
    assert pod_env["SCHEMA_ROLLBACK_FAB_TO"] == airflow_versions.fab_migration_head(OLD)
    assert 'airflow fab-db downgrade --to-revision "$SCHEMA_ROLLBACK_FAB_TO" -y' in args[-1]
    # The migrate Job of step 1, with B's image, the args exactly as rendered and the variables its pod gets.
    ok(airflow(new_bin, argv=args, extra_env=pod_env, timeout=600))
    assert alembic_version(pg_url) == airflow_versions.migration_head(OLD)
    assert fab_version(pg_url) == airflow_versions.fab_migration_head(OLD)
    ok(airflow(old_bin, "db", "check-migrations", "-t", "30", timeout=180))
    ok(airflow(old_bin, "db", "migrate", timeout=300))
