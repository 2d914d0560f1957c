"""Each policy catches a fixture that breaks it, and the error names the file, the object and the field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from airflow_gitops.checks import policies
from airflow_gitops.checks.validation import validate_cluster
from airflow_gitops.model import Resource

from tests.helpers import edit, make_settings, require_values_schema, skip_for


def errors(repo: Path, cluster: str = "kind") -> list[str]:
    return [str(f) for f in validate_cluster(make_settings(repo), cluster).errors]


def only(found: list[str], pattern: str) -> list[str]:
    return [line for line in found if re.search(pattern, line)]


def test_typo_in_a_values_key_names_the_values_file(repo_copy):
    require_values_schema()
    edit(repo_copy, "charts-values/airflow/common.yaml", "\nexecutor: KubernetesExecutor", "\nexeutor: KubernetesExecutor")
    assert only(errors(repo_copy), r"^charts-values/airflow/common.yaml: values of HelmRelease airflow/airflow: "
                                   r"exeutor: unknown top-level key")


def test_typo_in_a_nested_values_key_names_the_values_file_and_path(repo_copy):
    require_values_schema("eks")
    edit(repo_copy, "charts-values/airflow/eks.yaml", "statsd:\n  resources:", "statsd:\n  resourses:")
    assert only(errors(repo_copy, "eks"), r"^charts-values/airflow/eks.yaml: .*: statsd: .*resourses")


def test_old_flux_api_version_names_the_manifest(repo_copy):
    edit(repo_copy, "apps/base/airflow/helmrelease.yaml", "helm.toolkit.fluxcd.io/v2", "helm.toolkit.fluxcd.io/v2beta1")
    assert only(errors(repo_copy), r"^apps/base/airflow/helmrelease.yaml: HelmRelease airflow/airflow: apiVersion: "
                                   r"helm.toolkit.fluxcd.io/v2beta1 is not served")


@pytest.mark.parametrize("version", ["1.22.*", ">=1.22.0", "~1.22.0", "^1.22", ""])
def test_chart_version_range_is_an_error(repo_copy, version):
    edit(repo_copy, "apps/base/airflow/helmrelease.yaml", 'version: "1.22.0"', f'version: "{version}"')
    assert only(errors(repo_copy), r"^apps/base/airflow/helmrelease.yaml: HelmRelease airflow/airflow: "
                                   r"spec.chart.spec.version: .*not an exact chart version")


def test_kustomization_path_that_does_not_exist(repo_copy):
    edit(repo_copy, "clusters/kind/apps.yaml", "path: ./apps/kind", "path: ./apps/knd")
    assert only(errors(repo_copy), r"^clusters/kind/apps.yaml: Kustomization flux-system/apps: spec.path: "
                                   r"path './apps/knd' is not a folder")


def test_broken_yaml_names_the_file_and_line(repo_copy):
    edit(repo_copy, "infrastructure/configs/base/airflow-db.yaml", "  instances: 1\n", "  instances: [1\n")
    assert only(errors(repo_copy), r"^infrastructure/configs/base/airflow-db.yaml: \(YAML\): line \d+")


def test_broken_values_yaml_names_the_values_file(repo_copy):
    edit(repo_copy, "charts-values/airflow/kind.yaml", "triggerer:\n", "triggerer: [\n")
    assert only(errors(repo_copy), r"^charts-values/airflow/kind.yaml: \(YAML\): line \d+")


def test_plaintext_secret_in_git(repo_copy):
    (repo_copy / "infrastructure/configs/base/leak.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: leak\n  namespace: airflow\nstringData:\n  password: x\n")
    edit(repo_copy, "infrastructure/configs/base/kustomization.yaml", "  - airflow-db.yaml", "  - airflow-db.yaml\n  - leak.yaml")
    assert only(errors(repo_copy), r"^infrastructure/configs/base/leak.yaml: Secret airflow/leak: stringData: "
                                   r"plaintext Secret")


def test_sops_encrypted_secret_is_allowed():
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "ENC[AES256_GCM,...]"},
              "sops": {"kms": [{"arn": "arn:aws:kms:..."}]}}
    assert policies.plaintext_secrets([Resource(secret, "f.yaml", "t")]) == []


def test_secret_value_in_chart_values(repo_copy):
    edit(repo_copy, "charts-values/airflow/kind.yaml", "triggerer:\n", "fernetKey: c2VjcmV0\ntriggerer:\n")
    assert only(errors(repo_copy), r"^charts-values/airflow/kind.yaml: values of HelmRelease airflow/airflow: "
                                   r"fernetKey: a secret in plain values")


def test_password_in_a_connection_url_in_values(repo_copy):
    edit(repo_copy, "charts-values/airflow/common.yaml", '"host": "randomuser.me"', '"host": "u:p@randomuser.me"')
    edit(repo_copy, "charts-values/airflow/common.yaml", "value: '{\"conn_type\"", "value: 'http://user:pw@x/ {\"conn_type\"")
    assert only(errors(repo_copy), r"^charts-values/airflow/common.yaml: .*: env\[0\].value: secret value in plain "
                                   r"chart values: .*a URL with a password")


@pytest.mark.parametrize("image, ok", [
    ("apache/airflow:3.3.2", True), ("ghcr.io/x/y@sha256:" + "a" * 64, True), ("registry:5000/x/y:1.0", True),
    ("apache/airflow", False), ("apache/airflow:latest", False), ("registry:5000/x/y", False),
])
def test_image_tags(image, ok):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": image}]}}
    found = policies.image_tags([Resource(pod, "f.yaml", "t")])
    assert (found == []) is ok
    if not ok:
        assert found[0].field == "spec.containers[0].image"


def test_untagged_database_image_in_git(repo_copy):
    edit(repo_copy, "infrastructure/configs/base/airflow-db.yaml", "postgresql:17.6", "postgresql")
    assert only(errors(repo_copy), r"^infrastructure/configs/base/airflow-db.yaml: Cluster airflow/airflow-db: "
                                   r"spec.imageName: image .* has no tag")


@pytest.mark.parametrize("key, value, message", [
    ("executor", "CeleryExecutor", "executor: must be 'KubernetesExecutor'"),
    ("redis", None, "redis.enabled: must be False"),
])
def test_airflow_contract(repo_copy, key, value, message):
    if key == "executor":
        edit(repo_copy, "charts-values/airflow/common.yaml", "executor: KubernetesExecutor", "executor: CeleryExecutor")
    else:
        edit(repo_copy, "charts-values/airflow/common.yaml", "redis:\n  enabled: false", "redis:\n  enabled: true")
    assert only(errors(repo_copy), re.escape(message))


def test_airflow_contract_jobs_must_not_use_helm_hooks(repo_copy):
    edit(repo_copy, "charts-values/airflow/common.yaml", "useHelmHooks: false", "useHelmHooks: true")
    assert only(errors(repo_copy), r"^charts-values/airflow/common.yaml: .*migrateDatabaseJob.useHelmHooks: must be False")


def test_airflow_contract_named_secrets(repo_copy):
    edit(repo_copy, "charts-values/airflow/common.yaml", "jwtSecretName: airflow-jwt-secret\n", "")
    assert only(errors(repo_copy), r"jwtSecretName: must be set")


def test_airflow_contract_git_sync(repo_copy):
    edit(repo_copy, "charts-values/airflow/common.yaml",
         "    enabled: true\n    # This repository", "    enabled: false\n    # This repository")
    assert only(errors(repo_copy), r"dags.gitSync.enabled: must be True")


def test_eks_containers_need_resource_requests():
    pod = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"template": {"spec": {"initContainers": [{"name": "i", "image": "x:1"}],
                                          "containers": [{"name": "c", "image": "x:1",
                                                          "resources": {"requests": {"cpu": "1"}}}]}}}}
    found = policies.resource_requests([Resource(pod, "f.yaml", "t")])
    assert [(f.field, f.message) for f in found] == [
        ("spec.template.spec.initContainers[0].resources.requests", "container 'i' requests no cpu or memory"),
        ("spec.template.spec.containers[0].resources.requests", "container 'c' requests no memory")]


def test_eks_container_without_memory_request_is_caught(repo_copy):
    edit(repo_copy, "charts-values/airflow/eks.yaml",
         "statsd:\n  resources:\n    requests:\n      cpu: 20m\n      memory: 64Mi\n",
         "statsd:\n  resources:\n    requests:\n      cpu: 20m\n")
    found = validate_cluster(make_settings(repo_copy), "eks")
    if any(r.unrendered_reason for r in found.state.releases if r.helmrelease.name == "airflow"):
        skip_for("chart", "the eks requests check runs on rendered chart objects")
    assert only([str(f) for f in found.errors], r"statsd.*requests no memory")


def test_cluster_folder_holds_only_kustomizations(repo_copy):
    (repo_copy / "clusters/kind/stray.yaml").write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: stray\n")
    assert only(errors(repo_copy), r"^clusters/kind/stray.yaml: Namespace stray: kind: clusters/<cluster>/ holds only")


def test_missing_variable_is_an_error(repo_copy):
    edit(repo_copy, "charts-values/airflow/common.yaml", "branch: ${git_branch}", "branch: ${git_brnch}")
    assert only(errors(repo_copy), r"^apps/base/airflow/kustomization.yaml: ConfigMap airflow/airflow-values-common-\w+: "
                                   r"data.values.yaml: variable \$\{git_brnch\}")


def test_eks_secret_read_by_name_needs_an_external_secret(repo_copy):
    edit(repo_copy, "charts-values/airflow/eks.yaml", "    sshKeySecret: airflow-git-ssh", "    sshKeySecret: airflow-git-sshkey")
    assert only(errors(repo_copy, "eks"), r"^charts-values/airflow/eks.yaml: values of HelmRelease airflow/airflow: "
                                          r"dags.gitSync.sshKeySecret: reads Secret airflow/airflow-git-sshkey, which no "
                                          r"ExternalSecret")


def test_eks_database_role_secret_needs_an_external_secret(repo_copy):
    edit(repo_copy, "infrastructure/configs/base/airflow-db.yaml", "name: pipelines-db-credentials", "name: pipelines-creds")
    assert only(errors(repo_copy, "eks"), r"Cluster airflow/airflow-db: spec.managed.roles\[0\].passwordSecret.name: "
                                          r"reads Secret airflow/pipelines-creds")


def test_every_secret_kind_reads_is_made_by_kind_up():
    """kind's Secrets are made at setup by scripts/kind-up.sh (never in Git); a new reference needs a new line there."""
    from tests.helpers import REPO, render

    made = set(re.findall(r"^\s*ensure_secret ([a-z0-9-]+)", (REPO / "scripts/kind-up.sh").read_text(), re.M))
    state = render("kind")
    read = {name for _, name, *_ in policies.referenced_secrets(state.resources, state.releases, lambda r, p: "")}
    assert read, "the kind cluster reads Secrets by name"
    assert read - made == set()
