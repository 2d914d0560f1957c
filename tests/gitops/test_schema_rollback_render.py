"""Step 1 of the two-step downgrade, as the official chart renders it: every component at 0 replicas, the migrate
Job downgrading with the same image, and values the chart's schema accepts."""

from __future__ import annotations

import pytest
from airflow_gitops.checks.validation import validate_cluster
from airflow_gitops.operate.downgrade import LAYER, step1_layer

from tests.helpers import make_settings, skip_for

pytestmark = pytest.mark.chart


@pytest.fixture
def step1(repo_copy, cluster):
    (repo_copy / LAYER).write_text(step1_layer("3.3.2", "3.2.2", "f" * 40))
    report = validate_cluster(make_settings(repo_copy), cluster)
    release = next(r for r in report.state.releases if r.helmrelease.name == "airflow")
    if release.unrendered_reason:
        skip_for("chart", f"chart checks not run: {release.unrendered_reason}")
    return report, release


def test_step1_stops_every_component(step1):
    _, release = step1
    workloads = {o.obj["metadata"]["labels"].get("component"): o.obj for o in release.objects
                 if o.kind in ("Deployment", "StatefulSet")}
    for component in ("scheduler", "api-server", "dag-processor", "triggerer"):
        assert workloads[component]["spec"]["replicas"] == 0, component


def test_step1_migrate_job_downgrades_with_the_same_image(step1):
    _, release = step1
    job = next(o.obj for o in release.objects if o.kind == "Job" and o.name.endswith("run-airflow-migrations"))
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].endswith(":3.3.2")
    # The pod annotation step 1 sets reaches the script through the downward API (charts-values/airflow/common.yaml).
    assert job["spec"]["template"]["metadata"]["annotations"]["airflow-gitops.io/schema-rollback-to"] == "3.2.2"
    env = {e["name"]: e for e in container["env"]}
    assert env["SCHEMA_ROLLBACK_TO"]["valueFrom"]["fieldRef"]["fieldPath"] == \
        "metadata.annotations['airflow-gitops.io/schema-rollback-to']"
    assert container["args"][:2] == ["bash", "-c"]
    assert container["args"][2].endswith('exec airflow db downgrade --to-version "$SCHEMA_ROLLBACK_TO" -y')


def test_step1_values_pass_the_chart_schema_and_policies(step1):
    report, _ = step1
    assert report.errors == []
