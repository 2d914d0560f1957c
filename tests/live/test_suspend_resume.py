"""Suspend and resume on the local cluster (issue 14, section 1), as docs/operate.md's emergency hand fix says:
`flux suspend kustomization apps` and `flux suspend helmrelease airflow -n airflow` stop Flux from undoing a hand
edit, and `flux resume` of both brings back what Git says.

Two hand edits, one of each owner: a port of the NetworkPolicy airflow-worker-pods (applied by `apps` from Git) and
the scheduler Deployment's replicas (rendered by helm-controller, whose drift detection is on). While both are
suspended the test asks each to reconcile, as the interval would; the edits stay. Resumed, each is undone.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from airflow_gitops.live import flux
from airflow_gitops.live.cluster import AIRFLOW_NAMESPACE, FLUX_NAMESPACE

from tests.helpers import REPO
from tests.live.flows import RELEASE, helmrelease, kustomization

pytestmark = pytest.mark.live

RUNBOOK = REPO / "docs" / "operate.md"
SUSPEND = (["suspend", "kustomization", "apps"], ["suspend", "helmrelease", RELEASE, "-n", AIRFLOW_NAMESPACE])
POLICY = "airflow-worker-pods"
SCHEDULER = f"{RELEASE}-scheduler"
SUSPENDED_WINDOW = 8
"""How long the test watches the suspended objects after asking them to reconcile."""


def policy_port(live_cluster) -> int:
    policy = flux.get(live_cluster, "networkpolicy", POLICY, AIRFLOW_NAMESPACE) or {}
    return int(policy["spec"]["ingress"][0]["ports"][0]["port"])


def scheduler_replicas(live_cluster) -> int:
    return int((flux.get(live_cluster, "deployment", SCHEDULER, AIRFLOW_NAMESPACE) or {})["spec"]["replicas"])


@dataclass
class Suspended:
    git_port: int
    git_replicas: int
    results: dict[str, Any] = field(default_factory=dict, repr=False)
    while_suspended: list[dict[str, Any]] = field(default_factory=list, repr=False)
    tokens: dict[str, str] = field(default_factory=dict)
    after_resume: dict[str, Any] = field(default_factory=dict, repr=False)


@pytest.fixture(scope="module")
def suspended(deployed, live_cluster, waits) -> Suspended:
    record = Suspended(policy_port(live_cluster), scheduler_replicas(live_cluster))
    try:
        for command in SUSPEND:
            record.results[" ".join(command)] = flux.flux_cli(live_cluster, *command, timeout=60)
        live_cluster.kubectl("patch", "networkpolicy", POLICY, "-n", AIRFLOW_NAMESPACE, "--type=json", "-p",
                             json.dumps([{"op": "replace", "path": "/spec/ingress/0/ports/0/port", "value": 9999}]))
        live_cluster.kubectl("scale", "deployment", SCHEDULER, "-n", AIRFLOW_NAMESPACE,
                             f"--replicas={record.git_replicas + 1}")
        record.tokens = {
            "apps": flux.request_reconcile(live_cluster, flux.KUSTOMIZATION, "apps", FLUX_NAMESPACE),
            "airflow": flux.request_reconcile(live_cluster, flux.HELMRELEASE, RELEASE, AIRFLOW_NAMESPACE)}
        # A suspended object's controller still takes the request (status.lastHandledReconcileAt), and does nothing.
        flux.wait_for(live_cluster, "the controllers to take the reconcile requests of the suspended apps and airflow",
                      lambda: flux.handled(kustomization(live_cluster, "apps"), record.tokens["apps"])
                      and flux.handled(helmrelease(live_cluster), record.tokens["airflow"]), 60, waits)
        deadline = time.monotonic() + SUSPENDED_WINDOW
        while time.monotonic() < deadline:
            record.while_suspended.append({"port": policy_port(live_cluster),
                                           "replicas": scheduler_replicas(live_cluster),
                                           "apps": kustomization(live_cluster, "apps"),
                                           "airflow": helmrelease(live_cluster)})
            time.sleep(2)
        waits.record(f"{SUSPENDED_WINDOW} s watching the hand edits while apps and the HelmRelease are suspended",
                     SUSPENDED_WINDOW)
    finally:
        for command in SUSPEND:
            resume = ["resume", *command[1:]]
            started = time.monotonic()
            record.results[" ".join(resume)] = flux.flux_cli(live_cluster, *resume, "--timeout=2m", timeout=180)
            waits.record(f"`flux {' '.join(resume)}` (it waits for Ready)", time.monotonic() - started)
    flux.wait_for(live_cluster, "the hand edits undone after resume",
                  lambda: policy_port(live_cluster) == record.git_port
                  and scheduler_replicas(live_cluster) == record.git_replicas, 60, waits)
    record.after_resume = {"apps": kustomization(live_cluster, "apps"), "airflow": helmrelease(live_cluster)}
    return record


def test_the_runbook_names_these_commands():
    text = RUNBOOK.read_text()
    for command in SUSPEND:
        assert f"`flux {' '.join(command)}`" in text, command


def test_suspend_and_resume_succeed(suspended):
    for command, result in suspended.results.items():
        assert result.returncode == 0, (command, result.stderr)


def test_while_suspended_the_hand_edits_stay(suspended):
    assert suspended.while_suspended
    for sample in suspended.while_suspended:
        assert sample["port"] == 9999 and sample["replicas"] == suspended.git_replicas + 1, sample
        assert sample["apps"]["spec"].get("suspend") is True and sample["airflow"]["spec"].get("suspend") is True


def test_while_suspended_a_reconcile_request_is_taken_and_changes_nothing(suspended):
    first = suspended.while_suspended[0]
    assert flux.handled(first["apps"], suspended.tokens["apps"])
    assert flux.handled(first["airflow"], suspended.tokens["airflow"])
    assert (first["port"], first["replicas"]) == (9999, suspended.git_replicas + 1)


def test_resume_returns_gits_state(suspended, live_cluster):
    assert policy_port(live_cluster) == suspended.git_port == 8793
    assert scheduler_replicas(live_cluster) == suspended.git_replicas
    for name in ("apps", "airflow"):
        obj = suspended.after_resume[name]
        assert not obj["spec"].get("suspend") and flux.is_ready(obj), (name, flux.condition(obj))
