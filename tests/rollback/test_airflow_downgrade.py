"""Issue 7.1 on real parts: PostgreSQL 15 and two real Airflow releases whose schemas differ.

A = 3.2.2, B = 3.3.2, each in its own cached venv with the FAB provider its image carries
(scripts/airflow_gitops/dev/airflow_venvs.py), and the chart's auth manager (FAB's): `db migrate` and `check-migrations` then
cover FAB's schema too, as in the pods. The downgrade command is not written here: it is the migrateDatabaseJob args
of the values helm-controller composes with the layer `airflow-gitops rollback` writes in step 1, run with the pod
annotations that layer sets as the kubelet hands them over (SCHEMA_ROLLBACK_TO, a downward-API variable).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
from airflow_gitops import airflow_versions
from airflow_gitops.dev.airflow_venvs import airflow_venv
from airflow_gitops.live.kubelet import field_value
from airflow_gitops.operate.downgrade import LAYER, ROLLBACK_TO, airflow_at
from airflow_gitops.operate.plans import Write
from airflow_gitops.operate.rollback import Options, Target, plan
from airflow_gitops.settings import Settings

from tests.helpers import commit_all, free_port, git, make_settings

pytestmark = pytest.mark.postgres

OLD, NEW = "3.2.2", "3.3.2"
# The chart's [core] auth_manager (charts' values.yaml config.core.auth_manager).
FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
TINY_DAG = '''
from datetime import datetime
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator
with DAG("survivor", start_date=datetime(2026, 1, 1), schedule=None):
    EmptyOperator(task_id="noop")
'''


@pytest.fixture(scope="module")
def old_bin() -> Path:
    return airflow_venv(OLD) / "bin"


@pytest.fixture(scope="module")
def new_bin() -> Path:
    return airflow_venv(NEW) / "bin"


@pytest.fixture
def airflow(tmp_path_factory, pg_url):
    """airflow(bin, *args): one Airflow CLI call of a given release against this test's fresh database."""
    tmp_path = tmp_path_factory.mktemp("airflow")
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "survivor.py").write_text(TINY_DAG)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env |= {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg_url.replace("postgresql://", "postgresql+psycopg2://", 1),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(tmp_path / "logs"),
            "AIRFLOW__CORE__AUTH_MANAGER": FAB_AUTH_MANAGER}

    def call(bin_dir: Path, *args: str, timeout: float = 300, argv: list[str] | None = None,
             extra_env: dict[str, str] | None = None):
        home = tmp_path / f"home-{bin_dir.parent.name}"
        home.mkdir(exist_ok=True)
        run_env = env | {"AIRFLOW_HOME": str(home), "PATH": f"{bin_dir}:{env.get('PATH', '')}"} | (extra_env or {})
        return subprocess.run(argv or [str(bin_dir / "airflow"), *args], env=run_env, capture_output=True,
                              text=True, timeout=timeout)

    call.env = env
    call.home = lambda bin_dir: tmp_path / f"home-{bin_dir.parent.name}"
    return call


def ok(result) -> str:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def alembic_version(pg_url: str, table: str = "alembic_version") -> str:
    import psycopg

    with psycopg.connect(pg_url) as conn:
        return conn.execute(f"SELECT version_num FROM {table}").fetchone()[0]


def fab_version(pg_url: str) -> str:
    return alembic_version(pg_url, "alembic_version_fab")


def history(repo: Path, old: str, new: str) -> None:
    """A repository whose last commit raises Airflow old -> new."""
    values = repo / "charts-values/airflow/common.yaml"
    values.write_text(values.read_text().replace(f'"{NEW}"', f'"{old}"'))
    commit_all(repo, f"Airflow {old}")
    values.write_text(values.read_text().replace(f'"{old}"', f'"{new}"'))
    git(repo, "commit", "-qam", f"Airflow {new}")


OFFLINE = Options(targets=[Target("kind")], live=False)


def step1_migrate_job(repo: Path) -> tuple[list[str], dict[str, str]]:
    """What the migrate Job runs in step 1 (the tool's layer written into the tree, composed as Flux would), and the
    variables its pod gets from that layer's annotation."""
    _, actions = plan(make_settings(repo), "HEAD", OFFLINE)
    layer = next(a for a in actions if isinstance(a, Write) and a.path == LAYER)
    (repo / LAYER).write_text(layer.text)
    values = airflow_at(Settings(repo), "kind").state  # the composed values below, via the real HelmRelease
    from airflow_gitops.helm_controller.values import compose
    from airflow_gitops.source.provenance import SourceIndex

    hr = next(r for r in values.resources if r.kind == "HelmRelease" and r.name == "airflow")
    composed = compose(values, SourceIndex(repo), hr).values
    assert all(composed[c]["replicas"] == 0 for c in ("scheduler", "apiServer", "dagProcessor", "triggerer"))
    job = composed["migrateDatabaseJob"]
    assert job["env"][0]["valueFrom"]["fieldRef"]["fieldPath"] == f"metadata.annotations['{ROLLBACK_TO}']"
    pod = {"metadata": {"annotations": job["annotations"]}, "spec": {}}
    # As the kubelet hands them over: a downward-API annotation that is absent is the empty string.
    return job["args"], {e["name"]: field_value(pod, e["valueFrom"]["fieldRef"]["fieldPath"])
                         for e in job["env"] if "fieldRef" in (e.get("valueFrom") or {})}


def test_the_heads_really_differ_between_the_two_releases():
    assert airflow_versions.heads_differ(OLD, NEW)


def test_naive_revert_fails_as_on_the_cluster(airflow, old_bin, new_bin, pg_url):
    ok(airflow(old_bin, "db", "migrate"))
    ok(airflow(new_bin, "db", "migrate"))
    assert alembic_version(pg_url) == airflow_versions.migration_head(NEW)
    # The chart's wait-for-migrations init container, with A's image: times out.
    check = airflow(old_bin, "db", "check-migrations", "-t", "5", timeout=120)
    assert check.returncode != 0
    assert airflow_versions.migration_head(NEW) in check.stdout + check.stderr
    migrate = airflow(old_bin, "db", "migrate")
    assert migrate.returncode != 0
    assert "Can't locate revision" in migrate.stdout + migrate.stderr


def fab_token(port: int, username: str, password: str, wait_s: float = 90) -> str:
    """POST /auth/token of the FAB auth manager (its FastAPI app under /auth): the body, once the API server answers."""
    import urllib.error
    import urllib.request

    body = json.dumps({"username": username, "password": password}).encode()
    deadline = time.monotonic() + wait_s
    while True:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/auth/token", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.read().decode()
        except (urllib.error.URLError, ConnectionError) as error:
            if isinstance(error, urllib.error.HTTPError) and error.code < 500 or time.monotonic() > deadline:
                raise AssertionError(f"POST /auth/token: {error}") from None
            time.sleep(3)


def start(airflow, bin_dir: Path, *args: str) -> subprocess.Popen:
    home = airflow.home(bin_dir)
    home.mkdir(exist_ok=True)
    env = airflow.env | {"AIRFLOW_HOME": str(home), "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
    log = open(home / f"{args[0]}.log", "w")  # noqa: SIM115  (closed with the process)
    return subprocess.Popen([str(bin_dir / "airflow"), *args], env=env, stdout=log, stderr=subprocess.STDOUT)


def test_step1_brings_the_database_back_and_the_old_release_starts(airflow, old_bin, new_bin, pg_url, repo_copy):
    ok(airflow(old_bin, "db", "migrate"))
    # The chart's createUserJob: a FAB user, in FAB's tables.
    ok(airflow(old_bin, "users", "create", "-u", "admin", "-p", "admin", "-r", "Admin", "-f", "A", "-l", "D",
               "-e", "admin@example.com"))
    ok(airflow(old_bin, "dags", "reserialize"))
    ok(airflow(old_bin, "dags", "trigger", "survivor", "--run-id", "before_upgrade"))
    fab_before = fab_version(pg_url)
    ok(airflow(new_bin, "db", "migrate"))
    # B's `db migrate` migrated FAB's schema too; between these two images FAB's head is the same.
    assert fab_version(pg_url) == fab_before == airflow_versions.fab_migration_head(NEW)
    # B's dag-processor ran too: the serialized DAGs in the database are B's.
    ok(airflow(new_bin, "dags", "reserialize"))
    ok(airflow(new_bin, "dags", "trigger", "survivor", "--run-id", "during_upgrade"))

    history(repo_copy, OLD, NEW)
    args, pod_env = step1_migrate_job(repo_copy)
    # The migrate Job of step 1 runs B's image: B's airflow on PATH, the args exactly as rendered.
    ok(airflow(new_bin, argv=args, extra_env=pod_env, timeout=300))
    assert alembic_version(pg_url) == airflow_versions.migration_head(OLD)
    assert pod_env["SCHEMA_ROLLBACK_FAB_TO"] == ""  # equal FAB heads: nothing to move back
    assert fab_version(pg_url) == airflow_versions.fab_migration_head(OLD)

    # check-migrations covers FAB's schema as well (RunDBManager.check_migration).
    ok(airflow(old_bin, "db", "check-migrations", "-t", "30", timeout=120))
    port = free_port()
    components = [start(airflow, old_bin, "scheduler"), start(airflow, old_bin, "dag-processor"),
                  start(airflow, old_bin, "api-server", "--port", str(port))]
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if airflow(old_bin, "jobs", "check", "--job-type", "SchedulerJob", timeout=60).returncode == 0:
                break
            time.sleep(3)
        else:
            pytest.fail(f"{OLD}'s scheduler never heartbeat: " + (airflow.home(old_bin) / "scheduler.log").read_text()[-3000:])
        time.sleep(10)
        for process, name in zip(components, ("scheduler", "dag-processor", "api-server"), strict=True):
            assert process.poll() is None, f"{name} exited: " + (airflow.home(old_bin) / f"{name}.log").read_text()[-3000:]
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            pass
        # A's FAB auth manager logs the user in, on the FAB schema B's migrate left.
        assert "access_token" in fab_token(port, "admin", "admin")
    finally:
        for process in components:
            process.terminate()
        for process in components:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    runs = ok(airflow(old_bin, "dags", "list-runs", "survivor", "-o", "plain"))
    assert "before_upgrade" in runs and "during_upgrade" in runs
    assert "survivor" in ok(airflow(old_bin, "dags", "list", "-o", "plain"))


def test_equal_heads_plan_a_plain_revert_and_the_downgrade_is_a_no_op(airflow, new_bin, pg_url, repo_copy):
    history(repo_copy, "3.3.1", NEW)
    summary, actions = plan(make_settings(repo_copy), "HEAD", OFFLINE)
    assert not any(isinstance(a, Write) and a.path == LAYER for a in actions)
    assert any("equal migration heads: no-op for the schema" in line for line in summary)
    # With real Airflow: B's downgrade to a release of the same head leaves the schema where it is.
    ok(airflow(new_bin, "db", "migrate"))
    before = alembic_version(pg_url)
    result = airflow(new_bin, "db", "downgrade", "--to-version", "3.3.1", "-y")
    assert alembic_version(pg_url) == before == airflow_versions.migration_head("3.3.1")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
