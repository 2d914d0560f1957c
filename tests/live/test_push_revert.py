"""Deploy by push and roll back by revert, on the local cluster (issue 14, sections 1 and 2):

- a commit that changes a scheduler setting in charts-values/airflow/common.yaml becomes a new Helm revision that
  carries it;
- `git revert` of that commit becomes a further revision (a Helm upgrade, never `helm rollback`) whose manifest
  equals the one before the commit, object by object;
- the chart's finished Jobs are deleted by kube-controller-manager's TTL controller, and helm-controller, whose drift
  detection is on, leaves them deleted over two reconciles (the `helm.toolkit.fluxcd.io/driftDetection: disabled`
  annotation of charts-values/airflow/common.yaml);
- the release Alert delivers the upgrade (infrastructure/configs/eks/flux-alerts.yaml, on the test's sink).

The pushes happen once, in the `upgraded` and `reverted` fixtures, which record what they saw; Git ends as it began.
"""

from __future__ import annotations

import calendar
import json
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from airflow_gitops.live import flux
from airflow_gitops.live.cluster import AIRFLOW_NAMESPACE, FLUX_NAMESPACE

from tests.live.flows import (
    RELEASE,
    Watch,
    deployed_after,
    fetch_now,
    helmrelease,
    latest,
    since,
    wait_applied,
    wait_for_release,
)

pytestmark = pytest.mark.live

VALUES_FILE = "charts-values/airflow/common.yaml"
SECTION, KEY, VALUE = "scheduler", "max_dagruns_per_loop_to_schedule", 30
CHART_JOBS = ("airflow-run-airflow-migrations", "airflow-create-user")
DELIVERY_TIMEOUT = 30
"""notification-controller forwards an event within a second or two; this bounds a lost one."""


def add_scheduler_setting(text: str) -> str:
    if "\nconfig:\n" not in text or f"\n    {KEY}:" in text:
        raise AssertionError(f"{VALUES_FILE}: no top-level `config:` to add [{SECTION}] {KEY} to, or it is there")
    return text.replace("\nconfig:\n", f"\nconfig:\n  {SECTION}:\n    # More DAG runs looked at per scheduler loop "
                        f"(Airflow's default: 20).\n    {KEY}: {VALUE}\n", 1)


def setting(release: dict[str, Any]) -> Any:
    return (((release.get("config") or {}).get("config") or {}).get(SECTION) or {}).get(KEY)


def airflow_cfg(release: dict[str, Any]) -> str:
    for (_, kind, _, name), obj in flux.manifest_objects(release).items():
        if kind == "ConfigMap" and name == f"{RELEASE}-config":
            return str((obj.get("data") or {}).get("airflow.cfg", ""))
    return ""


def chart_jobs(live_cluster) -> dict[str, dict[str, Any]]:
    found = json.loads(live_cluster.kubectl("get", "jobs", "-n", AIRFLOW_NAMESPACE, "-o", "json").stdout)["items"]
    return {j["metadata"]["name"]: j for j in found if j["metadata"]["name"] in CHART_JOBS}


@dataclass
class Push:
    commit: str
    version: int
    release: dict[str, Any] = field(repr=False)
    seconds: float
    helmrelease: dict[str, Any] = field(repr=False)
    started_at: float = 0.0
    """time.time() of the push."""


@dataclass
class Before:
    version: int
    release: dict[str, Any] = field(repr=False)


@pytest.fixture(scope="module")
def before(deployed, live_cluster) -> Before:
    version, release = latest(live_cluster)
    return Before(version, release)


@pytest.fixture(scope="module")
def upgraded(before, job_watch, live_cluster, work_clone, waits) -> Push:
    work_clone.pull()
    work_clone.edit(VALUES_FILE, add_scheduler_setting)
    commit = work_clone.commit(f"Airflow scheduler: {KEY} {VALUE}")
    started_at, started = time.time(), time.monotonic()
    work_clone.push()
    fetch_now(live_cluster)
    version, release = wait_for_release(
        live_cluster, waits, f"push of [{SECTION}] {KEY}={VALUE}: a Helm revision after v{before.version} with it, "
        "deployed, HelmRelease Ready", lambda v, r: deployed_after(before.version)(v, r) and setting(r) == VALUE)
    return Push(commit, version, release, since(started), helmrelease(live_cluster), started_at)


@pytest.fixture(scope="module")
def reverted(upgraded, live_cluster, work_clone, waits) -> Push:
    commit = work_clone.revert(upgraded.commit)
    started_at, started = time.time(), time.monotonic()
    work_clone.push()
    fetch_now(live_cluster)
    version, release = wait_for_release(
        live_cluster, waits, f"git revert of the push: a Helm revision after v{upgraded.version} without "
        f"[{SECTION}] {KEY}, deployed, HelmRelease Ready",
        lambda v, r: deployed_after(upgraded.version)(v, r) and setting(r) is None)
    seconds = since(started)
    wait_applied(live_cluster, waits, "apps", commit)
    return Push(commit, version, release, seconds, helmrelease(live_cluster), started_at)


def test_a_pushed_value_becomes_a_new_helm_revision_that_carries_it(before, upgraded):
    assert upgraded.version == before.version + 1
    assert upgraded.release["info"]["status"] == "deployed"
    assert setting(upgraded.release) == VALUE
    assert f"{KEY} = {VALUE}" in airflow_cfg(upgraded.release)
    assert f"{KEY} = {VALUE}" not in airflow_cfg(before.release)


def test_the_helmrelease_reports_the_upgrade_of_the_pushed_commit(upgraded, live_cluster):
    ready = flux.condition(upgraded.helmrelease) or {}
    assert ready.get("reason") == "UpgradeSucceeded", ready
    assert f"{RELEASE}.v{upgraded.version}" in ready.get("message", "")
    assert upgraded.helmrelease["status"]["history"][0]["version"] == upgraded.version


def test_git_revert_becomes_a_further_revision_not_a_helm_rollback(upgraded, reverted):
    assert reverted.version == upgraded.version + 1
    assert reverted.release["info"]["status"] == "deployed"
    # helm-controller upgrades to what Git now says; a `helm rollback` would say "Rollback to N".
    assert reverted.release["info"]["description"] == "Upgrade complete"
    assert (flux.condition(reverted.helmrelease) or {}).get("reason") == "UpgradeSucceeded"


def test_the_reverted_manifest_equals_the_one_before_the_commit_object_by_object(before, reverted):
    old, new = flux.manifest_objects(before.release), flux.manifest_objects(reverted.release)
    assert sorted(new) == sorted(old), "objects added or removed"
    differing = [" ".join(key) for key in old if old[key] != new[key]]
    assert not differing, f"objects that differ from v{before.version}: {differing}"


def test_the_reverted_values_equal_the_ones_before_the_commit(before, reverted):
    assert reverted.release["config"] == before.release["config"]
    assert reverted.release["chart"]["metadata"]["version"] == before.release["chart"]["metadata"]["version"]


def test_the_release_alert_delivers_the_upgrade(upgraded, notification_sink, live_cluster, waits):
    """infrastructure/configs/eks/flux-alerts.yaml slack-airflow-releases, its Provider redirected to the sink."""
    def delivered():
        return [d for d in notification_sink.deliveries("slack", since=upgraded.started_at)
                if d.involved == f"HelmRelease {AIRFLOW_NAMESPACE}/{RELEASE}"
                and d.body.get("reason") == "UpgradeSucceeded" and f".v{upgraded.version} " in d.body.get("message", "")]

    flux.wait_for(live_cluster, f"the sink to receive the HelmRelease's upgrade event of v{upgraded.version}",
                  lambda: bool(delivered()), DELIVERY_TIMEOUT, waits,
                  describe=lambda: "\n".join(map(str, notification_sink.deliveries())))
    assert delivered()[0].body["severity"] == "info"


# --- the chart's Jobs: deleted by their TTL, and left deleted by helm-controller ---------------------------------


@pytest.fixture(scope="module")
def job_watch(deployed, live_cluster):
    """Every Job event in the airflow namespace while this module runs: a finished chart Job lives only 10 s here
    (scripts/live/tests.yaml), often less than the upgrade that made it."""
    watch = Watch(live_cluster, "jobs", AIRFLOW_NAMESPACE)
    yield watch
    watch.stop()


@dataclass
class JobsGone:
    created: dict[str, dict[str, Any]] = field(repr=False)
    """The chart Jobs the revert's upgrade created, as last seen before they were deleted, by name."""
    deleted_at: dict[str, float]
    """When each was deleted (time.time())."""
    reconciles: list[dict[str, Any]] = field(default_factory=list, repr=False)
    """The chart Jobs and the HelmRelease after each requested reconcile, once the TTL had deleted them."""


@pytest.fixture(scope="module")
def jobs_gone(job_watch, reverted, live_cluster, waits) -> JobsGone:
    def revert_jobs() -> dict[str, list]:
        return {uid: events for uid, events in job_watch.seen(since=reverted.started_at).items()
                if events[0][1] == "ADDED" and events[0][2]["metadata"]["name"] in CHART_JOBS
                and events[0][2]["metadata"]["creationTimestamp"] >= _rfc3339(reverted.started_at)}

    flux.wait_for(live_cluster, "kube-controller-manager's TTL controller to delete the chart Jobs the revert made",
                  lambda: len(revert_jobs()) == len(CHART_JOBS)
                  and all(events[-1][1] == "DELETED" for events in revert_jobs().values()), 90, waits,
                  describe=lambda: str({uid: [e[1] for e in ev] for uid, ev in revert_jobs().items()}))
    created, deleted_at = {}, {}
    for events in revert_jobs().values():
        last = [obj for _, kind, obj in events if kind != "DELETED"][-1]
        created[last["metadata"]["name"]] = last
        deleted_at[last["metadata"]["name"]] = events[-1][0]
    record = JobsGone(created, deleted_at)
    for number in (1, 2):
        token = flux.request_reconcile(live_cluster, flux.HELMRELEASE, RELEASE, AIRFLOW_NAMESPACE)
        flux.wait_for(live_cluster, f"helm-controller to handle reconcile request {number} of the HelmRelease",
                      lambda t=token: flux.handled(helmrelease(live_cluster), t), 60, waits)
        record.reconciles.append({"jobs": chart_jobs(live_cluster), "helmrelease": helmrelease(live_cluster),
                                  "version": latest(live_cluster)[0]})
    return record


def _rfc3339(at: float) -> str:
    # Kubernetes timestamps have whole seconds: compare from the second the push began.
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(at)))


def test_the_chart_jobs_finished_and_were_deleted_by_their_ttl(jobs_gone):
    for name, job in jobs_gone.created.items():
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        assert ttl is not None, name
        assert job["metadata"]["annotations"].get("helm.toolkit.fluxcd.io/driftDetection") == "disabled", name
        assert any(c["type"] == "Complete" and c["status"] == "True" for c in job["status"].get("conditions", [])), name
        # Deleted by the TTL controller: not before completionTime + ttl (whole seconds), and nothing else deletes
        # Jobs on this cluster.
        completed = calendar.timegm(time.strptime(job["status"]["completionTime"], "%Y-%m-%dT%H:%M:%SZ"))
        assert jobs_gone.deleted_at[name] >= completed + ttl - 1, (name, job["status"], jobs_gone.deleted_at[name])


def test_helm_controller_does_not_recreate_the_deleted_jobs_over_two_reconciles(jobs_gone, reverted):
    assert len(jobs_gone.reconciles) == 2
    for number, seen in enumerate(jobs_gone.reconciles, 1):
        assert not seen["jobs"], f"after reconcile {number}, helm-controller created again: {sorted(seen['jobs'])}"
        assert seen["version"] == reverted.version, "a reconcile made a new Helm revision"
        drifted = flux.condition(seen["helmrelease"], "Drifted") or {}
        assert drifted.get("status") != "True", drifted


def test_apps_applied_the_revert_commit(reverted, live_cluster):
    applied = (flux.get(live_cluster, flux.KUSTOMIZATION, "apps", FLUX_NAMESPACE) or {}).get("status", {})
    assert applied.get("lastAppliedRevision") == f"main@sha1:{reverted.commit}"
