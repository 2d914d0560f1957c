"""`make status` and `make reconcile` run as the README's Operate section runs them, against the local cluster.

Each target runs through make, with the project's venv and the cluster's kubeconfig, and with the real `flux` CLI
(2.9.5, built with the cluster) and kubectl first on PATH; the output is checked against the cluster's own objects.
"""

from __future__ import annotations

import re

import pytest
from airflow_gitops.live import flux
from airflow_gitops.live.cluster import AIRFLOW_NAMESPACE, FLUX_NAMESPACE

from tests.live.flows import ORDER, RELEASE, helmrelease, kustomization, make

pytestmark = pytest.mark.live

REQUESTED = "reconcile.fluxcd.io/requestedAt"


def test_make_status_shows_every_flux_object_the_pods_and_the_release_history(deployed, live_cluster, waits):
    revision = flux.source_revision(live_cluster)
    for name in ("flux-system", *ORDER):  # what the earlier tests pushed, applied: a still picture to compare with
        flux.wait_ready(live_cluster, flux.KUSTOMIZATION, name, FLUX_NAMESPACE, 300, revision=revision, waits=waits)
    result = make(live_cluster, "status")
    assert result.returncode == 0, result.stderr + result.stdout
    out = result.stdout
    # `flux get all -A` prints NAMESPACE, NAME, REVISION (the commit id cut to 8), SUSPENDED, READY, MESSAGE.
    short = revision[:revision.index(":") + 9]
    for name in ("flux-system", *ORDER):
        line = next((line for line in out.splitlines() if line.split()[1:2] == [f"kustomization/{name}"]), None)
        assert line is not None, f"no kustomization/{name} in make status:\n{out}"
        assert line.split()[2:5] == [short, "False", "True"], line
    line = next((line for line in out.splitlines() if line.split()[1:2] == [f"helmrelease/{RELEASE}"]), "")
    assert line.split()[3:5] == ["False", "True"], out
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
