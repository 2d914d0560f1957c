"""The check `schema-guard` (scripts/airflow_gitops/checks/schema_guard.py): each part of the design that keeps an
older Airflow off a newer schema, broken in a copy of the repository, is an error naming file, object and field;
the repository itself passes. What the parts do on a real API server and Flux is proven in tests/live/.
"""

from __future__ import annotations

import pytest
from airflow_gitops import airflow_versions
from airflow_gitops.checks.validation import validate_cluster
from airflow_gitops.model import ERROR

from tests.helpers import CLUSTERS, edit, make_settings, require_schemas

HR = "apps/base/airflow/helmrelease.yaml"
COMMON = "charts-values/airflow/common.yaml"
EKS = "charts-values/airflow/eks.yaml"


def guard_errors(repo, cluster: str) -> list[str]:
    require_schemas()
    report = validate_cluster(make_settings(repo), cluster)
    return [str(f) for f in report.findings if f.check == "schema-guard" and f.severity == ERROR]


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_the_repository_keeps_every_part(repo_copy, cluster):
    assert guard_errors(repo_copy, cluster) == []


def test_schema_version_is_the_release_that_introduced_the_head():
    assert airflow_versions.schema_version("3.3.2") == "3.3.0"
    assert airflow_versions.schema_version("3.3.0") == "3.3.0"
    assert airflow_versions.schema_version("3.2.2") == "3.2.0"
    assert airflow_versions.schema_version("99.0.0") is None


BREAKS = {
    "annotation not the schema of airflowVersion": (
        HR, 'airflow-gitops.io/schema-version: "3.3.0"', 'airflow-gitops.io/schema-version: "3.2.0"',
        "metadata.annotations.airflow-gitops.io/schema-version: is '3.2.0', but airflowVersion 3.3.2 needs the schema "
        "of Airflow 3.3.0"),
    "annotation missing": (
        HR, '    airflow-gitops.io/schema-version: "3.3.0"\n', "    airflow-gitops.io/other: x\n",
        "is None, but airflowVersion 3.3.2"),
    "no policy enforces it": (
        "infrastructure/controllers/base/kustomization.yaml", "  - airflow-schema-guard.yaml\n", "",
        "nothing enforces it: the cluster applies no ValidatingAdmissionPolicy and no ValidatingAdmissionPolicyBinding"),
    "remediation by rollback": (
        HR, "    strategy:\n      name: RetryOnFailure\n      # Longer",
        "    remediation:\n      strategy: rollback\n    strategy:\n      name: RemediateOnFailure\n      # Longer",
        "spec.upgrade.strategy.name: must be RetryOnFailure"),
    "retry before the finished Jobs are gone": (
        HR, "retryInterval: 6m", "retryInterval: 5m",
        "spec.upgrade.strategy.retryInterval: 5m is not longer than the chart Jobs' ttlSecondsAfterFinished (300 s"),
    "cleanup on a failed upgrade": (
        HR, "  upgrade:\n    strategy:", "  upgrade:\n    cleanupOnFail: true\n    strategy:",
        "spec.upgrade.cleanupOnFail: deletes the migrate Job"),
    "migrate script that never downgrades": (
        COMMON, '      exec airflow db downgrade --to-version "$SCHEMA_ROLLBACK_TO" -y\n', "      exit 0\n",
        "migrateDatabaseJob.args: must downgrade FAB's schema to $SCHEMA_ROLLBACK_FAB_TO and the core to"),
}


@pytest.mark.parametrize("name", BREAKS)
def test_a_broken_part_is_an_error_naming_file_object_and_field(repo_copy, name):
    file, old, new, expected = BREAKS[name]
    edit(repo_copy, file, old, new)
    found = guard_errors(repo_copy, "kind")
    assert any(expected in line and "HelmRelease airflow/airflow" in line for line in found), found


def test_a_cluster_env_list_without_the_rollback_entry_is_an_error_on_that_cluster_only(repo_copy):
    edit(repo_copy, EKS, """    - name: SCHEMA_ROLLBACK_TO
      valueFrom:
        fieldRef:
          fieldPath: metadata.annotations['airflow-gitops.io/schema-rollback-to']
""", "")
    found = guard_errors(repo_copy, "eks")
    assert [line for line in found if line.startswith("charts-values/airflow/eks.yaml") and
            "migrateDatabaseJob.env: needs SCHEMA_ROLLBACK_TO" in line], found
    assert guard_errors(repo_copy, "kind") == []
