"""Playing the operators that cannot run on the local cluster: their pods have no container runtime behind them.

Each function writes, through the status subresource, exactly the status the operator's Go types define when the
object is healthy, so that Flux's health checks (`healthCheckExprs`) judge what they would judge on a real cluster.

CloudNativePG 1.30 (github.com/cloudnative-pg/cloudnative-pg v1.30.0):
- Cluster: `status.phase` = PhaseHealthy "Cluster in healthy state" (api/v1/cluster_types.go), and the Ready
  condition SetClusterReadyCondition derives from it: type "Ready", status True, reason "ClusterIsReady",
  message "Cluster is Ready" (pkg/resources/status/transactions.go); instances, readyInstances, the primary and the
  `-rw`/`-r` services as the instance manager reports them.
- Database: `status.applied` true and `observedGeneration` (api/v1/database_types.go DatabaseStatus).
"""

from __future__ import annotations

import json
import time
from typing import Any

from airflow_gitops.live.cluster import Cluster

CNPG_CLUSTER = "clusters.postgresql.cnpg.io"
CNPG_DATABASE = "databases.postgresql.cnpg.io"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def healthy_cluster_status(cluster_obj: dict[str, Any]) -> dict[str, Any]:
    name = cluster_obj["metadata"]["name"]
    instances = int((cluster_obj.get("spec") or {}).get("instances") or 1)
    names = [f"{name}-{index}" for index in range(1, instances + 1)]
    return {
        "phase": "Cluster in healthy state",
        "instances": instances,
        "readyInstances": instances,
        "instanceNames": names,
        "currentPrimary": names[0],
        "targetPrimary": names[0],
        "writeService": f"{name}-rw",
        "readService": f"{name}-r",
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "ClusterIsReady", "message": "Cluster is Ready",
            "lastTransitionTime": _now(),
            "observedGeneration": cluster_obj["metadata"].get("generation", 1),
        }],
    }


def _patch_status(cluster: Cluster, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
    cluster.kubectl("patch", kind, name, "-n", namespace, "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": status}))


def play_cloudnative_pg(cluster: Cluster) -> list[str]:
    """Report every CloudNativePG Cluster and Database as the operator reports a healthy one; returns what it set."""
    done = []
    for item in json.loads(cluster.kubectl("get", CNPG_CLUSTER, "-A", "-o", "json").stdout).get("items", []):
        meta = item["metadata"]
        _patch_status(cluster, CNPG_CLUSTER, meta["namespace"], meta["name"], healthy_cluster_status(item))
        done.append(f"Cluster {meta['namespace']}/{meta['name']}")
    for item in json.loads(cluster.kubectl("get", CNPG_DATABASE, "-A", "-o", "json").stdout).get("items", []):
        meta = item["metadata"]
        _patch_status(cluster, CNPG_DATABASE, meta["namespace"], meta["name"],
                      {"applied": True, "observedGeneration": meta.get("generation", 1)})
        done.append(f"Database {meta['namespace']}/{meta['name']}")
    return done


def cnpg_instance_volumes(cluster_obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The PVCs the CloudNativePG operator makes for a Cluster's instances (pkg/specs/pvcs; instance names
    `<cluster>-<serial>` as instanceNames above): one PG_DATA claim per instance, of spec.storage's size and class,
    owned by the Cluster (controller ownerReference), so that deleting the Cluster deletes them."""
    meta = cluster_obj["metadata"]
    storage = (cluster_obj.get("spec") or {}).get("storage") or {}
    instances = int((cluster_obj.get("spec") or {}).get("instances") or 1)
    claims = []
    for serial in range(1, instances + 1):
        name = f"{meta['name']}-{serial}"
        claim: dict[str, Any] = {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": meta["namespace"],
                         "labels": {"cnpg.io/cluster": meta["name"], "cnpg.io/instanceName": name,
                                    "cnpg.io/pvcRole": "PG_DATA"},
                         "ownerReferences": [{"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
                                              "name": meta["name"], "uid": meta["uid"], "controller": True,
                                              "blockOwnerDeletion": True}]},
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": storage.get("size", "1Gi")}}},
        }
        if storage.get("storageClass"):
            claim["spec"]["storageClassName"] = storage["storageClass"]
        claims.append(claim)
    return claims


def play_cnpg_volumes(cluster: Cluster, namespace: str, name: str) -> list[str]:
    """Create the instance PVCs of one Cluster as the operator does; returns their names."""
    obj = json.loads(cluster.kubectl("get", CNPG_CLUSTER, name, "-n", namespace, "-o", "json").stdout)
    claims = cnpg_instance_volumes(obj)
    cluster.apply(claims)
    return [c["metadata"]["name"] for c in claims]
