"""checkov (its own venv, .venv-checkov) over what each cluster applies: no failed check outside .checkov.yaml.

Without the chart (CI), the Git objects are scanned and the chart part skips loudly. Without checkov the
tests skip loudly, unless AIRFLOW_GITOPS_REQUIRE_CHECKOV=1 (set by .ci/run after scripts/checkov-venv.sh).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pytest
import yaml
from airflow_gitops.checks import checkov_scan
from airflow_gitops.model import Resource

from tests.helpers import CLUSTERS, REPO, make_settings, skip_for


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


@lru_cache(maxsize=4)
def chart_scan(cluster: str, binary: Path) -> checkov_scan.Scan:
    """One checkov scan of everything the cluster applies, every chart rendered (skips loudly otherwise)."""
    objects, unrendered = checkov_scan.objects_of(make_settings(), cluster)
    if unrendered:
        skip_for("chart", f"chart objects not scanned: {'; '.join(unrendered)}")
    assert any(r.kind == "Pod" and r.location.endswith("data.pod_template_file.yaml)") for r in objects)
    return checkov_scan.scan(REPO, objects, binary)


def test_chart_objects_and_worker_pod_template_pass(checkov, cluster):
    result = chart_scan(cluster, checkov)
    assert result.failed == []
    assert result.passed > 500
    print(f"{cluster}: passed {result.passed}, skipped {len(result.skipped)}, exempted {len(result.exempted)}, "
          f"failed {len(result.failed)}")


def test_every_object_exemption_is_still_needed(checkov):
    unused = set.intersection(*(chart_scan(cluster, checkov).unused_exemptions for cluster in CLUSTERS))
    assert unused == set(), "exempted in pyproject.toml but failing on no cluster: remove them"


def test_every_object_exemption_has_a_check_objects_and_a_reason():
    found = checkov_scan.exemptions(REPO)
    assert found
    assert all(e.check.startswith("CKV") and e.objects and len(e.reason) > 100 for e in found), found


def test_a_malformed_object_exemption_is_an_error(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[[tool.airflow-gitops.checkov-exemptions]]\ncheck = "CKV2_K8S_6"\nobjects = ["Deployment a/b"]\n')
    with pytest.raises(ValueError, match="#1: expected exactly the keys check, objects, reason"):
        checkov_scan.exemptions(tmp_path)


def test_an_object_exemption_spares_only_the_objects_it_names(checkov):
    rules = [{"apiGroups": ["admissionregistration.k8s.io"], "resources": ["validatingwebhookconfigurations"],
              "verbs": ["get", "patch"]}]
    roles = [Resource({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
                       "rules": rules}, "infrastructure/x.yaml", "Kustomization flux-system/infra-controllers")
             for name in ("cloudnative-pg", "not-exempted")]
    result = checkov_scan.scan(REPO, roles, checkov)
    assert [line for line in result.exempted if "CKV_K8S_155" in line] == [
        "infrastructure/x.yaml: ClusterRole cloudnative-pg: CKV_K8S_155 Minimize ClusterRoles that grant control over "
        "validating or mutating admission webhook configurations"]
    assert any(line.startswith("infrastructure/x.yaml: ClusterRole not-exempted: CKV_K8S_155") for line in result.failed)


def test_a_privileged_container_fails_the_scan(checkov):
    bad = Resource({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bad", "namespace": "airflow"},
        "spec": {"selector": {"matchLabels": {"app": "bad"}}, "template": {
            "metadata": {"labels": {"app": "bad"}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.37", "securityContext": {"privileged": True}}]}}},
    }, "apps/base/bad.yaml", "Kustomization flux-system/apps")
    result = checkov_scan.scan(REPO, [bad], checkov)
    assert "apps/base/bad.yaml: Deployment airflow/bad: CKV_K8S_16 Container should not be privileged" in result.failed


def test_flux_components_are_scanned_apart_so_their_open_policy_hides_no_pod(checkov):
    """checkov joins NetworkPolicies to pods across namespaces; Flux's allow-egress selects every pod of flux-system
    only, so it must not count as the policy of a pod elsewhere (checkov_scan.FLUX_COMPONENTS)."""
    flux_policy = Resource({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                            "metadata": {"name": "allow-egress", "namespace": "flux-system"},
                            "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]}},
                           "clusters/kind/flux-system/gotk-components.yaml", "Kustomization flux-system/flux-system")
    pod = Resource({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "alone", "namespace": "airflow"},
                    "spec": {"containers": [{"name": "c", "image": "busybox:1.37"}]}},
                   "apps/base/alone.yaml", "Kustomization flux-system/apps")
    result = checkov_scan.scan(REPO, [flux_policy, pod], checkov)
    assert any(line.startswith("apps/base/alone.yaml: Pod airflow/alone: CKV2_K8S_6 ") for line in result.failed)
