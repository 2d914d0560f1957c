"""helm_controller/api.py: the HelmRelease fields as helm-controller reads them (api/v2 helmrelease_types.go):
its defaults, and a wrongly typed field read as absent (the schema check reports it)."""

from __future__ import annotations

import pytest
from airflow_gitops.helm_controller.api import HelmRelease, IgnoreRule, Remediation, Selector, SourceReference

from tests.helpers import flux_object


def parse(spec, namespace: str | None = "apps") -> HelmRelease:
    return HelmRelease.parse(flux_object("HelmRelease", "helm.toolkit.fluxcd.io/v2", spec, namespace))


def test_drift_detection_mode_defaults_to_disabled():
    drift = parse({}).drift_detection
    assert (drift.mode, drift.detects, drift.ignore) == ("disabled", False, [])


@pytest.mark.parametrize("mode", ["enabled", "warn"])
def test_drift_detection_enabled_and_warn_detect(mode):
    assert parse({"driftDetection": {"mode": mode}}).drift_detection.detects


def test_drift_ignore_rules_are_typed_with_their_field():
    drift = parse({"driftDetection": {"mode": "enabled", "ignore": [
        {"paths": ["/spec/replicas"], "target": {"kind": "Deployment", "labelSelector": "app=web"}},
        {"paths": [""]}]}}).drift_detection
    assert drift.ignore == [
        IgnoreRule(["/spec/replicas"], Selector(None, None, "Deployment", None, None, "app=web", None),
                   "spec.driftDetection.ignore[0]"),
        IgnoreRule([""], None, "spec.driftDetection.ignore[1]")]


def test_timeout_defaults_to_five_minutes():
    assert (parse({}).timeout, parse({"timeout": "10m"}).timeout) == ("5m0s", "10m")


def test_interval_is_required_so_an_absent_one_reads_none():
    assert (parse({"interval": "30m"}).interval, parse({}).interval) == ("30m", None)


def test_depends_on_namespace_defaults_to_the_releases_own():
    assert parse({"dependsOn": [{"name": "db"}, {"name": "cache", "namespace": "infra"}]}).depends_on == [
        "apps/db", "infra/cache"]


def test_install_remediation_defaults():
    assert parse({}).install_remediation == Remediation(0, False, "uninstall")


def test_upgrade_remediation_defaults_to_rollback_and_remediates_the_last_failure_when_it_retries():
    assert parse({}).upgrade_remediation == Remediation(0, False, "rollback")
    assert parse({"upgrade": {"remediation": {"retries": 3}}}).upgrade_remediation == Remediation(3, True, "rollback")


def test_upgrade_remediation_as_written():
    upgrade = {"remediation": {"retries": 2, "remediateLastFailure": False, "strategy": "uninstall"}}
    assert parse({"upgrade": upgrade}).upgrade_remediation == Remediation(2, False, "uninstall")


def test_chart_ref_is_typed():
    assert parse({"chartRef": {"kind": "OCIRepository", "name": "airflow"}}).chart_ref == SourceReference(
        None, "OCIRepository", "airflow", None)
    assert parse({}).chart_ref is None


def test_an_empty_chart_version_reads_empty():
    assert parse({"chart": {"spec": {"chart": "airflow", "version": None}}}).chart.version == ""


@pytest.mark.parametrize(("entry", "image"), [
    ({"name": "apache/airflow", "newTag": "3.3.2"}, "apache/airflow:3.3.2"),
    ({"name": "apache/airflow", "newName": "mirror/airflow", "digest": "sha256:ab"}, "mirror/airflow@sha256:ab"),
    ({"name": "apache/airflow"}, "apache/airflow"),
])
def test_post_renderer_image_override_is_the_image_the_containers_get(entry, image):
    [override] = parse({"postRenderers": [{"kustomize": {"images": [entry]}}]}).post_renderer_images
    assert (override.image, override.where) == (image, "spec.postRenderers[0].kustomize.images[0]")


@pytest.mark.parametrize(("field", "value", "attribute", "absent"), [
    ("interval", 60, "interval", None),
    ("timeout", 300, "timeout", "5m0s"),
    ("chartRef", "airflow", "chart_ref", None),
    ("dependsOn", {"name": "db"}, "depends_on", []),
    ("install", {"remediation": {"retries": "3"}}, "install_remediation", Remediation(0, False, "uninstall")),
])
def test_a_wrongly_typed_field_reads_as_absent(field, value, attribute, absent):
    assert getattr(parse({field: value}), attribute) == absent


def test_a_wrongly_typed_drift_mode_reads_as_disabled():
    assert parse({"driftDetection": {"mode": True}}).drift_detection.mode == "disabled"
