"""The typed Flux objects the engine reads (kustomize_controller/api.py, helm_controller/api.py): Flux's defaults,
and malformed fields read as absent (the schema check names them) instead of a traceback."""

from __future__ import annotations

import pytest
from airflow_gitops.checks.validation import validate_cluster
from airflow_gitops.helm_controller.api import ChartReference, HelmRelease
from airflow_gitops.kustomize_controller.api import Kustomization
from airflow_gitops.model import Resource

from tests.helpers import make_settings


def resource(kind: str, api: str, spec, namespace: str | None = None, name: str = "demo") -> Resource:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return Resource({"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec}, "x.yaml",
                    "Kustomization flux-system/flux-system")


def kustomization(spec, namespace: str | None = None) -> Kustomization:
    return Kustomization.parse(resource("Kustomization", "kustomize.toolkit.fluxcd.io/v1", spec, namespace))


def helmrelease(spec, namespace: str | None = "apps", name: str = "demo") -> HelmRelease:
    return HelmRelease.parse(resource("HelmRelease", "helm.toolkit.fluxcd.io/v2", spec, namespace, name))


def test_kustomization_defaults_are_flux_defaults():
    ks = kustomization({"dependsOn": [{"name": "infra"}, {"name": "db", "namespace": "data"}]})
    assert (ks.id, ks.path, ks.depends_on, ks.post_build) == (
        "flux-system/demo", "./", ["flux-system/infra", "data/db"], None)
    assert ks.applier == "Kustomization flux-system/demo"


def test_post_build_references_keep_their_field():
    ks = kustomization({"postBuild": {"substitute": {"a": "1"}, "substituteStrategy": "Always",
                                      "substituteFrom": [{"kind": "ConfigMap", "name": "vars", "optional": True}]}})
    assert ks.post_build.substitute == {"a": "1"} and ks.post_build.strategy == "Always"
    [ref] = ks.post_build.substitute_from
    assert (ref.kind, ref.name, ref.optional, ref.where) == ("ConfigMap", "vars", True,
                                                             "spec.postBuild.substituteFrom[0]")


@pytest.mark.parametrize("spec", ["text", {"dependsOn": "infra", "postBuild": ["x"], "sourceRef": 3}])
def test_malformed_kustomization_fields_read_as_absent(spec):
    ks = kustomization(spec)
    assert (ks.depends_on, ks.post_build, ks.source_kind) == ([], None, None)


def test_release_name_and_namespace_as_helm_controller_derives_them():
    assert (helmrelease({}).release_name, helmrelease({}).release_namespace) == ("demo", "apps")
    targeted = helmrelease({"targetNamespace": "airflow"})
    assert (targeted.release_name, targeted.release_namespace) == ("airflow-demo", "airflow")
    assert helmrelease({"releaseName": "mine", "targetNamespace": "airflow"}).release_name == "mine"
    assert helmrelease({}, namespace=None).release_namespace == "default"
    long = helmrelease({"targetNamespace": "n" * 30}, name="r" * 30).release_name
    assert len(long) == 53 and long.startswith("n" * 30 + "-" + "r" * 9 + "-")


def test_values_references_and_chart_reference():
    release = helmrelease({"valuesFrom": [{"kind": "ConfigMap", "name": "v"},
                                          {"kind": "Secret", "name": "s", "valuesKey": "k", "targetPath": "a.b",
                                           "optional": True}],
                           "chart": {"spec": {"chart": "airflow", "version": "1.22.0",
                                              "sourceRef": {"kind": "HelmRepository", "name": "apache"}}}})
    assert [(r.kind, r.name, r.values_key, r.target_path, r.optional, r.where) for r in release.values_from] == [
        ("ConfigMap", "v", "values.yaml", None, False, "spec.valuesFrom[0]"),
        ("Secret", "s", "k", "a.b", True, "spec.valuesFrom[1]")]
    assert release.chart == ChartReference("airflow", "1.22.0", "HelmRepository", "apache", None)
    assert helmrelease({"chartRef": {"kind": "OCIRepository", "name": "x"}}).chart is None


def test_a_malformed_dependson_is_a_schema_finding_not_a_crash(repo_copy):
    apps = repo_copy / "clusters/kind/apps.yaml"
    text = apps.read_text()
    assert "  dependsOn:\n    - name: infra-configs\n" in text, "fixture out of date"
    apps.write_text(text.replace("  dependsOn:\n    - name: infra-configs\n", "  dependsOn: infra-configs\n"))
    report = validate_cluster(make_settings(repo_copy), "kind")
    assert [(f.file, f.object, f.field) for f in report.errors if f.field.startswith("spec.dependsOn")] == [
        ("clusters/kind/apps.yaml", "Kustomization flux-system/apps", "spec.dependsOn")]


def test_post_renderer_patches_keep_their_field():
    release = helmrelease({"postRenderers": [{"kustomize": {"patches": [{"patch": "a"}, "b"]}}, "malformed"]})
    assert release.post_renderer_patches == [("spec.postRenderers[0].kustomize.patches[0]", {"patch": "a"}),
                                             ("spec.postRenderers[0].kustomize.patches[1]", "b")]
