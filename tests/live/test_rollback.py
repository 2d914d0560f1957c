"""The two-step Airflow rollback on the local cluster, with the migrate Job's pod run for real.

The cluster deploys a copy of this repository at Airflow 3.2.2 (A). The tests raise it to 3.3.2 (B), whose migration
head differs, and roll it back the ways the README names. Every migrate Job pod runs its real command line with the
Airflow of its image against a real PostgreSQL (live/kubelet.py): `airflow db migrate` with A, then with B, and
`airflow db downgrade --to-version A` with B's code in step 1; the schema is read back from PostgreSQL. Everything
else is what Flux, Helm and the API server do with the commits: Helm release Secrets, the HelmRelease's annotations
and conditions, the admission policy's refusal.

The tests share one cluster and run in order; each leaves it at A.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from airflow_gitops import airflow_versions
from airflow_gitops.dev.airflow_venvs import airflow_venv
from airflow_gitops.live import cluster as live
from airflow_gitops.live import flux, operators, tools
from airflow_gitops.live.git import desired_state_repository, set_airflow_version
from airflow_gitops.live.kubelet import MigrationKubelet

from tests.dags.conftest import pg_server_url  # noqa: F401  (fixture)
from tests.helpers import REPO, git
from tests.live.conftest import chart_packages, unavailable
from tests.live.flows import make

pytestmark = [pytest.mark.live, pytest.mark.postgres]

A, B = "3.2.2", "3.3.2"
OVERLAYS = Path(__file__).parent / "overlays"
NAMESPACE = "airflow"
VALUES = "charts-values/airflow/common.yaml"
COMPONENTS = {"Deployment": ("airflow-scheduler", "airflow-api-server", "airflow-dag-processor"),
              "StatefulSet": ("airflow-triggerer",)}


def alembic_head(url: str) -> str:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]


@pytest.fixture(scope="module")
def database(pg_server_url) -> str:  # noqa: F811  (the imported fixture)
    import psycopg

    name = f"live_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{pg_server_url.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def airflow_a(tmp_path_factory) -> Path:
    """This repository's desired state at Airflow A, as a Git repository of its own."""
    repo = desired_state_repository(REPO, tmp_path_factory.mktemp("repo-a"))
    set_airflow_version(repo, A)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", f"Airflow {A}")
    return repo


@pytest.fixture(scope="module")
def rollback_cluster(live_tools, tmp_path_factory, airflow_a, database, waits):
    charts = chart_packages()
    if "airflow" not in charts:
        unavailable("CHART NOT AVAILABLE: no Airflow chart package in ../shared/charts")
    from tests.live import conftest

    cluster = live.Cluster(conftest.cluster_folder("rollback-cluster"))
    conftest._CLUSTERS.append(cluster)
    kubelet = MigrationKubelet(cluster, database.replace("postgresql://", "postgresql+psycopg2://", 1),
                               {B: airflow_venv(B), A: airflow_venv(A)})
    try:
        cluster.up(airflow_a, charts=charts, log=lambda line: None, real_pods=("run-airflow-migrations",),
                   overlays=(live.Overlay(OVERLAYS / "short-job-ttl.yaml"),), die_with_parent=True)
        kubelet.start()
        flux.wait_ready(cluster, flux.KUSTOMIZATION, "infra-controllers", "flux-system", 300, waits=waits)
        flux.wait_for(cluster, "the database Cluster applied", lambda: flux.get(
            cluster, operators.CNPG_CLUSTER, "airflow-db", NAMESPACE) is not None, 120, waits)
        operators.play_cloudnative_pg(cluster)
        flux.wait_ready(cluster, flux.KUSTOMIZATION, "apps", "flux-system", 600, waits=waits)
        assert alembic_head(database) == airflow_versions.migration_head(A), kubelet.runs
        yield cluster, kubelet
    finally:
        kubelet.stop()
        conftest._CLUSTERS.remove(cluster)
        cluster.down(purge=not conftest.FAILED)


@pytest.fixture(scope="module")
def work(rollback_cluster, tmp_path_factory) -> Path:
    """A clone of the cluster's Git repository, as a user has it (remote origin), on the followed branch."""
    cluster, _ = rollback_cluster
    clone = tmp_path_factory.mktemp("work") / "repo"
    subprocess.run(["git", "clone", "-q", str(cluster.layout.bare_repository), str(clone)], check=True)
    git(clone, "config", "user.name", "Operator")
    git(clone, "config", "user.email", "operator@example.com")
    return clone


def tool_env(cluster: live.Cluster) -> dict[str, str]:
    path = [str(tools.require_tool("flux").parent), str(Path(sys.executable).parent), os.environ.get("PATH", "")]
    return {**os.environ, **cluster.env(), "PATH": os.pathsep.join(path)}


def push(cluster: live.Cluster, work: Path, message: str) -> str:
    git(work, "commit", "-qam", message)
    git(work, "push", "-q", "origin", "HEAD:main")
    flux.reconcile_source(cluster)
    return git(work, "rev-parse", "HEAD").strip()


def release(cluster: live.Cluster) -> dict:
    return flux.get(cluster, flux.HELMRELEASE, "airflow", NAMESPACE) or {}


def schema_annotation(obj: dict) -> str | None:
    return (obj["metadata"].get("annotations") or {}).get("airflow-gitops.io/schema-version")


def wait_release_on(cluster, waits, version: str, timeout: float = 900) -> None:
    schema = airflow_versions.schema_version(version)
    flux.wait_for(cluster, f"HelmRelease airflow Ready on Airflow {version}",
                  lambda: schema_annotation(obj := release(cluster)) == schema and flux.is_ready(obj), timeout, waits,
                  describe=lambda: flux.describe_flux(cluster))


def raise_airflow(cluster, work, waits, database) -> str:
    set_airflow_version(work, B)
    sha = push(cluster, work, f"Airflow {B}")
    wait_release_on(cluster, waits, B)
    assert alembic_head(database) == airflow_versions.migration_head(B)
    return sha


def rollback(cluster, work, sha: str, timeout: float = 1500) -> subprocess.CompletedProcess:
    """`make rollback SHA=<sha> CLUSTER=kind`, DRY_RUN off, as the README's Operate section runs it, on the user's
    clone `work` (the Makefile runs in this repository; --repo points the tool at the clone)."""
    return make(cluster, "rollback", f"SHA={sha}", "CLUSTER=kind", f"ARGS=--repo {work} --via push --timeout 900",
                timeout=timeout)


def manifest_objects(revision: dict) -> dict[tuple[str, str], dict]:
    return {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(revision["manifest"]) if o}


def downgrade_runs(kubelet: MigrationKubelet) -> list[dict]:
    return [r for r in kubelet.runs if r.get("image") == f"apache/airflow:{B}"
            and "downgrade" in " ".join(r.get("argv", []))]


def test_the_two_step_rollback_runs_each_step_as_the_readme_says(rollback_cluster, work, waits, database):
    cluster, kubelet = rollback_cluster
    bump = raise_airflow(cluster, work, waits, database)
    before = len(downgrade_runs(kubelet))

    result = rollback(cluster, work, bump)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    assert alembic_head(database) == airflow_versions.migration_head(A), kubelet.runs[-3:]

    revisions = flux.helm_releases(cluster, "airflow", NAMESPACE)
    step1 = next(r for r in reversed(revisions.values())
                 if ((r.get("config") or {}).get("migrateDatabaseJob") or {}).get("annotations"))
    objects = manifest_objects(step1)
    for kind, names in COMPONENTS.items():
        for name in names:
            assert objects[(kind, name)]["spec"]["replicas"] == 0, (kind, name)
    job = objects[("Job", "airflow-run-airflow-migrations")]
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == f"apache/airflow:{B}"
    assert job["spec"]["template"]["metadata"]["annotations"]["airflow-gitops.io/schema-rollback-to"] == A
    last = manifest_objects(revisions[max(revisions)])
    assert last[("Deployment", "airflow-scheduler")]["spec"]["replicas"] == 1
    assert last[("Deployment", "airflow-scheduler")]["spec"]["template"]["spec"]["containers"][0]["image"] == \
        f"apache/airflow:{A}"
    runs = downgrade_runs(kubelet)[before:]
    assert runs and runs[-1]["exit_code"] == 0, runs
    subjects = git(cluster.layout.bare_repository, "log", "--format=%s", "-2", "main").splitlines()
    assert subjects == [f'Revert "Airflow {B}" (Airflow {B} -> {A}, step 2 of 2)',
                        f"Roll back Airflow {B} -> {A}, step 1 of 2: stop Airflow, downgrade the schema"]


def test_a_plain_revert_is_refused_by_the_api_server_and_make_rollback_is_the_way_out(
        rollback_cluster, work, waits, database):
    cluster, kubelet = rollback_cluster
    bump = raise_airflow(cluster, work, waits, database)
    generation = release(cluster)["metadata"]["generation"]

    git(work, "revert", "--no-edit", bump)
    git(work, "push", "-q", "origin", "HEAD:main")
    flux.reconcile_source(cluster)
    message = ""

    def refused() -> bool:
        nonlocal message
        apps = flux.get(cluster, flux.KUSTOMIZATION, "apps", "flux-system") or {}
        message = (flux.condition(apps) or {}).get("message", "")
        return "would run an older Airflow on a newer schema" in message

    flux.wait_for(cluster, "apps refused by the schema guard", refused, 180, waits)
    assert "make rollback SHA=" in message
    obj = release(cluster)
    assert obj["metadata"]["generation"] == generation and schema_annotation(obj) == "3.3.0"
    assert alembic_head(database) == airflow_versions.migration_head(B)

    result = rollback(cluster, work, bump)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    assert f"HEAD already reverted Airflow to {A} without step 1" in result.stdout
    assert alembic_head(database) == airflow_versions.migration_head(A)
    assert flux.is_ready(flux.get(cluster, flux.KUSTOMIZATION, "apps", "flux-system") or {})


def test_an_interrupted_rollback_resumes_with_step_2(rollback_cluster, work, waits, database):
    cluster, _ = rollback_cluster
    bump = raise_airflow(cluster, work, waits, database)
    tool = subprocess.Popen([str(Path(sys.executable).parent / "airflow-gitops"), "rollback", bump, "--repo", str(work),
                             "--cluster", "kind", "--via", "push"], env=tool_env(cluster), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seen = []
    assert tool.stdout is not None
    for line in tool.stdout:
        seen.append(line)
        if "step 1: pushed" in line:
            tool.kill()  # interrupted after step 1 reached the branch
            break
    tool.wait(timeout=60)
    assert any("step 1: pushed" in line for line in seen), "".join(seen)

    result = rollback(cluster, work, bump)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    assert "HEAD holds step 1 of this rollback: resuming" in result.stdout
    assert alembic_head(database) == airflow_versions.migration_head(A)
    wait_release_on(cluster, waits, A)


def test_the_schema_guard_refuses_a_lowered_schema_version_without_step_1(rollback_cluster):
    cluster, _ = rollback_cluster
    obj = release(cluster)
    patch = {"metadata": {"annotations": {"airflow-gitops.io/schema-version": "3.1.0"}}}
    result = cluster.kubectl("patch", flux.HELMRELEASE, "airflow", "-n", NAMESPACE, "--type=merge", "--dry-run=server",
                             "-p", json.dumps(patch), check=False)
    assert result.returncode != 0 and "airflow-schema-forward-only" in result.stderr, result.stderr
    raised = {"metadata": {"annotations": {"airflow-gitops.io/schema-version": "3.3.0"}}}
    assert cluster.kubectl("patch", flux.HELMRELEASE, "airflow", "-n", NAMESPACE, "--type=merge", "--dry-run=server",
                           "-p", json.dumps(raised), check=False).returncode == 0
    assert schema_annotation(obj) == "3.2.0"


MIGRATE_JOB = "airflow-run-airflow-migrations"
HOLD = "airflow-gitops.io/test-hold"
TTL_TEST = "airflow-gitops.io/ttl-window-test"


def migrate_job(cluster: live.Cluster) -> dict | None:
    result = cluster.kubectl("get", "job", MIGRATE_JOB, "-n", NAMESPACE, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def set_migrate_pod_annotation(work: Path, value: str) -> None:
    values = work / VALUES
    text = values.read_text()
    line = f'    {TTL_TEST}: "{value}"\n'
    if TTL_TEST in text:
        text = "".join(line if TTL_TEST in old else old for old in text.splitlines(keepends=True))
    else:
        text = text.replace("\nmigrateDatabaseJob:\n", f"\nmigrateDatabaseJob:\n  annotations:\n{line}", 1)
    values.write_text(text)


def test_a_change_to_the_migrate_job_inside_its_ttl_window_fails_and_the_retry_applies_it_forward(
        rollback_cluster, work, waits):
    """Item 3: within ttlSecondsAfterFinished any change to a chart Job's pod template fails ("field is immutable").
    The finished Job is held here by a finalizer (the window, made as long as the test needs); the release stays on
    its last good revision, is not rolled back, and the retry after the Job is gone applies the change."""
    cluster, _ = rollback_cluster
    wait_release_on(cluster, waits, A)
    flux.wait_for(cluster, "the last rollback's migrate Job deleted by its TTL", lambda: migrate_job(cluster) is None,
                  180, waits)
    set_migrate_pod_annotation(work, "1")
    push(cluster, work, "Migrate Job: a pod annotation")

    def created_and_held() -> bool:
        job = migrate_job(cluster)
        annotations = (job or {}).get("spec", {}).get("template", {}).get("metadata", {}).get("annotations") or {}
        if annotations.get(TTL_TEST) != "1":
            return False
        cluster.kubectl("patch", "job", MIGRATE_JOB, "-n", NAMESPACE, "--type=merge", "-p",
                        json.dumps({"metadata": {"finalizers": [HOLD]}}))
        return True

    flux.wait_for(cluster, "the new migrate Job created, and held by a finalizer", created_and_held, 300, waits)
    version, _ = flux.latest_release(cluster, "airflow", NAMESPACE)
    flux.wait_for(cluster, "that upgrade deployed", lambda: flux.is_ready(release(cluster))
                  and flux.latest_release(cluster, "airflow", NAMESPACE)[1]["info"]["status"] == "deployed", 600, waits)
    good = flux.latest_release(cluster, "airflow", NAMESPACE)[0]

    set_migrate_pod_annotation(work, "2")
    push(cluster, work, "Migrate Job: the annotation changed while the finished Job exists")

    def failed_on_the_job() -> bool:
        return any(v > good and r["info"]["status"] == "failed" and "immutable" in r["info"].get("description", "")
                   for v, r in flux.helm_releases(cluster, "airflow", NAMESPACE).items())

    flux.wait_for(cluster, "the upgrade failed on the Job's immutable pod template", failed_on_the_job, 300, waits,
                  describe=lambda: flux.describe_flux(cluster))
    time.sleep(45)  # longer than the overlay's retryInterval (30 s): a retry while the Job exists fails the same way
    revisions = flux.helm_releases(cluster, "airflow", NAMESPACE)
    assert not [v for v, r in revisions.items() if v > good and r["info"].get("description", "").startswith(
        "Rollback")], {v: r["info"].get("description") for v, r in revisions.items()}
    assert migrate_job(cluster) is not None

    job = migrate_job(cluster) or {}
    finalizers = [f for f in job["metadata"].get("finalizers") or [] if f != HOLD]
    cluster.kubectl("patch", "job", MIGRATE_JOB, "-n", NAMESPACE, "--type=json", "-p",
                    json.dumps([{"op": "replace", "path": "/metadata/finalizers", "value": finalizers}]))

    def applied_forward() -> bool:
        version, newest = flux.latest_release(cluster, "airflow", NAMESPACE)
        if version <= good or newest["info"]["status"] != "deployed" or not flux.is_ready(release(cluster)):
            return False
        job = manifest_objects(newest)[("Job", MIGRATE_JOB)]
        return job["spec"]["template"]["metadata"]["annotations"].get(TTL_TEST) == "2"

    flux.wait_for(cluster, "the retry after the Job is gone deployed the change", applied_forward, 600, waits,
                  describe=lambda: flux.describe_flux(cluster))
    assert flux.latest_release(cluster, "airflow", NAMESPACE)[0] > version
