"""Airflow 3.3.2 itself builds worker pods from the rendered airflow.cfg and pod template.

`airflow kubernetes generate-dag-yaml` runs here against the chart's rendered `<release>-config` ConfigMap,
with only what cannot exist on this machine swapped for local stand-ins (each named below)."""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from airflow_gitops.checks import schemas
from airflow_gitops.model import Resource

from tests.helpers import REPO, airflow_release, skip_for

LOGICAL_DATE = "2026-01-01"
HEAVY_TASKS = {"transform"}


@pytest.fixture(scope="module", params=["kind", "eks"])
def worker_pods(request, tmp_path_factory):
    release = airflow_release(request.param)
    if release.unrendered_reason:
        skip_for("chart", f"worker pods not generated: {release.unrendered_reason}")
    config = next(o.obj for o in release.objects if o.kind == "ConfigMap" and o.name == f"{release.release_name}-config")
    home = tmp_path_factory.mktemp(f"airflow-{request.param}")
    (home / "airflow.cfg").write_text(config["data"]["airflow.cfg"])
    (home / "pod_template_file.yaml").write_text(config["data"]["pod_template_file.yaml"])
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW_CONFIG": str(home / "airflow.cfg"),
        # Stand-ins: the cluster's paths, database and S3 log handler do not exist on this machine.
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps([{
            "name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(REPO / "dags")}}]),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE": str(home / "pod_template_file.yaml"),
        "AIRFLOW__LOGGING__REMOTE_LOGGING": "False",
        "AIRFLOW__METRICS__STATSD_ON": "False",
    }
    airflow = str(Path(sys.executable).parent / "airflow")
    for command in ([airflow, "db", "migrate"],
                    [airflow, "kubernetes", "generate-dag-yaml", "parallel_dag", "-l", LOGICAL_DATE, "-o", str(home)]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{' '.join(command[1:])} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    pods = {}
    for file in sorted((home / "airflow_yaml_output").glob("*.yml")):
        pod = yaml.safe_load(file.read_text())
        pods[pod["metadata"]["labels"]["task_id"]] = pod
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read_string(config["data"]["airflow.cfg"])
    return {"pods": pods, "cfg": cfg, "template": yaml.safe_load(config["data"]["pod_template_file.yaml"]),
            "release": release}


def base(pod: dict) -> dict:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "base")


def test_a_pod_for_every_task(worker_pods):
    assert set(worker_pods["pods"]) == {"extract_a", "extract_b", "load_a", "load_b", "transform"}


def test_generated_pods_pass_strict_kubernetes_validation(worker_pods):
    kube = schemas.kubernetes_schemas("1.35")
    crds = schemas.CRDSchemas()  # Pods: Kubernetes' own schemas, no CRD needed
    findings = [str(f) for task, pod in worker_pods["pods"].items()
                for f in schemas.validate_resource(Resource(pod, f"generated pod {task}", "airflow"), kube, crds)]
    assert findings == []


def test_every_pod_carries_the_git_sync_init_container(worker_pods):
    for task, pod in worker_pods["pods"].items():
        names = [c["name"] for c in pod["spec"].get("initContainers", [])]
        assert "git-sync-init" in names, task


def test_pods_run_the_dag_file_from_the_dags_folder_the_cluster_config_names(worker_pods):
    dags_folder = worker_pods["cfg"]["core"]["dags_folder"]
    for task, pod in worker_pods["pods"].items():
        mounts = {m["name"]: m["mountPath"] for m in base(pod)["volumeMounts"]}
        assert dags_folder.startswith(mounts["dags"] + "/"), task
        workload = json.loads(base(pod)["args"][-1])
        assert (REPO / "dags" / workload["dag_rel_path"]).is_file(), task
        config_volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "config")
        assert config_volume["configMap"]["name"] == f"{worker_pods['release'].release_name}-config", task


def test_heavy_task_pod_carries_the_high_cpu_override(worker_pods):
    pod = worker_pods["pods"]["transform"]
    assert base(pod)["resources"] == {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}
    assert pod["spec"]["nodeSelector"] == {"node-pool": "high-cpu"}
    assert {"key": "node-pool", "operator": "Equal", "value": "high-cpu", "effect": "NoSchedule"} in pod["spec"]["tolerations"]
    assert [c["name"] for c in pod["spec"]["containers"]] == ["base"], "the override merged into the base container"


def test_tasks_without_override_keep_the_template_defaults(worker_pods):
    template_base = base(worker_pods["template"])
    for task, pod in worker_pods["pods"].items():
        if task in HEAVY_TASKS:
            continue
        assert base(pod).get("resources") == template_base.get("resources"), task
        assert pod["spec"].get("nodeSelector") == worker_pods["template"]["spec"].get("nodeSelector"), task
        assert pod["spec"].get("tolerations") == worker_pods["template"]["spec"].get("tolerations"), task
