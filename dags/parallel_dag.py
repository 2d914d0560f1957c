"""parallel_dag: parallel branches that join, with the heavy task on the high-CPU node pool.

    extract_a >> load_a \\
                         >> transform
    extract_b >> load_b /

The branches run at the same time (each task is its own pod under the KubernetesExecutor, so
parallelism is bounded by the scheduler's ``parallelism``/``max_active_tasks_per_dag`` and the
cluster's capacity, not by a fixed number of worker slots).

From Celery queues to pod_override
----------------------------------
The course sent ``transform`` to a Celery queue, ``queue="high_cpu"``, consumed only by workers
started on big machines (``airflow celery worker -q high_cpu``). The KubernetesExecutor has no
long-lived workers and ignores ``queue``: every task gets a pod built from the pod template. The
same intent is said per task with ``executor_config={"pod_override": V1Pod(...)}``, merged into the
template's pod when the task's pod is created:

===================================  ==============================================================
Celery                               KubernetesExecutor
===================================  ==============================================================
``queue="high_cpu"``                 ``nodeSelector: {node-pool: high-cpu}`` + a toleration for the
                                     pool's ``node-pool=high-cpu:NoSchedule`` taint (the EKS
                                     config creates that tainted node group)
worker machine size / concurrency    ``resources``: requests cpu 1 / memory 1Gi (what the scheduler
                                     reserves), limits cpu 2 / memory 2Gi (the ceiling)
workers listening on other queues    tasks without an override: the pod template's defaults
===================================  ==============================================================

The override's container must be named ``base``: Airflow merges it into the template's worker
container by that name (another name would add a second container to the pod). The light tasks get
no override at all. (With Airflow 3's multiple executors, ``executor="CeleryExecutor"`` per task is
the other way to keep a Celery queue for some tasks; this repository runs the KubernetesExecutor only.)
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator
from airflow.sdk import dag, task
from include.defaults import DEFAULT_ARGS

# Written as the pod's YAML would be, turned into the V1Pod the executor needs. Going through the
# provider's PodGenerator (an airflow.* import) lets the dag-processor pre-import the kubernetes client
# once in its manager process instead of paying ~0.5 s for it in every parse of this file.
HIGH_CPU_POD_OVERRIDE = PodGenerator.deserialize_model_dict(
    {
        "spec": {
            "containers": [
                {
                    "name": "base",
                    "resources": {
                        "requests": {"cpu": "1", "memory": "1Gi"},
                        "limits": {"cpu": "2", "memory": "2Gi"},
                    },
                }
            ],
            "nodeSelector": {"node-pool": "high-cpu"},
            "tolerations": [{"key": "node-pool", "operator": "Equal", "value": "high-cpu", "effect": "NoSchedule"}],
        }
    }
)
"""What ``queue="high_cpu"`` meant on Celery, said to the KubernetesExecutor (a ``k8s.V1Pod``)."""


@dag(
    dag_id="parallel_dag",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    # No catch-up: a demo of parallelism; replaying every day since start_date would only queue pods.
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["course", "parallelism", "kubernetes"],
    doc_md=__doc__,
)
def parallel_dag():
    @task
    def extract_a() -> list[int]:
        return list(range(0, 50))

    @task
    def extract_b() -> list[int]:
        return list(range(50, 100))

    @task
    def load_a(rows: list[int]) -> int:
        return len(rows)

    @task
    def load_b(rows: list[int]) -> int:
        return len(rows)

    @task(executor_config={"pod_override": HIGH_CPU_POD_OVERRIDE})
    def transform(loaded_a: int, loaded_b: int) -> int:
        # Stands for the CPU-heavy step the course ran on the high_cpu queue.
        total = sum(i * i for i in range(200_000))
        print(f"transformed {loaded_a + loaded_b} rows (checksum {total})")
        return loaded_a + loaded_b

    transform(load_a(extract_a()), load_b(extract_b()))


parallel_dag()
