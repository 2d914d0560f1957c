"""Helpers of the live tests (fixtures stay in conftest.py): the first deploy's record, and what a test that pushes
waits for. Every wait is on the cluster's own objects (Flux conditions, Helm release Secrets) and goes into `Waits`
with what it waited for, so the end of the run lists each with its duration.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_gitops.live import flux, tools
from airflow_gitops.live.cluster import AIRFLOW_NAMESPACE, FLUX_NAMESPACE, Cluster, _kubectl
from airflow_gitops.live.flux import Waits

from tests.helpers import REPO

ORDER = ("infra-controllers", "infra-configs", "apps")
HOLD_SECONDS = 15
"""How long the first deploy watches infra-configs and apps being held back before it plays the operator."""
RELEASE = "airflow"
PUSH_TIMEOUT = 180
"""A push reaches a Ready release in about 30 s here (docs/live-cluster.md); this bounds a stuck one."""


@dataclass
class Deploy:
    revision: str
    ready_at: dict[str, float] = field(default_factory=dict)
    held: list[dict] = field(default_factory=list, repr=False)
    played_at: float = 0.0


def kustomization(cluster: Cluster, name: str) -> dict:
    return flux.get(cluster, flux.KUSTOMIZATION, name, FLUX_NAMESPACE) or {}


def helmrelease(cluster: Cluster) -> dict:
    return flux.get(cluster, flux.HELMRELEASE, RELEASE, AIRFLOW_NAMESPACE) or {}


def releases(cluster: Cluster) -> dict[int, dict[str, Any]]:
    return flux.helm_releases(cluster, RELEASE, AIRFLOW_NAMESPACE)


def latest(cluster: Cluster) -> tuple[int, dict[str, Any]]:
    return flux.latest_release(cluster, RELEASE, AIRFLOW_NAMESPACE)


def describe_release(cluster: Cluster) -> str:
    history = ", ".join(f"v{v} {r['info']['status']} ({r['info'].get('description', '')[:80]})"
                        for v, r in releases(cluster).items())
    return f"Helm revisions: {history}\n{flux.describe_flux(cluster)}"


def wait_for_release(cluster: Cluster, waits: Waits, what: str, accept, timeout: float = PUSH_TIMEOUT,
                     ready: bool = True) -> tuple[int, dict[str, Any]]:
    """Until the newest Helm revision satisfies `accept(version, release)` and, with `ready`, the HelmRelease is
    Ready for its current spec with that revision at the head of its history. Returns that revision."""
    found: dict[str, Any] = {}

    def check() -> bool:
        version, release = latest(cluster)
        if not version or not accept(version, release):
            return False
        if ready:
            obj = helmrelease(cluster)
            history = (obj.get("status") or {}).get("history") or [{}]
            if not flux.is_ready(obj) or history[0].get("version") != version:
                return False
        found.update(version=version, release=release)
        return True

    flux.wait_for(cluster, what, check, timeout, waits, describe=lambda: describe_release(cluster))
    return found["version"], found["release"]


def deployed_after(before: int):
    """accept(): a revision newer than `before` that Helm reports deployed."""
    return lambda version, release: version > before and release["info"]["status"] == "deployed"


def wait_applied(cluster: Cluster, waits: Waits, name: str, commit: str, timeout: float = PUSH_TIMEOUT) -> float:
    """Until Kustomization `name` is Ready with `commit` applied."""
    return flux.wait_ready(cluster, flux.KUSTOMIZATION, name, FLUX_NAMESPACE, timeout,
                           revision=f"main@sha1:{commit}", waits=waits)


def fetch_now(cluster: Cluster) -> None:
    """What the GitHub webhook does on EKS (tests/live/test_notification.py proves it): source-controller fetches
    now rather than at its next poll (1 m). `make bench` measures the poll."""
    flux.reconcile_source(cluster)


def settled(cluster: Cluster, waits: Waits, commit: str) -> None:
    """Every Kustomization of clusters/kind Ready with `commit` applied: nothing of a previous push still moving."""
    for name in ("flux-system", *ORDER):
        wait_applied(cluster, waits, name, commit)


def since(started: float) -> float:
    return time.monotonic() - started


class Watch:
    """`kubectl get KIND --watch --output-watch-events -o json` in the background: every ADDED, MODIFIED and DELETED
    event of KIND in `namespace`, with the time it arrived. What a poll could miss (an object that lives 10 s) a
    watch sees."""

    def __init__(self, cluster: Cluster, kind: str, namespace: str) -> None:
        import subprocess
        import threading

        self.events: list[tuple[float, str, dict[str, Any]]] = []
        self._process = subprocess.Popen(
            [*cluster.kubectl_argv(), "get", kind, "-n", namespace, "--watch", "--output-watch-events", "-o", "json"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        import json

        decoder, buffer = json.JSONDecoder(), ""
        assert self._process.stdout is not None
        for line in self._process.stdout:
            buffer += line
            try:
                event, end = decoder.raw_decode(buffer.lstrip())
            except ValueError:
                continue
            buffer = buffer.lstrip()[end:]
            self.events.append((time.time(), str(event.get("type")), event.get("object") or {}))

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)

    def seen(self, since: float = 0.0) -> dict[str, list[tuple[float, str, dict[str, Any]]]]:
        """Events since `since` (time.time()), by object uid, in order."""
        found: dict[str, list[tuple[float, str, dict[str, Any]]]] = {}
        for at, kind, obj in list(self.events):
            if at >= since:
                found.setdefault(str((obj.get("metadata") or {}).get("uid")), []).append((at, kind, obj))
        return found


def make(cluster: Cluster, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`make <args>` in the repository as the README runs it, on this test run's venv (its install stamp taken as
    current: `-o`), with the cluster's kubeconfig and the built flux CLI and kubectl ahead of anything else on PATH."""
    venv = Path(sys.prefix)
    path = os.pathsep.join([str(tools.require_tool("flux").parent), str(Path(_kubectl()).parent),
                            os.environ.get("PATH", "")])
    env = {**os.environ, **cluster.env(), "PATH": path}
    env.pop("DRY_RUN", None)
    return subprocess.run(["make", "--no-print-directory", "-o", f"{venv}/bin/.installed-tool", f"VENV={venv}",
                           *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
