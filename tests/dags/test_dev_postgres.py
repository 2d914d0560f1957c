"""`airflow-gitops postgres start|status|stop`, exactly as .ci/run uses it: `eval "$(... start --dir D)"`.

A real PostgreSQL 15 is started in a fresh directory: the output is only `export` lines, the URL works
for the created role and database, a second start answers the same URL (idempotent), stop stops it
and a later start brings the same cluster (same port, same data) back.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.helpers import skip_for

pytestmark = pytest.mark.postgres


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "airflow_gitops", "postgres", *args],
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )


def _exported_url(stdout: str) -> str:
    """What `eval` would set: run the output in a real shell and read the variable back."""
    shell = subprocess.run(
        ["bash", "-c", f'{stdout}\nprintf %s "$AIRFLOW_GITOPS_TEST_DATABASE_URL"'],
        capture_output=True,
        text=True,
        check=True,
    )
    return shell.stdout


@pytest.fixture
def pg_dir():
    from airflow_gitops.dev import localpg

    localpg.find_bindir()  # fails with the install hint when PostgreSQL 15 is missing
    directory = Path(tempfile.mkdtemp(prefix="airflow-gitops-cli-pg-"))  # `postgres` must reach it
    yield directory
    localpg.stop(directory, purge=True)
    shutil.rmtree(directory, ignore_errors=True)


def test_start_is_idempotent_and_prints_only_exports(pg_dir: Path):
    import psycopg

    first = _cli("start", "--dir", str(pg_dir))
    assert first.returncode == 0, first.stderr
    assert all(line.startswith("export ") for line in first.stdout.splitlines()), first.stdout
    url = _exported_url(first.stdout)
    assert url.startswith("postgresql://") and "@127.0.0.1:" in url

    with psycopg.connect(url) as conn:
        user, db = conn.execute("SELECT current_user, current_database()").fetchone()
        assert (user, db) == ("airflow_gitops", "airflow_gitops")
        conn.execute("CREATE TABLE kept (v int)")
        conn.execute("INSERT INTO kept VALUES (42)")
        # The server listens on loopback only.
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)

    again = _cli("start", "--dir", str(pg_dir))
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout

    status = _cli("status", "--dir", str(pg_dir))
    assert status.returncode == 0 and status.stdout == first.stdout

    stopped = _cli("stop", "--dir", str(pg_dir))
    assert stopped.returncode == 0, stopped.stderr
    assert _cli("status", "--dir", str(pg_dir)).returncode == 1
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=3)

    from airflow_gitops.dev import localpg

    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    # Another process (a parallel test run) may take the freed port meanwhile: then a new one is the right answer.
    port_was_free = localpg._port_is_free(port)
    restarted = _cli("start", "--dir", str(pg_dir))
    assert restarted.returncode == 0, restarted.stderr
    new_url = _exported_url(restarted.stdout)
    # Same credentials always; the same port whenever it was still free.
    assert new_url.rsplit(":", 1)[0] == url.rsplit(":", 1)[0]
    if port_was_free:
        assert new_url == url
    with psycopg.connect(new_url) as conn:
        assert conn.execute("SELECT v FROM kept").fetchone() == (42,)

    assert _cli("stop", "--dir", str(pg_dir)).returncode == 0
    assert _cli("stop", "--dir", str(pg_dir)).returncode == 0  # stopping a stopped cluster is fine


def test_missing_binaries_are_a_clear_error(tmp_path: Path, monkeypatch):
    # A machine without PostgreSQL can't be had here (CI installs it), so the search path is pointed at
    # empty directories instead: the one place these tests fake anything. The conftest fixture turns
    # this error into a test failure, never a skip.
    from airflow_gitops.dev import localpg

    monkeypatch.setattr(localpg, "DEFAULT_BINDIRS", (str(tmp_path / "nowhere"),))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(localpg.ENV_BINDIR, raising=False)
    with pytest.raises(localpg.PostgresUnavailable, match="install-system-deps.sh"):
        localpg.find_bindir()


def test_as_root_the_cluster_belongs_to_postgres(pg_dir: Path):
    if os.geteuid() != 0:
        skip_for("root", "only root has to hand the cluster to the postgres user")
    assert _cli("start", "--dir", str(pg_dir)).returncode == 0
    assert (pg_dir / "data").owner() == "postgres"
