"""The layout Flux users know, the Flux settings the issue asks for, and push-to-live latencies."""

from __future__ import annotations

import pytest
import yaml
from airflow_gitops.checks import live_state
from airflow_gitops.helm_controller.api import HelmRelease
from airflow_gitops.model import Resource
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


def test_apps_timeout_covers_every_upgrade_and_rollback_of_the_airflow_release(cluster):
    release = next(r for r in render(cluster).resources if r.kind == "HelmRelease" and r.name == "airflow")
    worst, how = live_state.settle_time(HelmRelease.parse(release))
    assert (worst, how) == (36 * 60, "an upgrade attempt of 15m, the retry after 6m (RetryOnFailure) and a second "
                                      "attempt of 15m")
    assert latency.seconds(kustomizations(cluster)["apps"]["spec"]["timeout"]) > worst
    assert live_state.short_wait_timeouts(render(cluster).resources) == []


def flux_objects(spec_timeout: str, release_specs: dict[str, dict]) -> list[Resource]:
    ks = Resource({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                   "metadata": {"name": "apps", "namespace": "flux-system"},
                   "spec": {"interval": "10m", "timeout": spec_timeout, "wait": True, "path": "./apps",
                            "sourceRef": {"kind": "GitRepository", "name": "flux-system"}}},
                  "clusters/dev/apps.yaml", "Kustomization flux-system/flux-system")
    releases = [Resource({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
                          "metadata": {"name": name, "namespace": "apps"}, "spec": spec},
                         f"apps/{name}.yaml", "Kustomization flux-system/apps") for name, spec in release_specs.items()]
    return [ks, *releases]


def test_a_wait_shorter_than_the_release_retries_is_an_error_naming_the_kustomization():
    spec = {"interval": "1h", "timeout": "10m", "upgrade": {"remediation": {"retries": 1}}}
    found = live_state.short_wait_timeouts(flux_objects("30m", {"a": spec}))
    assert [str(f) for f in found] == [
        "clusters/dev/apps.yaml: Kustomization flux-system/apps: spec.timeout: waits (wait: true or healthChecks) for "
        "HelmRelease apps/a, which can take 40m to end Ready or failed (apps/a: 2 upgrade attempt(s) of 10m and 2 "
        "rollback(s) of 10m); at 30m this Kustomization reports its own timeout instead of the release's error. Set "
        "spec.timeout above 40m, or lower the release's timeout or retries"]
    assert live_state.short_wait_timeouts(flux_objects("41m", {"a": spec})) == []


def test_releases_that_depend_on_each_other_add_up():
    first = {"timeout": "5m", "install": {"remediation": {"retries": 1}}}
    second = {**first, "dependsOn": [{"name": "first"}]}
    # Install: 2 attempts and 1 uninstall between them (remediateLastFailure is off for installs): 15m each.
    found = live_state.short_wait_timeouts(flux_objects("29m", {"first": first, "second": second}))
    assert len(found) == 1 and "apps/first then apps/second, which can take 30m" in found[0].message
    assert live_state.short_wait_timeouts(flux_objects("31m", {"first": first, "second": second})) == []


def test_a_release_that_retries_forever_never_settles():
    spec = {"timeout": "5m", "upgrade": {"remediation": {"retries": -1}}}
    assert live_state.settle_time(HelmRelease.parse(flux_objects("1m", {"a": spec})[1])) is None
    assert live_state.short_wait_timeouts(flux_objects("1m", {"a": spec})) == []


def test_helmrelease_remediation_and_drift_detection(cluster):
    spec = next(r.obj["spec"] for r in render(cluster).resources if r.kind == "HelmRelease" and r.name == "airflow")
    assert spec["releaseName"] == "airflow"
    # Forward only (docs/choices.md): a failed install or upgrade is retried as it is, never remediated.
    for action in ("install", "upgrade"):
        assert spec[action]["strategy"]["name"] == "RetryOnFailure" and "remediation" not in spec[action]
    assert latency.seconds(spec["upgrade"]["strategy"]["retryInterval"]) > 300  # the chart Jobs' TTL
    assert spec["driftDetection"]["mode"] == "enabled"
    assert latency.seconds(spec["timeout"]) >= 600 and 0 < spec["maxHistory"] <= 20
    assert spec["chart"]["spec"]["version"] == "1.22.0"


def test_flux_system_is_bootstraps_except_documented_patches(cluster):
    """gotk-components.yaml is `flux install --export` (tests/gitops/test_flux_components.py); the kustomization adds
    only the shared component and, on EKS, a feature gate and the webhook Service; kind has no gotk-sync.yaml
    (kind-up makes it)."""
    kustomization = yaml.safe_load((REPO / f"clusters/{cluster}/flux-system/kustomization.yaml").read_text())
    sync = ["gotk-sync.yaml"] if cluster == "eks" else []
    assert kustomization["resources"] == ["gotk-components.yaml", *sync]
    assert kustomization["components"] == ["../../../infrastructure/flux-system"]
    assert {p["target"]["name"] for p in kustomization.get("patches", [])} == (
        {"kustomize-controller", "webhook-receiver"} if cluster == "eks" else set())
    component = yaml.safe_load((REPO / "infrastructure/flux-system/kustomization.yaml").read_text())
    # Namespace flux-system: its Pod Security labels (docs/hardening.md).
    assert [p["target"].get("name") or p["target"]["labelSelector"] for p in component["patches"]] == [
        "app.kubernetes.io/part-of=flux", "flux-system"]


def test_eks_kustomize_controller_cancels_a_wait_on_a_new_revision():
    # With apps waiting up to 40m for a failing release, a revert must not queue behind the wait.
    kustomization = yaml.safe_load((REPO / "clusters/eks/flux-system/kustomization.yaml").read_text())
    patch = next(p["patch"] for p in kustomization["patches"] if p["target"]["name"] == "kustomize-controller")
    assert yaml.safe_load(patch) == [{"op": "add", "path": "/spec/template/spec/containers/0/args/-",
                                      "value": "--feature-gates=CancelHealthCheckOnNewRevision=true"}]


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
