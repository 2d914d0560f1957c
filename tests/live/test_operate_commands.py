"""`make status` and `make reconcile` run as the README's Operate section runs them, against the local cluster.

Each target runs through make, with the project's venv and the cluster's kubeconfig, and with the real `flux` CLI
(2.9.5, built with the cluster) and kubectl first on PATH; the output is checked against the cluster's own objects.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from airflow_gitops.live import flux, tools
from airflow_gitops.live.cluster import AIRFLOW_NAMESPACE, FLUX_NAMESPACE, _kubectl

from tests.helpers import REPO
from tests.live.flows import ORDER, RELEASE, helmrelease, kustomization

pytestmark = pytest.mark.live

REQUESTED = "reconcile.fluxcd.io/requestedAt"


def make(live_cluster, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`make <args>` in the repository, on this test run's venv (its install stamp taken as current: `-o`), with the
    cluster's kubeconfig and the built flux CLI and kubectl ahead of anything else on PATH."""
    venv = Path(sys.prefix)
    path = os.pathsep.join([str(tools.require_tool("flux").parent), str(Path(_kubectl()).parent),
                            os.environ.get("PATH", "")])
    env = {**os.environ, **live_cluster.env(), "PATH": path}
    env.pop("DRY_RUN", None)
    return subprocess.run(["make", "--no-print-directory", "-o", f"{venv}/bin/.installed-tool", f"VENV={venv}",
                           *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_make_status_shows_every_flux_object_the_pods_and_the_release_history(deployed, live_cluster):
    result = make(live_cluster, "status")
    assert result.returncode == 0, result.stderr + result.stdout
    out = result.stdout
    for name in ("flux-system", *ORDER):
        ks = kustomization(live_cluster, name)
        revision = ks["status"]["lastAppliedRevision"]
        line = next((line for line in out.splitlines() if line.startswith(f"kustomization/{name} ")), None)
        assert line is not None, f"no kustomization/{name} in make status:\n{out}"
        assert revision in line and re.search(r"\bTrue\b", line), line
    assert re.search(rf"^helmrelease/{RELEASE}\s.*\bTrue\b", out, re.M), out
    pods = live_cluster.get("pods", namespace=AIRFLOW_NAMESPACE)["items"]
    for pod in pods:
        if (pod["metadata"].get("labels") or {}).get("release") == RELEASE:
            assert pod["metadata"]["name"] in out
    history = helmrelease(live_cluster)["status"]["history"]
    newest = history[0]
    expected = f"{newest['version']}\t{newest['status']}\t{newest['chartName']}-{newest['chartVersion']}\t"
    assert expected in out, f"the newest Helm revision ({expected!r}) is not in make status:\n{out}"


def test_make_reconcile_reconciles_each_kustomization_with_its_source_in_dependson_order(deployed, live_cluster):
    before = {name: (kustomization(live_cluster, name)["metadata"].get("annotations") or {}).get(REQUESTED)
              for name in ("flux-system", *ORDER)}
    result = make(live_cluster, "reconcile", "CLUSTER=kind")
    assert result.returncode == 0, result.stderr + result.stdout
    said = result.stdout + result.stderr
    # flux prints "► annotating Kustomization <name> in flux-system namespace" as it starts each one.
    started = re.findall(r"annotating Kustomization (\S+) in " + FLUX_NAMESPACE, said)
    assert started == ["flux-system", *ORDER], said
    assert said.count("applied revision") == len(started), said
    for name in ("flux-system", *ORDER):
        ks = kustomization(live_cluster, name)
        requested = (ks["metadata"].get("annotations") or {}).get(REQUESTED)
        assert requested and requested != before[name], f"{name}: no new reconcile request ({requested})"
        assert ks["status"].get("lastHandledReconcileAt") == requested, f"{name}: the request was not handled"
        assert flux.is_ready(ks), name
    assert flux.is_ready(flux.get(live_cluster, flux.HELMRELEASE, RELEASE, AIRFLOW_NAMESPACE) or {})
