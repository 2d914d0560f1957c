"""Checks on the rendered Airflow release (skip loudly when the chart is not at hand)."""

from __future__ import annotations

import configparser

import pytest
import yaml
from airflow_gitops.checks import schemas
from airflow_gitops.checks.policies import containers, pod_template_resources, resource_requests

from tests.helpers import airflow_release, make_settings, render, skip_for


def objects(release, kind: str) -> dict[str, dict]:
    return {o.name: o.obj for o in release.objects if o.kind == kind}


def airflow_cfg(release) -> configparser.ConfigParser:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read_string(objects(release, "ConfigMap")[f"{release.release_name}-config"]["data"]["airflow.cfg"])
    return cfg


def pod_template(release) -> dict:
    text = objects(release, "ConfigMap")[f"{release.release_name}-config"]["data"]["pod_template_file.yaml"]
    return yaml.safe_load(text)


@pytest.mark.parametrize("component", ["scheduler", "dag-processor", "api-server"])
def test_core_deployments_render(rendered_airflow, component):
    assert f"airflow-{component}" in objects(rendered_airflow, "Deployment")


def test_triggerer_renders(rendered_airflow):
    assert "airflow-triggerer" in {**objects(rendered_airflow, "Deployment"), **objects(rendered_airflow, "StatefulSet")}


def test_no_redis_celery_worker_or_flower_object_renders(rendered_airflow):
    for o in rendered_airflow.objects:
        labels = (o.obj["metadata"].get("labels") or {})
        assert labels.get("component") not in ("redis", "flower"), o.ref
        assert not (labels.get("component") == "worker" and o.kind in ("Deployment", "StatefulSet")), o.ref
        assert "broker" not in o.name and "flower" not in o.name, o.ref


def test_dag_processor_carries_the_git_sync_sidecar(rendered_airflow):
    pod = objects(rendered_airflow, "Deployment")["airflow-dag-processor"]["spec"]["template"]["spec"]
    sidecar = next(c for c in pod["containers"] if c["name"] == "git-sync")
    env = {e["name"]: e.get("value") for e in sidecar["env"]}
    assert env["GITSYNC_REPO"] == rendered_airflow.values["dags"]["gitSync"]["repo"]
    assert env["GITSYNC_REF"] == rendered_airflow.values["dags"]["gitSync"]["branch"]


def test_worker_pod_template_has_git_sync_init_container_mounting_dags_at_dags_folder(rendered_airflow):
    pod = pod_template(rendered_airflow)
    init = next(c for c in pod["spec"]["initContainers"] if c["name"] == "git-sync-init")
    assert {e["name"]: e.get("value") for e in init["env"]}["GITSYNC_ONE_TIME"] == "true"
    dags_folder = airflow_cfg(rendered_airflow)["core"]["dags_folder"]
    base = next(c for c in pod["spec"]["containers"] if c["name"] == "base")
    mounts = [m["mountPath"] for m in base["volumeMounts"] if m["name"] == "dags"]
    assert len(mounts) == 1 and dags_folder.startswith(mounts[0] + "/")
    subpath = rendered_airflow.values["dags"]["gitSync"]["subPath"]
    assert dags_folder.endswith("/" + subpath)


def test_pod_template_path_matches_the_mounted_config(rendered_airflow):
    cfg = airflow_cfg(rendered_airflow)
    assert cfg["core"]["executor"] == "KubernetesExecutor"
    assert cfg["kubernetes_executor"]["pod_template_file"].endswith("/pod_template_file.yaml")
    assert cfg["kubernetes_executor"]["worker_container_tag"] == "3.3.2"


def test_every_rendered_object_passes_strict_kubernetes_schemas(rendered_airflow, cluster):
    kube = schemas.kubernetes_schemas("1.35")
    crds = schemas.schema_sources(make_settings(), render(cluster)).crds
    checked = [*rendered_airflow.objects, *pod_template_resources(rendered_airflow.objects)]
    assert [str(f) for o in checked for f in schemas.validate_resource(o, kube, crds)] == []


def test_every_eks_container_requests_cpu_and_memory():
    release = airflow_release("eks")
    if release.unrendered_reason:
        skip_for("chart", f"chart checks not run: {release.unrendered_reason}")
    checked = [*release.objects, *pod_template_resources(release.objects)]
    assert sum(1 for o in checked for _ in containers(o)) > 10
    assert [str(f) for f in resource_requests(checked)] == []


def test_images_are_the_pinned_airflow(rendered_airflow):
    images = {c["image"] for o in rendered_airflow.objects for _, c in containers(o)
              if c["image"].startswith("apache/airflow")}
    assert images == {"apache/airflow:3.3.2"}


def test_cleanup_cronjob_removes_the_failed_worker_pods_we_keep(rendered_airflow):
    assert rendered_airflow.values["config"]["kubernetes_executor"]["delete_worker_pods_on_failure"] == "False"
    assert "airflow-cleanup" in objects(rendered_airflow, "CronJob")
