"""Reading Flux's objects on a running cluster: conditions, revisions, Helm release history, and waits on them.

Every wait returns how long it took and names what it waited for, so a test or `bench` can say both. Nothing
here reads the tool's own rendering: only the API server's objects.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from airflow_gitops.live import tools
from airflow_gitops.live.cluster import Cluster, LiveError, wait_until

KUSTOMIZATION = "kustomizations.kustomize.toolkit.fluxcd.io"
HELMRELEASE = "helmreleases.helm.toolkit.fluxcd.io"
GITREPOSITORY = "gitrepositories.source.toolkit.fluxcd.io"
KINDS = {KUSTOMIZATION: "Kustomization", HELMRELEASE: "HelmRelease", GITREPOSITORY: "GitRepository"}


def condition(obj: dict[str, Any], kind: str = "Ready") -> dict[str, Any] | None:
    for item in (obj.get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            return item
    return None


def is_ready(obj: dict[str, Any]) -> bool:
    """Ready=True for the object's current generation (a stale Ready of the previous spec does not count)."""
    ready = condition(obj)
    status = obj.get("status") or {}
    return bool(ready and ready.get("status") == "True"
                and status.get("observedGeneration", 0) >= obj["metadata"].get("generation", 0))


@dataclass
class Waits:
    """What was waited for, and how long: printed at the end of a live test run, and by `bench`."""

    entries: list[tuple[str, float]] = field(default_factory=list)

    def record(self, what: str, seconds: float) -> float:
        self.entries.append((what, seconds))
        return seconds


def wait_for(cluster: Cluster, what: str, check: Callable[[], bool], timeout: float, waits: Waits | None = None,
             describe: Callable[[], str] | None = None, interval: float = 0.5) -> float:
    seconds = wait_until(what, check, timeout, interval=interval, describe=describe)
    if waits is not None:
        waits.record(what, seconds)
    return seconds


def get(cluster: Cluster, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
    result = cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    if result.returncode != 0:
        if "NotFound" in result.stderr or "not found" in result.stderr:
            return None
        raise LiveError(result.stderr.strip())
    return json.loads(result.stdout)


def source_revision(cluster: Cluster, name: str = "flux-system", namespace: str = "flux-system") -> str:
    repo = get(cluster, GITREPOSITORY, name, namespace) or {}
    return str(((repo.get("status") or {}).get("artifact") or {}).get("revision") or "")


def describe_flux(cluster: Cluster) -> str:
    """One line per Flux object with its Ready condition: what a timeout prints."""
    lines = []
    for kind in (GITREPOSITORY, KUSTOMIZATION, HELMRELEASE):
        result = cluster.kubectl("get", kind, "-A", "-o", "json", check=False)
        if result.returncode != 0:
            continue
        for item in json.loads(result.stdout).get("items", []):
            ready = condition(item) or {}
            meta = item["metadata"]
            lines.append(f"{item['kind']} {meta['namespace']}/{meta['name']}: Ready={ready.get('status')} "
                         f"{ready.get('reason', '')}: {str(ready.get('message', ''))[:300]}")
    return "\n".join(lines)


def wait_ready(cluster: Cluster, kind: str, name: str, namespace: str, timeout: float, *,
               revision: str | None = None, waits: Waits | None = None) -> float:
    """Until the object is Ready for its current spec and, for a Kustomization, has applied `revision`."""
    def check() -> bool:
        obj = get(cluster, kind, name, namespace)
        if obj is None or not is_ready(obj):
            return False
        return revision is None or (obj.get("status") or {}).get("lastAppliedRevision") == revision

    what = f"{KINDS.get(kind, kind)} {namespace}/{name} Ready" + (f" at {revision}" if revision else "")
    return wait_for(cluster, what, check, timeout, waits, describe=lambda: describe_flux(cluster))


REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"


def request_reconcile(cluster: Cluster, kind: str, name: str, namespace: str) -> str:
    """What `flux reconcile` (and the webhook Receiver) does: the requestedAt annotation, which the object's
    controller acts on at once; returns its value, which status.lastHandledReconcileAt repeats once handled."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{time.time_ns() % 1_000_000_000:09d}Z"
    cluster.kubectl("annotate", "--overwrite", kind, name, "-n", namespace, f"{REQUESTED_AT}={stamp}")
    return stamp


def reconcile_source(cluster: Cluster, name: str = "flux-system", namespace: str = "flux-system") -> str:
    """What `flux reconcile source git` does: the requestedAt annotation, which source-controller acts on at once."""
    return request_reconcile(cluster, GITREPOSITORY, name, namespace)


def handled(obj: dict[str, Any] | None, token: str) -> bool:
    """Whether the object's controller has handled the reconcile request `token` (status.lastHandledReconcileAt)."""
    return bool(obj) and (obj.get("status") or {}).get("lastHandledReconcileAt") == token  # type: ignore[union-attr]


def flux_cli(cluster: Cluster, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The real `flux` CLI (2.9.5, built with the cluster) against this cluster; the caller reads the result."""
    return subprocess.run([str(tools.require_tool("flux")), *args], capture_output=True, text=True,
                          env={**os.environ, **cluster.env()}, timeout=timeout)


# --- Helm release Secrets (what helm-controller stores; `helm history` reads the same) ---------------------


def helm_releases(cluster: Cluster, release: str, namespace: str) -> dict[int, dict[str, Any]]:
    """Revision -> the decoded release (name, version, info.status, manifest, config), from the Secrets
    sh.helm.release.v1.<release>.v<N> that the Helm storage driver writes."""
    result = cluster.kubectl("get", "secrets", "-n", namespace, "-l", f"owner=helm,name={release}", "-o", "json")
    found = {}
    for item in json.loads(result.stdout).get("items", []):
        raw = base64.b64decode(base64.b64decode(item["data"]["release"]))
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        decoded = json.loads(raw)
        found[int(decoded["version"])] = decoded
    return dict(sorted(found.items()))


def latest_release(cluster: Cluster, release: str, namespace: str) -> tuple[int, dict[str, Any]]:
    """The newest Helm revision of `release` and its decoded release; (0, {}) before the first."""
    releases = helm_releases(cluster, release, namespace)
    if not releases:
        return 0, {}
    version = max(releases)
    return version, releases[version]


def manifest_objects(release: dict[str, Any]) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """A Helm release's manifest as objects, by (apiVersion, kind, namespace, name): how two revisions compare."""
    found = {}
    for obj in yaml.safe_load_all(release.get("manifest") or ""):
        if not obj:
            continue
        meta = obj.get("metadata") or {}
        found[(str(obj.get("apiVersion")), str(obj.get("kind")), str(meta.get("namespace") or ""),
               str(meta.get("name")))] = obj
    return found
