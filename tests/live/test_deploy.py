"""clusters/kind reconciled for real by Flux on the local cluster: every Kustomization Ready in dependsOn order,
the database's health checks holding the rest back until the (played) operator reports it healthy, the Airflow
release installed at revision 1 with its components available, and every object accepted by the API server,
Pod Security admission included.

The deploy happens once, in the `deployed` fixture (tests/live/conftest.py), which records what it saw; the tests
read that record and the cluster's objects.
"""

from __future__ import annotations

import json

import pytest
from airflow_gitops.live import flux
from airflow_gitops.live.cluster import AIRFLOW_NAMESPACE

from tests.live.flows import ORDER, kustomization

pytestmark = pytest.mark.live


def test_every_kustomization_is_ready_at_the_fetched_revision(deployed, live_cluster):
    for name in ("flux-system", *ORDER):
        obj = kustomization(live_cluster, name)
        assert flux.is_ready(obj), f"{name}: {flux.condition(obj)}"
        assert obj["status"]["lastAppliedRevision"] == deployed.revision


def test_kustomizations_become_ready_in_dependson_order(deployed):
    times = [deployed.ready_at[name] for name in ORDER]
    assert times == sorted(times), deployed.ready_at


def test_health_checks_hold_infra_configs_until_the_database_is_healthy(deployed):
    assert deployed.held, "nothing was observed before the operator was played"
    for seen in deployed.held:
        ready = flux.condition(seen["infra-configs"]) or {}
        assert ready.get("status") != "True", f"infra-configs Ready before the database was: {ready}"


def test_apps_waits_for_infra_configs_while_the_database_is_not_ready(deployed):
    for seen in deployed.held:
        ready = flux.condition(seen["apps"]) or {}
        assert ready.get("status") != "True"
        assert ready.get("reason") in (None, "DependencyNotReady", "Progressing"), ready


def test_the_health_checks_release_infra_configs_once_the_database_is_healthy(deployed):
    # kustomize-controller re-polls a waiting health check every few seconds (kstatus poller).
    assert deployed.ready_at["infra-configs"] - deployed.played_at < 60, deployed


def test_airflow_is_installed_from_the_chart_at_helm_revision_1(deployed, live_cluster):
    release = flux.get(live_cluster, flux.HELMRELEASE, "airflow", AIRFLOW_NAMESPACE)
    assert flux.is_ready(release), flux.condition(release)
    history = release["status"]["history"]
    assert [entry["version"] for entry in history] == [1]
    assert history[0]["status"] == "deployed"
    assert history[0]["chartName"] == "airflow"
    releases = flux.helm_releases(live_cluster, "airflow", AIRFLOW_NAMESPACE)
    assert list(releases) == [1] and releases[1]["info"]["status"] == "deployed"


@pytest.mark.parametrize("component", ["scheduler", "api-server", "dag-processor", "triggerer"])
def test_airflow_components_become_available(deployed, live_cluster, component):
    found = json.loads(live_cluster.kubectl("get", "deployments,statefulsets", "-n", AIRFLOW_NAMESPACE,
                                            "-l", f"component={component}", "-o", "json").stdout)["items"]
    assert found, f"no Deployment or StatefulSet for {component}"
    for workload in found:
        status = workload.get("status") or {}
        assert status.get("readyReplicas", 0) == workload["spec"].get("replicas", 1) > 0, (workload["kind"], status)


def test_no_pod_was_refused_by_the_api_server(deployed, live_cluster):
    events = json.loads(live_cluster.kubectl("get", "events", "-A", "--field-selector=reason=FailedCreate",
                                             "-o", "json").stdout)["items"]
    assert not [f"{e['involvedObject']['kind']} {e['metadata']['namespace']}/{e['involvedObject']['name']}: "
                f"{e['message']}" for e in events]


def test_pod_security_admission_is_enforced_in_the_airflow_namespace(deployed, live_cluster):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "privileged-probe", "namespace": AIRFLOW_NAMESPACE},
           "spec": {"containers": [{"name": "c", "image": "busybox:1.37", "securityContext": {"privileged": True}}]}}
    result = live_cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
    assert result.returncode != 0
    assert 'violates PodSecurity "restricted' in result.stderr


def test_network_policies_and_disruption_budgets_are_accepted(deployed, live_cluster):
    policies = json.loads(live_cluster.kubectl("get", "networkpolicies", "-n", AIRFLOW_NAMESPACE, "-o",
                                               "json").stdout)["items"]
    assert {p["metadata"]["name"] for p in policies} >= {"airflow-db"}
    budgets = json.loads(live_cluster.kubectl("get", "poddisruptionbudgets", "-A", "-o", "json").stdout)["items"]
    assert budgets, "no PodDisruptionBudget reached the cluster"


def worker_pod(live_cluster, name: str, override=None) -> dict:
    """A task's pod as the KubernetesExecutor builds it: the chart's pod template (from the cluster's ConfigMap)
    reconciled with a task's pod_override by the provider's own PodGenerator."""
    import yaml
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator
    from kubernetes.client import ApiClient

    config = json.loads(live_cluster.kubectl("get", "configmap", "airflow-config", "-n", AIRFLOW_NAMESPACE,
                                             "-o", "json").stdout)
    template = yaml.safe_load(config["data"]["pod_template_file.yaml"])
    pod = PodGenerator.deserialize_model_dict(template)
    if override is not None:
        pod = PodGenerator.reconcile_pods(pod, override)
    obj = ApiClient().sanitize_for_serialization(pod)
    obj["metadata"] = {"name": name, "namespace": AIRFLOW_NAMESPACE, "labels": obj["metadata"].get("labels") or {}}
    return obj


@pytest.mark.parametrize(("override", "node"), [("high-cpu", "live-high-cpu-1"), (None, "live-general-1")])
def test_the_scheduler_places_task_pods_on_the_node_pools_as_on_eks(deployed, live_cluster, waits, override, node):
    import importlib.util
    import sys

    from tests.helpers import REPO

    sys.path.insert(0, str(REPO / "dags"))
    try:
        spec = importlib.util.spec_from_file_location("parallel_dag_live", REPO / "dags" / "parallel_dag.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(REPO / "dags"))
    name = f"task-{override or 'default'}"
    pod = worker_pod(live_cluster, name, module.HIGH_CPU_POD_OVERRIDE if override else None)
    # Admission first: the worker pod passes Pod Security `restricted` in the airflow namespace.
    live_cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
    try:
        flux.wait_for(live_cluster, f"task pod {name} scheduled", lambda: bool(json.loads(live_cluster.kubectl(
            "get", "pod", name, "-n", AIRFLOW_NAMESPACE, "-o", "json").stdout)["spec"].get("nodeName")), 60, waits)
        placed = json.loads(live_cluster.kubectl("get", "pod", name, "-n", AIRFLOW_NAMESPACE, "-o", "json").stdout)
        assert placed["spec"]["nodeName"] == node
    finally:
        live_cluster.kubectl("delete", "pod", name, "-n", AIRFLOW_NAMESPACE, "--wait=false", check=False)
