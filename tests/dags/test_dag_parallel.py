"""parallel_dag: two branches run in parallel and join; the heavy task carries the pod_override that
replaces the course's Celery queue `high_cpu`, the light tasks carry none.

The override is read from the DAG as the dag-processor serializes it and as the scheduler
deserializes it (what the KubernetesExecutor gets), not only from the Python object.
(Merging it into the chart's pod template is tested with the rendered chart elsewhere.)
"""

from __future__ import annotations

import pytest

HEAVY_TASKS = {"transform"}
LIGHT_TASKS = {"extract_a", "extract_b", "load_a", "load_b"}


@pytest.fixture(scope="module")
def parallel(dagbag):
    return dagbag.dags["parallel_dag"]


@pytest.fixture(scope="module")
def scheduler_view(parallel):
    """The DAG after the serialization round trip the dag-processor and scheduler put it through."""
    from airflow.serialization.serialized_objects import DagSerialization

    return DagSerialization.deserialize_dag(DagSerialization.serialize_dag(parallel))


def test_branches_run_in_parallel_and_join(parallel):
    assert {t.task_id for t in parallel.tasks} == HEAVY_TASKS | LIGHT_TASKS
    assert parallel.get_task("extract_a").downstream_task_ids == {"load_a"}
    assert parallel.get_task("extract_b").downstream_task_ids == {"load_b"}
    assert parallel.get_task("transform").upstream_task_ids == {"load_a", "load_b"}
    # The two branches are independent: nothing orders a before b or b before a.
    branch_a = {"extract_a", "load_a"}
    assert not (parallel.get_task("extract_b").get_flat_relative_ids(upstream=True) & branch_a)
    assert not (parallel.get_task("extract_a").get_flat_relative_ids(upstream=True) & {"extract_b", "load_b"})


@pytest.mark.parametrize("view", ["parsed", "scheduler"])
def test_heavy_task_asks_for_the_high_cpu_pool(view, parallel, scheduler_view):
    from kubernetes.client import models as k8s

    dag = parallel if view == "parsed" else scheduler_view
    for task_id in HEAVY_TASKS:
        pod = dag.get_task(task_id).executor_config["pod_override"]
        assert isinstance(pod, k8s.V1Pod)
        (container,) = pod.spec.containers
        assert container.name == "base", "must merge into the pod template's worker container"
        assert container.resources.requests == {"cpu": "1", "memory": "1Gi"}
        assert container.resources.limits == {"cpu": "2", "memory": "2Gi"}
        assert pod.spec.node_selector == {"node-pool": "high-cpu"}
        (toleration,) = pod.spec.tolerations
        assert (toleration.key, toleration.value, toleration.effect) == (
            "node-pool",
            "high-cpu",
            "NoSchedule",
        )
        assert toleration.operator in (None, "Equal")
        # Nothing else is overridden: image, command, env... all come from the pod template.
        assert container.image is None and container.command is None and container.env is None


@pytest.mark.parametrize("view", ["parsed", "scheduler"])
def test_light_tasks_have_no_override(view, parallel, scheduler_view):
    dag = parallel if view == "parsed" else scheduler_view
    for task_id in LIGHT_TASKS:
        assert not dag.get_task(task_id).executor_config, task_id


def test_the_celery_queue_is_not_relied_upon(parallel):
    # The KubernetesExecutor ignores `queue`; the intent lives in the pod_override only.
    assert {t.queue for t in parallel.tasks} == {parallel.get_task("extract_a").queue}
