"""The values-deprecated check: a value the pinned chart marks deprecated is an error naming the values file and key.

The deprecation notes come from the chart at hand (docs/versions.md "Verification limits": the Airflow stand-in, 1.20.0-dev,
predates 1.21's deprecation of workers.serviceAccount and workers.resources)."""

from __future__ import annotations

import pytest
from airflow_gitops.checks import deprecated_values
from airflow_gitops.checks.validation import validate_cluster
from airflow_gitops.model import ReleaseRender, Resource

from tests.helpers import edit, make_settings

pytestmark = pytest.mark.usefixtures("need_schemas")


def release(values: dict, schema: dict | None = None, notes: str | None = None) -> ReleaseRender:
    hr = Resource({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
                   "metadata": {"name": "demo", "namespace": "apps"}, "spec": {}}, "apps/demo.yaml",
                  "Kustomization flux-system/apps")
    return ReleaseRender(hr, "demo", "apps", "demo", "1.0.0", values, ["values/common.yaml"], chart_schema=schema,
                         notes=notes)


SCHEMA = {"properties": {
    "workers": {"properties": {
        "replicas": {"type": "integer", "description": "Number of workers (deprecated, use `workers.celery.replicas` "
                                                       "instead)."},
        "livenessProbe": {"description": "Probe (deprecated, use `workers.celery.livenessProbe`).",
                          "properties": {"enabled": {"description": "On (deprecated, use `x` instead)."}}},
        "celery": {"properties": {"replicas": {"type": "integer", "description": "Number of Celery workers."}}}}},
    "ingress": {"properties": {"web": {"properties": {
        "host": {"description": "The hostname. (Deprecated - renamed to `ingress.web.hosts`)"}}}}},
}}


def messages(found) -> list[str]:
    return [f"{f.field}: {f.message}" for f in found]


def test_a_value_the_schema_marks_deprecated_is_an_error():
    found = deprecated_values.deprecated_values(release({"workers": {"replicas": 2}}, SCHEMA),
                                                lambda path: "values/common.yaml")
    assert [str(f) for f in found] == [
        "values/common.yaml: values of HelmRelease apps/demo: workers.replicas: chart demo 1.0.0 marks this value "
        "deprecated in its values.schema.json: Number of workers (deprecated, use `workers.celery.replicas` "
        "instead).; a later chart drops it and the setting is then lost without an error"]


def test_its_replacement_and_unset_deprecated_values_pass():
    assert deprecated_values.deprecated_values(release({"workers": {"celery": {"replicas": 2}}}, SCHEMA),
                                               lambda path: "x") == []


def test_a_deprecated_value_inside_a_deprecated_one_is_reported_once():
    found = deprecated_values.deprecated_values(release({"workers": {"livenessProbe": {"enabled": False}}}, SCHEMA),
                                                lambda path: "x")
    assert [f.field for f in found] == ["workers.livenessProbe"]


def test_a_deprecation_warning_of_the_rendered_notes_names_its_value():
    notes = ("Thank you for installing.\n\nDEPRECATION WARNING:\n   `ingress.web.host` has been renamed to "
             "`ingress.web.hosts` and is now an array.\n   Please change your values.\n\nYour release is named demo.\n")
    found = deprecated_values.deprecated_values(release({"ingress": {"web": {"enabled": True}}}, {}, notes),
                                                lambda path: "values/common.yaml")
    assert messages(found) == ["ingress.web.host: chart demo 1.0.0 warns in its NOTES.txt: DEPRECATION WARNING: "
                               "`ingress.web.host` has been renamed to `ingress.web.hosts` and is now an array. "
                               "Please change your values."]


def test_schema_and_notes_naming_the_same_value_give_one_finding():
    notes = "DEPRECATION WARNING:\n   `ingress.web.host` has been renamed to `ingress.web.hosts`.\n"
    found = deprecated_values.deprecated_values(release({"ingress": {"web": {"host": "a"}}}, SCHEMA, notes),
                                                lambda path: "x")
    assert [f.field for f in found] == ["ingress.web.host"]


def test_the_airflow_chart_deprecation_names_the_values_file(repo_copy, rendered_airflow, cluster):
    # `workers.securityContext` is deprecated for `securityContexts` in the chart at hand (1.20.0-dev and later).
    edit(repo_copy, "charts-values/airflow/common.yaml", "workers:\n  serviceAccount:\n",
         "workers:\n  securityContext:\n    runAsUser: 50000\n  serviceAccount:\n")
    found = [str(f) for f in validate_cluster(make_settings(repo_copy), cluster).errors if f.check == "values-deprecated"]
    assert len(found) == 1 and found[0].startswith(
        "charts-values/airflow/common.yaml: values of HelmRelease airflow/airflow: workers.securityContext: chart airflow "
        ), found
    assert "(deprecated, use `securityContexts` instead)" in found[0]
