"""The layout Flux users know, the Flux settings the issue asks for, and push-to-live latencies."""

from __future__ import annotations

import pytest
import yaml
from airflow_gitops.operate import latency

from tests.helpers import REPO, render


def kustomizations(cluster: str) -> dict[str, dict]:
    return {r.name: r.obj for r in render(cluster).resources if r.kind == "Kustomization"}


def test_infrastructure_first_then_apps_chained_by_depends_on(cluster):
    ks = kustomizations(cluster)
    assert ks["infra-configs"]["spec"]["dependsOn"] == [{"name": "infra-controllers"}]
    # Where Airflow version changes are backed up first (eks), the backup Kustomization sits in between.
    before_apps = "db-backup" if "db-backup" in ks else "infra-configs"
    assert ks["apps"]["spec"]["dependsOn"] == [{"name": before_apps}]
    if "db-backup" in ks:
        assert ks["db-backup"]["spec"]["dependsOn"] == [{"name": "infra-configs"}]
    assert "dependsOn" not in ks["infra-controllers"]["spec"]


@pytest.mark.parametrize("name", ["infra-controllers", "infra-configs", "apps"])
def test_kustomizations_prune_wait_and_have_sized_timeouts(cluster, name):
    spec = kustomizations(cluster)[name]["spec"]
    assert spec["prune"] is True and spec["wait"] is True
    assert latency.seconds(spec["timeout"]) >= 300 and latency.seconds(spec["retryInterval"]) > 0
    assert spec["postBuild"]["substituteFrom"][0] == {"kind": "ConfigMap", "name": "cluster-vars"}


def test_apps_timeout_covers_the_helmrelease_timeout(cluster):
    release = next(r.obj for r in render(cluster).resources if r.kind == "HelmRelease" and r.name == "airflow")
    assert latency.seconds(kustomizations(cluster)["apps"]["spec"]["timeout"]) > latency.seconds(release["spec"]["timeout"])


def test_helmrelease_remediation_and_drift_detection(cluster):
    spec = next(r.obj["spec"] for r in render(cluster).resources if r.kind == "HelmRelease" and r.name == "airflow")
    assert spec["releaseName"] == "airflow"
    assert spec["install"]["remediation"]["retries"] > 0
    assert spec["upgrade"]["remediation"] == {"retries": 3, "strategy": "rollback", "remediateLastFailure": True}
    assert spec["driftDetection"]["mode"] == "enabled"
    assert latency.seconds(spec["timeout"]) >= 600 and 0 < spec["maxHistory"] <= 20
    assert spec["chart"]["spec"]["version"] == "1.22.0"


def test_flux_system_is_bootstraps_except_documented_patches(cluster):
    """gotk-components.yaml is `flux install --export` (tests/gitops/test_flux_components.py); the kustomization adds
    only the shared component and, on EKS, the webhook Service, and kind has no gotk-sync.yaml (kind-up makes it)."""
    kustomization = yaml.safe_load((REPO / f"clusters/{cluster}/flux-system/kustomization.yaml").read_text())
    sync = ["gotk-sync.yaml"] if cluster == "eks" else []
    assert kustomization["resources"] == ["gotk-components.yaml", *sync]
    assert kustomization["components"] == ["../../../infrastructure/flux-system"]
    assert {p["target"]["name"] for p in kustomization.get("patches", [])} == (
        {"webhook-receiver"} if cluster == "eks" else set())
    component = yaml.safe_load((REPO / "infrastructure/flux-system/kustomization.yaml").read_text())
    # Namespace flux-system: its Pod Security labels (docs/hardening.md).
    assert [p["target"].get("name") or p["target"]["labelSelector"] for p in component["patches"]] == [
        "kustomize-controller", "app.kubernetes.io/part-of=flux", "flux-system"]


def test_overlays_hold_only_their_values_file():
    for cluster in ("kind", "eks"):
        overlay = yaml.safe_load((REPO / f"apps/{cluster}/kustomization.yaml").read_text())
        assert overlay["resources"] == ["../base/airflow"]
        assert overlay["configMapGenerator"][0]["files"] == [f"values.yaml=../../charts-values/airflow/{cluster}.yaml"]


@pytest.mark.parametrize("text, seconds", [("1m", 60), ("1m30s", 90), ("10s", 10), ("2h", 7200), (30, 30), ("500ms", 0.5)])
def test_go_durations(text, seconds):
    assert latency.seconds(text) == seconds


def test_push_to_live_latencies_meet_their_targets(cluster):
    results = {item.path: item for item in latency.push_to_live(render(cluster))}
    assert results["new DAG"].seconds <= 60
    assert results["config change (poll)"].seconds <= 120
    assert all(item.verdict in ("", "ok") for item in results.values())


def test_eks_offers_a_webhook_receiver_for_instant_reconciles():
    receiver = next(r.obj for r in render("eks").resources if r.kind == "Receiver")
    assert receiver["spec"]["resources"][0] == {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                                                "name": "flux-system"}
    assert any(item.path == "config change (webhook)" for item in latency.push_to_live(render("eks")))
