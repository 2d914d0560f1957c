"""notification-controller on the local cluster (issue 14, section 4): EKS's webhook Receiver and Alerts, the very
objects of infrastructure/configs/eks/flux-receiver.yaml and flux-alerts.yaml, applied by the overlay
scripts/live/notification.yaml (their Providers redirected to the test's sink; the Secret the Receiver reads, which
External Secrets makes on EKS, made by the test).

- A push signed as GitHub signs it (HMAC-SHA256 of the body with the Receiver's token) makes source-controller fetch
  at once: the Receiver annotates the GitRepository, which fetches the pushed commit within seconds instead of at
  its next poll (1 m).
- A wrong signature is refused (400), and nothing is annotated.
- The GitHub commit-status Alert delivers each Kustomization's event for the pushed commit.

The upgrade and failure events of the HelmRelease are asserted where they happen: tests/live/test_push_revert.py
and tests/live/test_failed_upgrade.py. The pushed commit is empty (no file changes), so Git's content stays as it was.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from airflow_gitops.live import flux, notification
from airflow_gitops.live.cluster import FLUX_NAMESPACE
from airflow_gitops.live.git import flux_revision

from tests.live.flows import since

pytestmark = pytest.mark.live

RECEIVER = "github-push"
RECEIVER_KIND = "receivers.notification.toolkit.fluxcd.io"
AT_ONCE = 15
"""The webhook's promise, against the GitRepository's poll interval (1 m)."""
REFUSAL_WINDOW = 3
"""How long the test watches for an annotation a refused request must not make."""


def source(live_cluster) -> dict:
    return flux.get(live_cluster, flux.GITREPOSITORY, "flux-system", FLUX_NAMESPACE) or {}


def requested_at(live_cluster) -> str | None:
    return (source(live_cluster)["metadata"].get("annotations") or {}).get(flux.REQUESTED_AT)


@pytest.fixture(scope="module")
def receiver_url(deployed, live_cluster, waits) -> str:
    flux.wait_ready(live_cluster, RECEIVER_KIND, RECEIVER, FLUX_NAMESPACE, 120, waits=waits)
    path = flux.get(live_cluster, RECEIVER_KIND, RECEIVER, FLUX_NAMESPACE)["status"]["webhookPath"]
    return live_cluster.receiver_url + path


@dataclass
class Pushed:
    commit: str
    status: int
    seconds: float
    requested_at: str | None
    source: dict
    sent_at: float


@pytest.fixture(scope="module")
def pushed(receiver_url, live_cluster, work_clone, webhook_token, waits) -> Pushed:
    work_clone.pull()
    before = work_clone.head()
    commit = work_clone.commit("Empty commit: a push the GitHub webhook announces", allow_empty=True)
    work_clone.push()
    sent_at, started = time.time(), time.monotonic()
    status = notification.github_push(receiver_url, webhook_token, notification.push_payload(
        live_cluster.git_url, "main", before, commit))
    flux.wait_for(live_cluster, "the GitRepository to fetch the commit the signed webhook announced",
                  lambda: (source(live_cluster).get("status") or {}).get("artifact", {}).get("revision")
                  == flux_revision(commit), 60, waits)
    return Pushed(commit, status, since(started), requested_at(live_cluster), source(live_cluster), sent_at)


def test_a_wrong_signature_is_refused(receiver_url, live_cluster, webhook_token):
    before = requested_at(live_cluster)
    payload = notification.push_payload(live_cluster.git_url, "main", "0" * 40, "1" * 40)
    forged = notification.github_signature("not-the-token", b"{}")
    assert notification.github_push(receiver_url, webhook_token, payload, signature=forged) == 400
    # Signed with another secret over this very body: refused too.
    wrong_key = notification.github_push(receiver_url, "not-the-token", payload)
    assert wrong_key == 400
    time.sleep(REFUSAL_WINDOW)
    assert requested_at(live_cluster) == before, "a refused request annotated the GitRepository"


def test_an_event_the_receiver_does_not_list_is_refused(receiver_url, live_cluster, webhook_token):
    payload = {"action": "opened", "number": 1}
    assert notification.github_push(receiver_url, webhook_token, payload, event="pull_request") == 400


def test_a_signed_push_makes_flux_fetch_at_once(pushed):
    assert pushed.status == 200
    assert pushed.seconds < AT_ONCE, f"{pushed.seconds:.1f} s"
    # The fetch answered the Receiver's request: it annotated the GitRepository, which handled that very request.
    assert pushed.requested_at is not None
    assert pushed.source["status"].get("lastHandledReconcileAt") == pushed.requested_at


def test_the_commit_status_alert_delivers_each_kustomizations_event(pushed, live_cluster, notification_sink, waits):
    """github-commit-status (flux-alerts.yaml): info events of every Kustomization, each with the commit."""
    revision = flux_revision(pushed.commit)

    def delivered() -> set[str]:
        return {d.involved for d in notification_sink.deliveries("github-commit-status", since=pushed.sent_at)
                if (d.body.get("metadata") or {}).get("revision") == revision}

    wanted = {f"Kustomization {FLUX_NAMESPACE}/{name}" for name in ("flux-system", "infra-controllers",
                                                                    "infra-configs", "apps")}
    flux.wait_for(live_cluster, "the sink to receive every Kustomization's event for the webhook's commit",
                  lambda: wanted <= delivered(), 120, waits, describe=lambda: str(sorted(delivered())))
    for delivery in notification_sink.deliveries("github-commit-status", since=pushed.sent_at):
        assert delivery.body["involvedObject"]["kind"] == "Kustomization", str(delivery)
