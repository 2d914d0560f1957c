"""Every object validates: Kubernetes schemas, Flux 2.9 and operator CRDs, the chart's values schema."""

from __future__ import annotations

import pytest
from airflow_gitops.checks import schemas
from airflow_gitops.checks.validation import validate_cluster
from airflow_gitops.model import ERROR, UNVALIDATED, Resource

from tests.helpers import REPO, airflow_release, make_settings, render, require_schemas, require_values_schema, schemas_dir


@pytest.fixture(scope="module")
def crds():
    """The CRDs validate reads for kind: the cluster's own (Flux's, from gotk-components.yaml, so with or without
    the network or a schema folder), then the schema folder when there is one."""
    return schemas.schema_sources(make_settings(), render("kind")).crds


@pytest.fixture(scope="module")
def folder_crds():
    """The schema folder's CRDs: the operators' (Karpenter, External Secrets), which no cluster here applies."""
    require_schemas()
    return schemas.crd_schemas(schemas_dir())


@pytest.fixture(scope="module")
def kube():
    return schemas.kubernetes_schemas("1.35")


def _resource(obj):
    return Resource(obj, "some/file.yaml", "test")


def test_the_repository_validates_without_errors(cluster):
    report = validate_cluster(make_settings(), cluster)
    assert [str(f) for f in report.errors] == []


def test_flux_objects_are_checked_against_the_flux_crds_the_cluster_installs(cluster, kube):
    crds = schemas.schema_sources(make_settings(), render(cluster)).crds
    flux = [r for r in render(cluster).resources if ".toolkit.fluxcd.io/" in r.api_version]
    assert flux, "the cluster has Flux objects"
    for resource in flux:
        group, version = resource.api_version.split("/")
        source = crds.versions[(group, version, resource.kind)][3]
        assert source == f"clusters/{cluster}/flux-system/gotk-components.yaml", resource.ref
        assert schemas.validate_resource(resource, kube, crds) == []


def test_an_old_flux_api_version_is_an_error_that_names_the_served_one(crds, kube):
    findings = schemas.validate_resource(_resource(
        {"apiVersion": "helm.toolkit.fluxcd.io/v2beta1", "kind": "HelmRelease", "metadata": {"name": "x"}}),
        kube, crds)
    assert [(f.severity, f.file, f.field) for f in findings] == [(ERROR, "some/file.yaml", "apiVersion")]
    assert "helm.toolkit.fluxcd.io/v2" in findings[0].message


def test_a_misspelled_crd_field_is_an_error_at_its_path(crds, kube):
    findings = schemas.validate_resource(_resource({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
        "metadata": {"name": "x", "namespace": "flux-system"}, "spec": {"url": "https://x", "intervall": "1h"}}),
        kube, crds)
    assert [f.field for f in findings] == ["spec"]
    assert "intervall" in findings[0].message


def test_every_error_is_reported_not_just_the_first(crds, kube):
    findings = schemas.validate_resource(_resource({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
        "spec": {"replicas": "two", "selector": {}, "template": {"spec": {"containers": [{"image": 1}]}}}}),
        kube, crds)
    fields = {f.field for f in findings}
    assert "spec.replicas" in fields and "spec.template.spec.containers[0].image" in fields


# ServiceMonitor (Prometheus Operator) stands for any CRD whose schema is not in the schema folder.
UNKNOWN_CRD = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "x"}}


def test_a_crd_without_a_schema_is_unvalidated_never_valid(crds, kube):
    assert ("monitoring.coreos.com", "v1", "ServiceMonitor") not in crds.versions, "pick a CRD with no schema here"
    findings = schemas.validate_resource(_resource(UNKNOWN_CRD), kube, crds)
    assert [f.severity for f in findings] == [UNVALIDATED]
    assert "ServiceMonitor.monitoring.coreos.com" in findings[0].message


def test_the_karpenter_nodepool_is_validated_against_its_crd(folder_crds, kube):
    findings = schemas.validate_resource(_resource({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "x"},
        "spec": {"template": {"spec": {"nodeClassRef": {"group": "eks.amazonaws.com", "kind": "NodeClass",
                                                        "name": "default"}, "requirements": []}},
                 "limitz": {"cpu": "10"}}}), kube, folder_crds)
    assert [(f.severity, f.field) for f in findings] == [(ERROR, "spec")]
    assert "limitz" in findings[0].message


def test_a_removed_kubernetes_api_is_an_error(crds, kube):
    findings = schemas.validate_resource(_resource(
        {"apiVersion": "policy/v1beta1", "kind": "PodSecurityPolicy", "metadata": {"name": "x"}}), kube, crds)
    assert [f.severity for f in findings] == [ERROR]


def test_composed_airflow_values_pass_the_chart_values_schema(cluster):
    require_values_schema(cluster)
    release = airflow_release(cluster)
    assert release.chart_schema or schemas.values_schema_files(schemas_dir()), "a values schema is at hand"
    assert schemas.validate_values(release, schemas_dir(), REPO) == []
