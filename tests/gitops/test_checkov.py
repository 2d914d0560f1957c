"""checkov (its own venv, .venv-checkov) over what each cluster applies: no failed check outside .checkov.yaml.

Without the chart (CI), the Git objects are scanned and the chart part skips loudly. Without checkov the
tests skip loudly, unless AIRFLOW_GITOPS_REQUIRE_CHECKOV=1 (set by .ci/run after scripts/checkov-venv.sh).
"""

from __future__ import annotations

import pytest
import yaml
from airflow_gitops.checks import checkov_scan
from airflow_gitops.model import Resource

from tests.helpers import REPO, make_settings, skip_for


@pytest.fixture
def checkov():
    binary = checkov_scan.checkov_binary(REPO)
    if not binary.exists():
        skip_for("checkov", f"not at {binary}: run scripts/checkov-venv.sh")
    return binary


def test_every_skipped_check_has_a_one_line_reason():
    config = yaml.safe_load((REPO / ".checkov.yaml").read_text())
    reasons = checkov_scan.skip_reasons(REPO)
    assert sorted(config["skip-check"]) == sorted(reasons)
    assert all(len(reason) > 20 for reason in reasons.values()), reasons


def test_git_objects_pass(checkov, cluster):
    objects, _ = checkov_scan.objects_of(make_settings(), cluster, charts=False)
    result = checkov_scan.scan(REPO, objects, checkov)
    assert result.failed == []


def test_chart_objects_and_worker_pod_template_pass(checkov, rendered_airflow, cluster):
    objects, _ = checkov_scan.objects_of(make_settings(), cluster)
    assert any(r.kind == "Pod" and r.location.endswith("data.pod_template_file.yaml)") for r in objects)
    result = checkov_scan.scan(REPO, objects, checkov)
    assert result.failed == []
    assert result.passed > 500
    print(f"{cluster}: passed {result.passed}, skipped {len(result.skipped)}, failed {len(result.failed)}")


def test_a_privileged_container_fails_the_scan(checkov):
    bad = Resource({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bad", "namespace": "airflow"},
        "spec": {"selector": {"matchLabels": {"app": "bad"}}, "template": {
            "metadata": {"labels": {"app": "bad"}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.37", "securityContext": {"privileged": True}}]}}},
    }, "apps/base/bad.yaml", "Kustomization flux-system/apps")
    result = checkov_scan.scan(REPO, [bad], checkov)
    assert "apps/base/bad.yaml: Deployment airflow/bad: CKV_K8S_16 Container should not be privileged" in result.failed


WILDCARD_ROLE = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "all"},
                 "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}


def test_a_wildcard_cluster_role_fails_unless_it_is_one_of_fluxs_own(checkov):
    """The one check accepted on Flux's components (checkov_scan.FLUX_COMPONENT_SKIPS) is accepted there only."""
    ours = Resource(WILDCARD_ROLE, "infrastructure/controllers/base/role.yaml", "Kustomization flux-system/apps")
    flux = Resource(WILDCARD_ROLE, "clusters/eks/flux-system/gotk-components.yaml", "Kustomization flux-system/flux-system")
    result = checkov_scan.scan(REPO, [ours, flux], checkov)
    assert [line for line in result.failed if "CKV_K8S_49" in line] == [
        "infrastructure/controllers/base/role.yaml: ClusterRole all: CKV_K8S_49 Minimize wildcard use in Roles and "
        "ClusterRoles"]
    assert [line for line in result.skipped if "CKV_K8S_49" in line] == [
        "clusters/eks/flux-system/gotk-components.yaml: ClusterRole all: CKV_K8S_49 Minimize wildcard use in Roles "
        "and ClusterRoles"]
