"""Prune on the local cluster (issue 14, section 2): what leaves Git leaves the cluster, except what holds data.

The story is the restore runbook of docs/operate.md: a commit adds a second database Cluster, `airflow-db-restore`,
a copy of the repository's own `airflow-db` (infrastructure/configs/base/airflow-db.yaml, annotations included), with
the copy of its NetworkPolicy; the test plays the CloudNativePG operator (the Cluster healthy, its instance's PVC
made and owned by it). Then `git revert` of that commit takes both out of Git:

- the NetworkPolicy, which holds nothing, is pruned by kustomize-controller;
- the Cluster, annotated `kustomize.toolkit.fluxcd.io/prune: disabled`, stays, and with it its PVC (which would
  follow a deleted Cluster through the garbage collector: it carries the Cluster's ownerReference);
- every object of the cluster that holds data is protected, and how, is read from the cluster itself.

Afterwards the test deletes the restored Cluster the way docs/operate.md says to delete a database: by hand.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml
from airflow_gitops.live import flux, operators
from airflow_gitops.live.cluster import AIRFLOW_NAMESPACE

from tests.live.flows import fetch_now, kustomization, wait_applied

pytestmark = pytest.mark.live

PRUNE = "kustomize.toolkit.fluxcd.io/prune"
RESTORE = "airflow-db-restore"
KIND_CONFIGS = "infrastructure/configs/kind"
DATABASE_FILE = "infrastructure/configs/base/airflow-db.yaml"
POLICY_FILE = "infrastructure/configs/base/airflow-db-network-policy.yaml"


def restore_objects(work_clone) -> list[dict[str, Any]]:
    """airflow-db and its NetworkPolicy as Git has them, renamed: what a user copies for the restore runbook."""
    database = next(o for o in yaml.safe_load_all(work_clone.read(DATABASE_FILE)) if o and o["kind"] == "Cluster")
    policy = next(o for o in yaml.safe_load_all(work_clone.read(POLICY_FILE)) if o)
    database, policy = copy.deepcopy(database), copy.deepcopy(policy)
    database["metadata"]["name"] = RESTORE
    policy["metadata"]["name"] = RESTORE
    policy["spec"]["podSelector"] = {"matchLabels": {"cnpg.io/cluster": RESTORE}}
    return [database, policy]


def add_restore(work_clone) -> None:
    work_clone.write(f"{KIND_CONFIGS}/{RESTORE}.yaml", "# A restored copy of airflow-db (docs/operate.md).\n"
                     + yaml.safe_dump_all(restore_objects(work_clone), sort_keys=False))
    work_clone.edit(f"{KIND_CONFIGS}/kustomization.yaml",
                    lambda text: text.replace("  - ../base\n", f"  - ../base\n  - {RESTORE}.yaml\n", 1))


@dataclass
class Pruned:
    added: dict[str, Any] = field(repr=False)
    after_revert: dict[str, Any] = field(repr=False)
    inventory_before: list[str] = field(repr=False)
    inventory_after: list[str] = field(repr=False)


def inventory(live_cluster, name: str) -> list[str]:
    """A Kustomization's inventory: `<namespace>_<name>_<group>_<kind>` per object it applied (and may prune)."""
    entries = (kustomization(live_cluster, name).get("status") or {}).get("inventory", {}).get("entries") or []
    return [str(e["id"]) for e in entries]


def state(live_cluster) -> dict[str, Any]:
    return {"cluster": flux.get(live_cluster, operators.CNPG_CLUSTER, RESTORE, AIRFLOW_NAMESPACE),
            "policy": flux.get(live_cluster, "networkpolicy", RESTORE, AIRFLOW_NAMESPACE),
            "volume": flux.get(live_cluster, "persistentvolumeclaim", f"{RESTORE}-1", AIRFLOW_NAMESPACE)}


@pytest.fixture(scope="module")
def pruned(deployed, live_cluster, work_clone, waits) -> Pruned:
    work_clone.pull()
    add_restore(work_clone)
    added_commit = work_clone.commit(f"Restore the database into {RESTORE}")
    work_clone.push()
    fetch_now(live_cluster)
    try:
        flux.wait_for(live_cluster, f"Cluster airflow/{RESTORE} applied by infra-configs",
                      lambda: flux.get(live_cluster, operators.CNPG_CLUSTER, RESTORE, AIRFLOW_NAMESPACE) is not None,
                      120, waits)
        operators.play_cloudnative_pg(live_cluster)
        operators.play_cnpg_volumes(live_cluster, AIRFLOW_NAMESPACE, RESTORE)
        wait_applied(live_cluster, waits, "infra-configs", added_commit)
        flux.wait_for(live_cluster, f"PVC airflow/{RESTORE}-1 bound (kwok binds `standard` claims)",
                      lambda: ((state(live_cluster)["volume"] or {}).get("status") or {}).get("phase") == "Bound",
                      60, waits)
        added, inventory_before = state(live_cluster), inventory(live_cluster, "infra-configs")

        revert = work_clone.revert(added_commit)
        work_clone.push()
        fetch_now(live_cluster)
        wait_applied(live_cluster, waits, "infra-configs", revert)
        wait_applied(live_cluster, waits, "apps", revert)
        return Pruned(added, state(live_cluster), inventory_before, inventory(live_cluster, "infra-configs"))
    finally:
        # A database is deleted by hand; its PVC follows through the garbage collector.
        live_cluster.kubectl("delete", operators.CNPG_CLUSTER, RESTORE, "-n", AIRFLOW_NAMESPACE, "--ignore-not-found",
                             "--wait=false")


def entry(kind_group: str, name: str) -> str:
    group, kind = kind_group.split("/")
    return f"{AIRFLOW_NAMESPACE}_{name}_{group}_{kind}"


def test_the_commit_applied_the_copies(pruned):
    assert pruned.added["cluster"] and pruned.added["policy"] and pruned.added["volume"]
    assert (pruned.added["cluster"]["metadata"].get("annotations") or {}).get(PRUNE) == "disabled"
    assert entry("postgresql.cnpg.io/Cluster", RESTORE) in pruned.inventory_before
    assert entry("networking.k8s.io/NetworkPolicy", RESTORE) in pruned.inventory_before


def test_a_resource_deleted_in_git_is_deleted_from_the_cluster(pruned):
    assert pruned.after_revert["policy"] is None, "the NetworkPolicy the revert took out of Git is still there"
    assert entry("networking.k8s.io/NetworkPolicy", RESTORE) not in pruned.inventory_after


def test_a_revert_does_not_prune_the_database_cluster(pruned):
    cluster = pruned.after_revert["cluster"]
    assert cluster is not None, "the revert pruned the database Cluster"
    assert cluster["metadata"]["uid"] == pruned.added["cluster"]["metadata"]["uid"]
    assert "deletionTimestamp" not in cluster["metadata"]
    # Flux lets go of it: it is no longer in the inventory, so no later commit prunes it either.
    assert entry("postgresql.cnpg.io/Cluster", RESTORE) not in pruned.inventory_after


def test_a_revert_does_not_prune_the_databases_volume(pruned):
    volume = pruned.after_revert["volume"]
    assert volume is not None, "the database's PVC is gone"
    assert volume["metadata"]["uid"] == pruned.added["volume"]["metadata"]["uid"]
    assert volume["status"]["phase"] == "Bound"


def test_every_object_of_the_cluster_that_holds_data_is_protected(deployed, live_cluster):
    """Read from the cluster: the Namespace airflow and the Cluster airflow-db carry the annotation; PVCs are in no
    Flux inventory (the operator and the StatefulSet controller make them), so no commit can prune one."""
    protected = {}
    for name in ("infra-controllers", "infra-configs", "apps"):
        for item in inventory(live_cluster, name):
            namespace, obj_name, group, kind = item.split("_")
            assert kind != "PersistentVolumeClaim", f"{name} would prune {item}"
            if (group, kind) == ("", "Namespace") and obj_name == AIRFLOW_NAMESPACE:
                live = json.loads(live_cluster.kubectl("get", "namespace", obj_name, "-o", "json").stdout)
            elif (group, kind) == ("postgresql.cnpg.io", "Cluster"):
                live = flux.get(live_cluster, operators.CNPG_CLUSTER, obj_name, namespace) or {}
            else:
                continue
            protected[f"{kind} {'/'.join(filter(None, (namespace, obj_name)))}"] = \
                (live["metadata"].get("annotations") or {}).get(PRUNE)
    assert protected == {"Namespace airflow": "disabled", "Cluster airflow/airflow-db": "disabled"}
