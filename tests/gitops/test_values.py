"""One test per value the platform contract requires, on the values helm-controller composes for `airflow`."""

from __future__ import annotations

import tomllib

import pytest

from tests.helpers import REPO, airflow_release


@pytest.fixture
def values(cluster):
    return airflow_release(cluster).values


def pinned_airflow() -> str:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dags"]
    return next(d.split("==")[1] for d in deps if d.startswith("apache-airflow=="))


def test_kubernetes_executor(values):
    assert values["executor"] == "KubernetesExecutor"


def test_airflow_version_is_the_one_the_tests_install(values):
    assert values["airflowVersion"] == pinned_airflow() == "3.3.2"


def test_default_airflow_tag_is_the_one_the_tests_install(values):
    assert values["defaultAirflowTag"] == pinned_airflow()


def test_git_sync_is_enabled(values):
    assert values["dags"]["gitSync"]["enabled"] is True


def test_git_sync_repo_is_this_repository_from_the_cluster_variables(cluster, values):
    from tests.helpers import render

    assert values["dags"]["gitSync"]["repo"] == render(cluster).variables["git_url"]
    assert "airflow-gitops" in values["dags"]["gitSync"]["repo"]


def test_git_sync_branch_and_subpath(cluster, values):
    from tests.helpers import render

    assert values["dags"]["gitSync"]["branch"] == render(cluster).variables["git_branch"]
    assert values["dags"]["gitSync"]["ref"] == values["dags"]["gitSync"]["branch"]
    assert values["dags"]["gitSync"]["subPath"] == "dags"


def test_git_sync_has_a_period(values):
    assert values["dags"]["gitSync"]["period"]


def test_eks_git_sync_uses_a_deploy_key_and_pinned_known_hosts():
    git_sync = airflow_release("eks").values["dags"]["gitSync"]
    assert git_sync["sshKeySecret"] == "airflow-git-ssh"
    assert git_sync["knownHosts"].startswith("github.com ssh-ed25519 ")
    assert git_sync["repo"].startswith("git@github.com:")


@pytest.mark.parametrize("job", ["migrateDatabaseJob", "createUserJob"])
def test_jobs_run_without_helm_hooks(values, job):
    assert values[job]["useHelmHooks"] is False
    assert values[job]["applyCustomEnv"] is False


def test_bundled_postgresql_is_off_and_the_metadata_secret_is_named(values):
    assert values["postgresql"]["enabled"] is False
    assert values["data"]["metadataSecretName"] == "airflow-metadata-db"


@pytest.mark.parametrize("key, secret", [
    ("fernetKeySecretName", "airflow-fernet-key"),
    ("apiSecretKeySecretName", "airflow-api-secret-key"),
    ("jwtSecretName", "airflow-jwt-secret"),
])
def test_keys_come_from_secrets_made_outside_the_chart(values, key, secret):
    assert values[key] == secret


def test_redis_is_off(values):
    assert values["redis"]["enabled"] is False


def test_admin_password_is_read_from_a_secret_not_from_values(values):
    job = values["createUserJob"]
    assert "defaultUser" not in job
    assert {"name": "AIRFLOW_ADMIN_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "airflow-admin-user", "key": "password"}}} in job["env"]
