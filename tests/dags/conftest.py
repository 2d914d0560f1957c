"""Fixtures of the DAG tests: a real PostgreSQL, a real HTTP stand-in, an isolated Airflow home.

Airflow reads its configuration once, when first imported: AIRFLOW_HOME is pointed at a temporary
directory *here*, before any test of this folder imports Airflow, so nothing lands in ~/airflow.
Every run that needs a metadata DB (``dag.test()``) happens in a subprocess with its own
AIRFLOW_HOME and SQLite file (``run_dag``), so it doesn't depend on what else this pytest process
imported, and no test sees another's runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS_DIR = REPO / "dags"
RUNNER = Path(__file__).resolve().parent / "dag_test_runner.py"

_SESSION_HOME = tempfile.mkdtemp(prefix="airflow-gitops-tests-home-")
if "airflow" not in sys.modules:  # too late otherwise; then only the subprocess runs are isolated
    os.environ.setdefault("AIRFLOW_HOME", _SESSION_HOME)
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS_DIR))
# The DAG files import their helpers as `include.*`, the bundle root being on sys.path (as in Airflow).
if str(DAGS_DIR) not in sys.path:
    sys.path.append(str(DAGS_DIR))


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SESSION_HOME, ignore_errors=True)


# --- the DAGs as the dag-processor sees them ---------------------------------------------------------


@pytest.fixture(scope="session")
def dagbag():
    """Every DAG of dags/, parsed in this process the way the dag-processor's child does (BundleDagBag)."""
    from airflow.dag_processing.dagbag import BundleDagBag

    return BundleDagBag(dag_folder=DAGS_DIR, bundle_path=DAGS_DIR, bundle_name="dags-folder")


# --- PostgreSQL ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL of a real PostgreSQL: $AIRFLOW_GITOPS_TEST_DATABASE_URL (CI's), else one started here.

    Fails, never skips, when PostgreSQL is not installed: these tests are the proof that the DAGs work.
    """
    from airflow_gitops.dev import localpg

    url = os.environ.get(localpg.ENV_URL)
    if url:
        yield url
        return
    try:
        localpg.find_bindir()
    except localpg.PostgresUnavailable as exc:
        pytest.fail(f'{exc}\n(or start one and export its URL: eval "$(airflow-gitops postgres start)")', False)
    # Not under pytest's tmp_path: when root, `postgres` must be able to traverse every parent.
    directory = tempfile.mkdtemp(prefix="airflow-gitops-pg-")
    try:
        pg = localpg.start(directory)
    except localpg.PostgresUnavailable as exc:
        shutil.rmtree(directory, ignore_errors=True)
        pytest.fail(f"could not start the test PostgreSQL: {exc}", False)
    try:
        yield pg.url
    finally:
        localpg.stop(directory, purge=True)


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    """A fresh, empty database on the test server for one test; dropped afterwards."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        try:
            conn.execute(f'CREATE DATABASE "{name}"')
        except psycopg.errors.InsufficientPrivilege:
            pytest.fail(f"the role of {pg_server_url.split('@')[-1]} needs CREATEDB for the DAG tests", False)
    base = pg_server_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the user API stand-in -------------------------------------------------------------------------


@pytest.fixture
def user_api():
    """A real HTTP server on 127.0.0.1 serving the recorded randomuser.me payload at /api/."""
    from airflow_gitops.dev.stand_ins import RECORDED_PAYLOAD, UserApiStandIn

    with UserApiStandIn(RECORDED_PAYLOAD) as server:
        yield server


# --- dag.test() in an isolated Airflow -------------------------------------------------------------


def _base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_HOME"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            # Nothing may reach out of this machine; these DAGs only talk to 127.0.0.1.
            "NO_PROXY": "*",
            "no_proxy": "*",
        }
    )
    return env


@pytest.fixture(scope="session")
def migrated_airflow_home() -> Iterator[Path]:
    """An AIRFLOW_HOME whose SQLite metadata DB is migrated once per session (copied per test)."""
    home = Path(tempfile.mkdtemp(prefix="airflow-gitops-meta-"))
    proc = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=_base_env(home),
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        pytest.fail(f"airflow db migrate failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}", False)
    yield home
    shutil.rmtree(home, ignore_errors=True)


class DagRunner:
    """Runs `dag.test()` for a DAG of dags/ in a subprocess against this test's own metadata DB."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.connections: dict[str, str] = {}

    def env(self) -> dict[str, str]:
        env = _base_env(self.home)
        for conn_id, value in self.connections.items():
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = value
        return env

    def __call__(self, dag_id: str, *, logical_date: str | None = None, timeout: float = 240) -> dict:
        argv = ["dag", dag_id] + ([logical_date] if logical_date else [])
        return self.helper(*argv, timeout=timeout)

    def helper(self, *args: str, env: dict[str, str] | None = None, timeout: float = 240) -> dict:
        """Run dag_test_runner.py with ARGS in this test's Airflow; its JSON result (plus its output)."""
        argv = [sys.executable, str(RUNNER), *args]
        proc = subprocess.run(
            argv,
            env={**self.env(), **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        marker = "DAG_TEST_RESULT="
        lines = [line for line in proc.stdout.splitlines() if line.startswith(marker)]
        if proc.returncode != 0 or not lines:
            raise AssertionError(
                f"{' '.join(args)} failed (exit {proc.returncode}):\n"
                f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
            )
        result = json.loads(lines[-1][len(marker) :])
        result["output"] = proc.stdout + proc.stderr
        return result


@pytest.fixture
def run_dag(migrated_airflow_home: Path, tmp_path: Path) -> DagRunner:
    """`run_dag("dag_id")` -> {"state", "run_id", "tasks": {task_id: state}, "asset_events": [...]}."""
    home = tmp_path / "airflow-home"
    home.mkdir()
    shutil.copy2(migrated_airflow_home / "airflow.db", home / "airflow.db")
    return DagRunner(home)
