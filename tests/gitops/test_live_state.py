"""The three live-cluster checks (scripts/airflow_gitops/checks/live_state.py): each fails on a fixture that breaks it,
naming the file, the object and the field, and passes on the repository.

The drift check reads rendered chart objects. The chart is absent in CI, so it is proven there on small synthetic
rendered objects, and on the real chart (AIRFLOW_GITOPS_CHARTS=airflow=...) where it is at hand.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow_gitops.checks import live_state
from airflow_gitops.checks.validation import validate_cluster
from airflow_gitops.model import ERROR, WARNING, ReleaseRender, Resource

from tests.helpers import edit, make_settings, skip_for


def findings(repo: Path, cluster: str, check: str) -> list[str]:
    report = validate_cluster(make_settings(repo), cluster)
    return [str(f) for f in report.findings if f.check == check and f.severity == ERROR]


# --- 1. Jobs with a TTL under drift detection ---------------------------------------------------------------------

def release(objects: list[dict], drift: dict | None = None, unrendered: str | None = None) -> ReleaseRender:
    hr = {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
          "metadata": {"name": "airflow", "namespace": "airflow"},
          "spec": {"driftDetection": {"mode": "enabled"} if drift is None else drift}}
    hr_resource = Resource(hr, "apps/base/airflow/helmrelease.yaml", "Kustomization flux-system/apps")
    rendered = [Resource(o, hr_resource.source_file, "HelmRelease airflow/airflow",
                         "airflow/templates/jobs/migrate-database-job.yaml") for o in objects]
    return ReleaseRender(hr_resource, "airflow", "airflow", "airflow", "1.22.0", {}, objects=rendered,
                         unrendered_reason=unrendered)


def job(ttl: int | None = 300, annotations: dict | None = None, labels: dict | None = None) -> dict:
    spec = {"template": {"spec": {"containers": [{"name": "migrate", "image": "apache/airflow:3.3.2"}]}}}
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "airflow-run-airflow-migrations", "namespace": "airflow",
                         "annotations": annotations or {}, "labels": labels or {}},
            "spec": spec}


def test_ttl_job_under_drift_detection_names_the_job_and_the_chart_value():
    found = [str(f) for f in live_state.drift_recreated_jobs([release([job()])])]
    assert len(found) == 1
    assert found[0].startswith(
        "apps/base/airflow/helmrelease.yaml (airflow/templates/jobs/migrate-database-job.yaml): "
        "Job airflow/airflow-run-airflow-migrations: "
        "metadata.annotations[helm.toolkit.fluxcd.io/driftDetection]: Job has spec.ttlSecondsAfterFinished: 300")
    assert "migrateDatabaseJob.jobAnnotations" in found[0]


@pytest.mark.parametrize("exempt", [
    {"annotations": {"helm.toolkit.fluxcd.io/driftDetection": "disabled"}},
    {"labels": {"helm.toolkit.fluxcd.io/driftDetection": "disabled"}},
    # fluxcd/pkg ssa/utils.AnyInMetadata compares with strings.EqualFold.
    {"annotations": {"helm.toolkit.fluxcd.io/driftDetection": "Disabled"}},
])
def test_drift_detection_disabled_in_the_jobs_metadata_spares_it(exempt):
    assert live_state.drift_recreated_jobs([release([job(**exempt)])]) == []


def test_job_without_ttl_stays_after_finishing_and_is_not_recreated():
    assert live_state.drift_recreated_jobs([release([job(ttl=None)])]) == []


def test_drift_detection_disabled_on_the_release_is_not_checked():
    assert live_state.drift_recreated_jobs([release([job()], drift={"mode": "disabled"})]) == []
    assert live_state.drift_recreated_jobs([release([job()], drift={})]) == []


def test_warn_mode_is_reported_too():
    found = live_state.drift_recreated_jobs([release([job()], drift={"mode": "warn"})])
    assert len(found) == 1 and "reports it as drift on every reconcile" in found[0].message


def test_ignore_rule_on_the_root_path_spares_the_job():
    drift = {"mode": "enabled", "ignore": [{"paths": [""], "target": {"kind": "Job", "name": "airflow-run-.*"}}]}
    assert live_state.drift_recreated_jobs([release([job()], drift=drift)]) == []


@pytest.mark.parametrize("rule", [
    # jsondiff.Unstructured removes sub-paths only after the lookup: a missing Job is still DiffTypeCreate.
    {"paths": ["/spec/template"], "target": {"kind": "Job"}},
    # Anchored like jsondiff's anchorRegex: "Jo" does not match "Job".
    {"paths": [""], "target": {"kind": "Jo"}},
    {"paths": [""], "target": {"kind": "Job", "labelSelector": "component=other"}},
    {"paths": [""], "target": {"name": "airflow-run-[("}},  # not a regex: helm-controller rejects the rules
])
def test_ignore_rules_that_do_not_exclude_the_whole_job_do_not_spare_it(rule):
    drift = {"mode": "enabled", "ignore": [rule]}
    assert len(live_state.drift_recreated_jobs([release([job()], drift=drift)])) == 1


def test_unrendered_chart_says_the_drift_check_did_not_run():
    found = live_state.drift_recreated_jobs([release([], unrendered="chart airflow 1.22.0 is not in the cache")])
    assert [f.severity for f in found] == [WARNING]
    assert str(found[0]).startswith("[warning] apps/base/airflow/helmrelease.yaml: HelmRelease airflow/airflow: "
                                    "spec.driftDetection: NOT CHECKED: its chart did not render")


def render_chart_or_skip(repo: Path, cluster: str):
    report = validate_cluster(make_settings(repo), cluster)
    airflow = next(r for r in report.state.releases if r.helmrelease.name == "airflow")
    if airflow.unrendered_reason:
        skip_for("chart", f"drift check on the real chart not run: {airflow.unrendered_reason}")
    return report


def test_real_chart_jobs_are_exempt_in_the_repository(rendered_airflow):
    jobs = [o for o in rendered_airflow.objects if o.kind == "Job"]
    assert {o.name for o in jobs} == {"airflow-run-airflow-migrations", "airflow-create-user"}
    assert all(o.obj["spec"].get("ttlSecondsAfterFinished") for o in jobs), "the chart's TTL is the premise"
    assert live_state.drift_recreated_jobs([rendered_airflow]) == []


def test_real_chart_migrate_job_without_the_annotation_is_caught(repo_copy):
    # The first jobAnnotations of the file is migrateDatabaseJob's.
    edit(repo_copy, "charts-values/airflow/common.yaml",
         "  jobAnnotations:\n    helm.toolkit.fluxcd.io/driftDetection: disabled\n", "")
    report = render_chart_or_skip(repo_copy, "kind")
    found = [str(f) for f in report.findings if f.check == "drift-jobs" and f.severity == ERROR]
    assert len(found) == 1
    assert found[0].startswith(
        "apps/base/airflow/helmrelease.yaml (airflow/templates/jobs/migrate-database-job.yaml): "
        "Job airflow/airflow-run-airflow-migrations: metadata.annotations[helm.toolkit.fluxcd.io/driftDetection]:")


# --- 2. post-build variables in values sources --------------------------------------------------------------------

WATCH = r"metadata.labels\[reconcile.fluxcd.io/watch\]"


def test_repository_passes_the_watch_label_check(cluster):
    from tests.helpers import REPO

    assert findings(REPO, cluster, "watch-label") == []


def test_values_configmap_with_variables_needs_the_watch_label(repo_copy):
    edit(repo_copy, "apps/base/airflow/kustomization.yaml", "        reconcile.fluxcd.io/watch: Enabled\n",
         "        app: airflow\n")
    found = findings(repo_copy, "kind", "watch-label")
    assert len(found) == 1
    assert found[0].startswith("apps/base/airflow/kustomization.yaml: ConfigMap airflow/airflow-values-common-")
    assert "metadata.labels[reconcile.fluxcd.io/watch]: values source of HelmRelease airflow/airflow " \
           "(spec.valuesFrom[0]) uses post-build variables ${git_url}, ${git_branch} in " \
           "charts-values/airflow/common.yaml" in found[0]
    assert "spec.interval (30m)" in found[0]


def test_a_variable_added_to_an_unlabelled_values_file_is_caught(repo_copy):
    # kind.yaml has no ${vars} today, so its ConfigMap needs no label; adding one makes it need it.
    edit(repo_copy, "charts-values/airflow/kind.yaml", "    size: 1Gi\n", "    size: ${triggerer_disk:=1Gi}\n")
    found = findings(repo_copy, "kind", "watch-label")
    assert len(found) == 1
    assert found[0].startswith("apps/kind/kustomization.yaml: ConfigMap airflow/airflow-values-cluster-")
    assert "(spec.valuesFrom[1]) uses post-build variables ${triggerer_disk} in charts-values/airflow/kind.yaml" \
        in found[0]


def test_escaped_dollar_is_not_a_variable(repo_copy):
    edit(repo_copy, "charts-values/airflow/kind.yaml", "    size: 1Gi\n", "    size: 1Gi\n# costs $$5\n")
    assert findings(repo_copy, "kind", "watch-label") == []


def test_substitute_from_configmap_needs_the_watch_label(repo_copy):
    edit(repo_copy, "clusters/eks/cluster-vars.yaml", "    reconcile.fluxcd.io/watch: Enabled\n",
         "    app: airflow\n")
    found = findings(repo_copy, "eks", "watch-label")
    assert found == [
        "clusters/eks/cluster-vars.yaml: ConfigMap flux-system/cluster-vars: metadata.labels[reconcile.fluxcd.io/watch]: "
        "read by the Kustomizations apps, db-backup, infra-configs, infra-controllers (spec.postBuild.substituteFrom): without "
        "the label reconcile.fluxcd.io/watch: Enabled, a change to it reaches them only at their next interval (the "
        "commit that changes it may reconcile them before it is applied)"]


def test_plain_configmap_manifest_with_a_variable_needs_the_label(tmp_path):
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps/values.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra-values\n  namespace: airflow\n"
        "data:\n  values.yaml: |\n    region: ${aws_region}\n")
    ks = Resource({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                   "metadata": {"name": "apps", "namespace": "flux-system"},
                   "spec": {"postBuild": {"substitute": {"aws_region": "eu-west-1"}}}},
                  "clusters/x/apps.yaml", "Kustomization flux-system/flux-system")
    configmap = Resource({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": "extra-values", "namespace": "airflow"},
                          "data": {"values.yaml": "region: eu-west-1\n"}},
                         "apps/values.yaml", "Kustomization flux-system/apps")
    hr = Resource({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
                   "metadata": {"name": "airflow", "namespace": "airflow"},
                   "spec": {"interval": "1h", "valuesFrom": [{"kind": "ConfigMap", "name": "extra-values"}]}},
                  "apps/hr.yaml", "Kustomization flux-system/apps")
    rel = ReleaseRender(hr, "airflow", "airflow", "airflow", "1", {})
    found = live_state.unwatched_variable_sources([ks, configmap, hr], [rel], tmp_path, lambda name, under: [])
    assert [f"{f.file}: {f.object}: {f.field}" for f in found] == [
        "apps/values.yaml: ConfigMap airflow/extra-values: metadata.labels[reconcile.fluxcd.io/watch]"]
    assert "${aws_region} in apps/values.yaml" in found[0].message
    # The same object with substitution disabled keeps its ${...} literally: nothing to watch.
    configmap.obj["metadata"]["annotations"] = {"kustomize.toolkit.fluxcd.io/substitute": "disabled"}
    assert live_state.unwatched_variable_sources([ks, configmap, hr], [rel], tmp_path, lambda n, u: []) == []


# --- 3. readiness of custom resources under wait: true ------------------------------------------------------------

def test_repository_passes_the_readiness_check(cluster):
    from tests.helpers import REPO

    assert findings(REPO, cluster, "readiness") == []


def test_wait_kustomization_without_a_check_for_the_database_is_caught(repo_copy):
    edit(repo_copy, "clusters/kind/infrastructure.yaml",
         "    - apiVersion: postgresql.cnpg.io/v1\n      kind: Database\n      current: has(status.applied) && status.applied\n",
         "")
    found = findings(repo_copy, "kind", "readiness")
    assert len(found) == 1
    assert found[0].startswith(
        "clusters/kind/infrastructure.yaml: Kustomization flux-system/infra-configs: spec.healthCheckExprs: "
        "wait: true applies Database airflow/pipelines (postgresql.cnpg.io/v1) but nothing checks its readiness")
    assert 'Add to spec.healthCheckExprs: {apiVersion: postgresql.cnpg.io/v1, kind: Database, ' \
           'current: "has(status.applied) && status.applied"}' in found[0]


def test_eks_external_secrets_need_their_ready_condition(repo_copy):
    edit(repo_copy, "clusters/eks/infrastructure.yaml", "      kind: ExternalSecret\n", "      kind: ExternalSecrets\n")
    found = findings(repo_copy, "eks", "readiness")
    assert len(found) == 1 and "wait: true applies ExternalSecret airflow/airflow-admin-user" in found[0]


def test_a_new_custom_resource_kind_is_caught_with_what_to_add(repo_copy):
    (repo_copy / "infrastructure/configs/base/pooler.yaml").write_text(
        "apiVersion: postgresql.cnpg.io/v1\nkind: Pooler\nmetadata:\n  name: airflow-db-pooler\n"
        "  namespace: airflow\nspec:\n  cluster:\n    name: airflow-db\n  instances: 1\n  type: rw\n"
        "  pgbouncer:\n    poolMode: transaction\n")
    edit(repo_copy, "infrastructure/configs/base/kustomization.yaml", "  - airflow-db.yaml",
         "  - airflow-db.yaml\n  - pooler.yaml")
    found = findings(repo_copy, "kind", "readiness")
    assert len(found) == 1
    assert "wait: true applies Pooler airflow/airflow-db-pooler (postgresql.cnpg.io/v1)" in found[0]
    assert "Add to spec.healthCheckExprs: {apiVersion: postgresql.cnpg.io/v1, kind: Pooler, current: " in found[0]


def wait_kustomization(exprs: list[dict] | None = None, wait: bool = True) -> Resource:
    spec = {"wait": wait, "healthCheckExprs": exprs or []}
    return Resource({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                     "metadata": {"name": "infra-configs", "namespace": "flux-system"}, "spec": spec},
                    "clusters/x/infrastructure.yaml", "Kustomization flux-system/flux-system")


def applied(api_version: str, kind: str) -> Resource:
    return Resource({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x", "namespace": "airflow"}},
                    "infrastructure/configs/x.yaml", "Kustomization flux-system/infra-configs")


@pytest.mark.parametrize("api_version, kind", [
    ("notification.toolkit.fluxcd.io/v1", "Receiver"),      # Flux's own kinds follow kstatus
    ("helm.toolkit.fluxcd.io/v2", "HelmRelease"),
    ("apps/v1", "Deployment"),                               # Kubernetes' own kinds: kstatus has rules
    ("v1", "ConfigMap"),
    ("barmancloud.cnpg.io/v1", "ObjectStore"),               # its status has nothing to wait for
])
def test_kinds_kstatus_judges_need_no_expression(api_version, kind):
    assert live_state.unchecked_readiness([wait_kustomization(), applied(api_version, kind)]) == []


def test_a_group_wide_expression_covers_every_kind_of_the_group():
    exprs = [{"apiVersion": "postgresql.cnpg.io/v1", "current": "true"}]
    assert live_state.unchecked_readiness([wait_kustomization(exprs), applied("postgresql.cnpg.io/v1", "Cluster")]) == []


def test_without_wait_or_health_checks_nothing_is_required():
    ks = wait_kustomization(wait=False)
    assert live_state.unchecked_readiness([ks, applied("postgresql.cnpg.io/v1", "Cluster")]) == []


def test_a_custom_resource_listed_in_health_checks_needs_an_expression_too():
    ks = wait_kustomization(wait=False)
    ks.obj["spec"]["healthChecks"] = [{"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "name": "x",
                                       "namespace": "airflow"}]
    found = live_state.unchecked_readiness([ks, applied("postgresql.cnpg.io/v1", "Cluster")])
    assert [f"{f.file}: {f.object}: {f.field}" for f in found] == [
        "clusters/x/infrastructure.yaml: Kustomization flux-system/infra-configs: spec.healthCheckExprs"]
    assert found[0].message.startswith("spec.healthChecks waits for Cluster airflow/x (postgresql.cnpg.io/v1)")


# --- 4. objects that hold data, under prune -----------------------------------------------------------------------

PRUNE_ANNOTATION = "    kustomize.toolkit.fluxcd.io/prune: disabled\n"


def test_repository_passes_the_prune_protection_check(cluster):
    from tests.helpers import REPO

    assert findings(REPO, cluster, "prune-protection") == []


def test_the_database_cluster_without_the_annotation_is_caught(repo_copy):
    path = "infrastructure/configs/base/airflow-db.yaml"
    edit(repo_copy, path, PRUNE_ANNOTATION, "    app: airflow\n")
    found = findings(repo_copy, "kind", "prune-protection")
    assert len(found) == 1
    assert found[0].startswith(f"{path}: Cluster airflow/airflow-db: "
                               "metadata.annotations[kustomize.toolkit.fluxcd.io/prune]: Kustomization "
                               "flux-system/infra-configs has prune: true")
    assert "deletes its PVCs" in found[0]


def test_the_namespace_that_holds_the_database_without_the_annotation_is_caught(repo_copy):
    path = "infrastructure/controllers/base/namespaces.yaml"
    edit(repo_copy, path, PRUNE_ANNOTATION, "    app: airflow\n")
    found = findings(repo_copy, "kind", "prune-protection")
    assert len(found) == 1
    assert found[0].startswith(f"{path}: Namespace airflow: metadata.annotations[kustomize.toolkit.fluxcd.io/prune]")
    assert "it holds Cluster airflow/airflow-db" in found[0]


def protected_objects(annotation: str | None = None, common: dict | None = None, prune: bool = True,
                      reclaim: str | None = None) -> list[Resource]:
    ks = Resource({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                   "metadata": {"name": "data", "namespace": "flux-system"},
                   "spec": {"prune": prune, **({"commonMetadata": common} if common else {})}},
                  "clusters/x/data.yaml", "Kustomization flux-system/flux-system")
    meta = {"name": "data", "namespace": "db", **({"annotations": {live_state.PRUNE_KEY: annotation}}
                                                     if annotation else {})}
    pvc = Resource({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": {}},
                   "data/pvc.yaml", "Kustomization flux-system/data")
    database = Resource({"apiVersion": "postgresql.cnpg.io/v1", "kind": "Database",
                         "metadata": {"name": "app", "namespace": "db"},
                         "spec": {"databaseReclaimPolicy": reclaim} if reclaim else {}},
                        "data/database.yaml", "Kustomization flux-system/data")
    return [ks, pvc, database]


def test_a_pvc_under_prune_needs_the_annotation_and_a_database_only_when_it_drops():
    found = live_state.unprotected_data(protected_objects(), [])
    assert [f"{f.file}: {f.object}" for f in found] == ["data/pvc.yaml: PersistentVolumeClaim db/data"]
    found = live_state.unprotected_data(protected_objects(reclaim="delete"), [])
    assert [f.object for f in found] == ["PersistentVolumeClaim db/data", "Database db/app"]


@pytest.mark.parametrize("kwargs", [{"annotation": "disabled"}, {"annotation": "Disabled"}, {"prune": False},
                                    {"common": {"labels": {"kustomize.toolkit.fluxcd.io/prune": "disabled"}}}])
def test_the_annotation_a_label_common_metadata_or_no_prune_spares_it(kwargs):
    assert live_state.unprotected_data(protected_objects(**kwargs), []) == []
