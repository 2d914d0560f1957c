"""`make rollback` deletes the chart's finished Jobs before each step (their pod templates change, and a Job's is
immutable); it finds them by the `component` label, which must be the chart's own."""

from __future__ import annotations

from airflow_gitops.operate.rollback import CHART_JOBS

from tests.helpers import airflow_release, skip_for


def test_the_jobs_the_rollback_deletes_are_the_chart_s_jobs():
    release = airflow_release("kind")
    if release.unrendered_reason:
        skip_for("chart", f"chart checks not run: {release.unrendered_reason}")
    components = {(job.obj["metadata"].get("labels") or {}).get("component")
                  for job in release.objects if job.kind == "Job"}
    assert components == set(CHART_JOBS)
