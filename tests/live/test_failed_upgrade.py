"""A failed upgrade on the local cluster (issue 14, section 1), and the runbook of docs/operate.md for it:

- a pushed value change that cannot become Ready (the scheduler asks for a node pool the cluster does not have, so
  its new pod stays Pending) fails once the HelmRelease's timeout has passed: helm-controller waits for readiness;
- what follows is the remediation the HelmRelease *in Git* configures, read from it: with
  `upgrade.remediation.strategy: rollback` a Helm rollback to the last good revision; with
  `upgrade.strategy.name: RetryOnFailure` no rollback, the failed revision stays and is retried after retryInterval;
- the runbook works as written: once the cause is fixed (the node pool appears), `flux reconcile helmrelease airflow
  -n airflow --force` runs an upgrade now, and `--reset` clears the failure counts;
- the failure reaches Slack's Alert (on the test's sink), and `git revert` of the change deploys what was there.

The whole story runs once, in the `failed` fixture, which records what it saw; Git ends as it began, and the node
that the fix added is removed.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml
from airflow_gitops.live import flux
from airflow_gitops.live.cluster import AIRFLOW_NAMESPACE, NODES

from tests.helpers import REPO
from tests.live.flows import (
    PUSH_TIMEOUT,
    RELEASE,
    deployed_after,
    fetch_now,
    helmrelease,
    latest,
    releases,
    since,
    wait_applied,
    wait_for_release,
)

pytestmark = pytest.mark.live

VALUES_FILE = "charts-values/airflow/common.yaml"
POOL = "high-memory"
NODE = f"live-{POOL}-1"
RUNBOOK = REPO / "docs" / "operate.md"
FORCE_COMMAND = re.compile(r"`(flux reconcile helmrelease [^`]*--force)`")
NO_ROLLBACK_WINDOW = 10
"""With a retry strategy, how long the test watches for a rollback that must not come."""


def schedule_on_missing_pool(text: str) -> str:
    if "\nscheduler:\n" not in text or "nodeSelector" in (yaml.safe_load(text).get("scheduler") or {}):
        raise AssertionError(f"{VALUES_FILE}: no top-level `scheduler:` to add a nodeSelector to, or it has one")
    return text.replace("\nscheduler:\n", f"\nscheduler:\n  # The scheduler on the {POOL} pool.\n"
                        f"  nodeSelector:\n    node-pool: {POOL}\n", 1)


def node_selector(release: dict[str, Any]) -> Any:
    return ((release.get("config") or {}).get("scheduler") or {}).get("nodeSelector")


def configured_remediation(helmrelease_obj: dict[str, Any]) -> str:
    """What helm-controller v1.6 does after a failed upgrade, from spec.upgrade: "retry" (strategy RetryOnFailure),
    "rollback" or "uninstall" (remediation with retries), or "none"."""
    upgrade = helmrelease_obj["spec"].get("upgrade") or {}
    if (upgrade.get("strategy") or {}).get("name") == "RetryOnFailure":
        return "retry"
    remediation = upgrade.get("remediation") or {}
    if remediation.get("retries", 0) != 0:
        return str(remediation.get("strategy") or "rollback")
    return "none"


def runbook_force_command() -> list[str]:
    found = FORCE_COMMAND.search(RUNBOOK.read_text())
    assert found, f"{RUNBOOK.relative_to(REPO)} no longer names `flux reconcile helmrelease ... --force`"
    return shlex.split(found.group(1))


def failure_counts(obj: dict[str, Any]) -> dict[str, int]:
    status = obj.get("status") or {}
    return {key: int(status.get(key) or 0) for key in ("failures", "installFailures", "upgradeFailures")}


@dataclass
class Failed:
    remediation: str
    before: int
    before_release: dict[str, Any] = field(repr=False)
    failed: int
    failed_release: dict[str, Any] = field(repr=False)
    failed_helmrelease: dict[str, Any] = field(repr=False)
    failed_after: float
    scheduling_events: list[dict[str, Any]] = field(repr=False)
    after_remediation: dict[int, dict[str, Any]] = field(repr=False)
    after_remediation_helmrelease: dict[str, Any] = field(repr=False)
    force: dict[str, Any] = field(default_factory=dict, repr=False)
    reset: dict[str, Any] = field(default_factory=dict, repr=False)
    reverted: tuple[int, dict[str, Any]] = (0, {})
    started_at: float = 0.0


def add_node(live_cluster) -> None:
    """The fix: a node of the missing pool appears (on EKS, a NodePool that Karpenter provisions from)."""
    general = next(n for n in NODES if not n["labels"])
    live_cluster.apply([{
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": NODE, "annotations": {"kwok.x-k8s.io/node": "fake"},
                     "labels": {"kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux",
                                "kubernetes.io/arch": "amd64", "type": "kwok", "node-pool": POOL}},
        "status": {"allocatable": {"cpu": general["cpu"], "memory": general["memory"], "pods": "110"},
                   "capacity": {"cpu": general["cpu"], "memory": general["memory"], "pods": "110"}},
    }])


@pytest.fixture(scope="module")
def failed(deployed, live_cluster, work_clone, waits):
    work_clone.pull()
    before, before_release = latest(live_cluster)
    remediation = configured_remediation(helmrelease(live_cluster))
    work_clone.edit(VALUES_FILE, schedule_on_missing_pool)
    commit = work_clone.commit(f"Airflow scheduler on the {POOL} node pool")
    started_at, started = time.time(), time.monotonic()
    work_clone.push()
    fetch_now(live_cluster)
    timeout = PUSH_TIMEOUT + flux_duration(helmrelease(live_cluster)["spec"].get("timeout", "5m"))
    failed_version, failed_release = wait_for_release(
        live_cluster, waits, f"push of a scheduler nodeSelector for pool {POOL}: a Helm revision after v{before} "
        "that fails (HelmRelease timeout)", lambda v, r: v > before and r["info"]["status"] == "failed"
        and node_selector(r) == {"node-pool": POOL}, timeout=timeout, ready=False)
    record = Failed(remediation, before, before_release, failed_version, failed_release, helmrelease(live_cluster),
                    since(started), scheduling_events(live_cluster), {}, {}, started_at=started_at)

    if remediation == "rollback":
        flux.wait_for(live_cluster, f"helm-controller's remediation: a rollback to v{before}, on the HelmRelease too",
                      lambda: any(r["info"].get("description") == f"Rollback to {before}"
                                  for v, r in releases(live_cluster).items() if v > failed_version)
                      and (flux.condition(helmrelease(live_cluster), "Remediated") or {}).get("status") == "True",
                      120, waits)
    else:
        time.sleep(NO_ROLLBACK_WINDOW)
        waits.record(f"{NO_ROLLBACK_WINDOW} s watching for a rollback the remediation ({remediation}) must not make",
                     NO_ROLLBACK_WINDOW)
    record.after_remediation = releases(live_cluster)
    record.after_remediation_helmrelease = helmrelease(live_cluster)

    # The runbook: fix the cause, then `--force`; `--reset` clears the counts.
    add_node(live_cluster)
    try:
        command = runbook_force_command()
        version_before_force = latest(live_cluster)[0]
        started = time.monotonic()
        result = flux.flux_cli(live_cluster, *command[1:], "--timeout=3m")
        waits.record(f"`{' '.join(command)}` after the {POOL} node appeared", since(started))
        after = helmrelease(live_cluster)
        record.force = {"command": command, "result": result, "helmrelease": after,
                        "version_before": version_before_force, "releases": releases(live_cluster)}
        reset_command = [word if word != "--force" else "--reset" for word in command]
        counts_before = failure_counts(after)
        started = time.monotonic()
        result = flux.flux_cli(live_cluster, *reset_command[1:], "--timeout=2m")
        waits.record(f"`{' '.join(reset_command)}`", since(started))
        record.reset = {"command": reset_command, "result": result, "counts_before": counts_before,
                        "helmrelease": helmrelease(live_cluster)}

        # Git as it was: revert the change.
        revert = work_clone.revert(commit)
        work_clone.push()
        fetch_now(live_cluster)
        record.reverted = wait_for_release(
            live_cluster, waits, f"git revert of the {POOL} nodeSelector: a deployed revision without it, Ready",
            lambda v, r: deployed_after(latest_deployed(record))(v, r) and node_selector(r) is None)
        wait_applied(live_cluster, waits, "apps", revert)
    finally:
        live_cluster.kubectl("delete", "node", NODE, "--ignore-not-found", "--wait=false")
    return record


def latest_deployed(record: Failed) -> int:
    return max(record.force.get("releases") or {0: None})


def flux_duration(text: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([hms])", text))


def scheduling_events(live_cluster) -> list[dict[str, Any]]:
    events = json.loads(live_cluster.kubectl("get", "events", "-n", AIRFLOW_NAMESPACE,
                                             "--field-selector=reason=FailedScheduling", "-o", "json").stdout)
    return [e for e in events["items"] if e["involvedObject"]["name"].startswith(f"{RELEASE}-scheduler-")]


def test_an_upgrade_that_cannot_become_ready_fails_after_the_helmrelease_timeout(failed):
    assert failed.failed == failed.before + 1
    assert failed.failed_release["info"]["status"] == "failed"
    ready = flux.condition(failed.failed_helmrelease) or {}
    assert ready.get("status") == "False" and ready.get("reason") == "UpgradeFailed", ready
    # The cause, as the scheduler saw it: no node of the pool.
    assert failed.scheduling_events, "no FailedScheduling event for the scheduler's new pod"
    assert "node affinity/selector" in failed.scheduling_events[0]["message"]


def test_what_follows_is_the_remediation_the_helmrelease_in_git_configures(failed):
    after = failed.after_remediation
    rollbacks = {v: r for v, r in after.items() if v > failed.failed and r["info"]["description"].startswith("Rollback")}
    if failed.remediation == "rollback":
        assert rollbacks, f"no rollback after the failed v{failed.failed}: {sorted(after)}"
        version, rollback = min(rollbacks.items())
        assert rollback["info"]["description"] == f"Rollback to {failed.before}"
        assert flux.manifest_objects(rollback) == flux.manifest_objects(failed.before_release)
        remediated = flux.condition(failed.after_remediation_helmrelease, "Remediated") or {}
        assert remediated.get("reason") == "RollbackSucceeded", remediated
    else:
        assert not rollbacks, f"remediation {failed.remediation}, yet helm-controller rolled back: {rollbacks}"
        assert max(after) == failed.failed and after[failed.failed]["info"]["status"] == "failed"
        assert (flux.condition(failed.after_remediation_helmrelease) or {}).get("status") == "False"


def test_the_runbook_force_runs_an_upgrade_now_once_the_cause_is_fixed(failed):
    result = failed.force["result"]
    assert result.returncode == 0, result.stderr
    obj = failed.force["helmrelease"]
    annotations = obj["metadata"].get("annotations") or {}
    assert obj["status"].get("lastHandledForceAt") == annotations.get("reconcile.fluxcd.io/forceAt") is not None
    version = max(failed.force["releases"])
    assert version > failed.force["version_before"], "no upgrade ran"
    release = failed.force["releases"][version]
    assert release["info"]["status"] == "deployed" and node_selector(release) == {"node-pool": POOL}
    assert flux.is_ready(obj), flux.condition(obj)


def test_the_runbook_reset_clears_the_failure_counts(failed):
    result = failed.reset["result"]
    assert result.returncode == 0, result.stderr
    obj = failed.reset["helmrelease"]
    annotations = obj["metadata"].get("annotations") or {}
    assert obj["status"].get("lastHandledResetAt") == annotations.get("reconcile.fluxcd.io/resetAt") is not None
    assert failure_counts(obj) == {"failures": 0, "installFailures": 0, "upgradeFailures": 0}
    if failed.remediation != "retry":
        # A remediation strategy keeps the counts after a later success (helm-controller clears them on success
        # only with a retry strategy): there was something to clear.
        assert failed.reset["counts_before"]["upgradeFailures"] >= 1, failed.reset["counts_before"]


def test_git_revert_of_the_failed_change_deploys_what_was_there(failed):
    version, release = failed.reverted
    assert release["config"] == failed.before_release["config"]
    assert flux.manifest_objects(release) == flux.manifest_objects(failed.before_release)


def test_the_failure_reaches_slacks_alert(failed, notification_sink):
    """slack-reconcile-errors (infrastructure/configs/eks/flux-alerts.yaml), its Provider redirected to the sink."""
    errors = [d for d in notification_sink.deliveries("slack", since=failed.started_at)
              if d.involved == f"HelmRelease {AIRFLOW_NAMESPACE}/{RELEASE}" and d.body.get("severity") == "error"]
    assert any(d.body.get("reason") == "UpgradeFailed"
               and d.body.get("message", "").startswith(f"Helm upgrade failed for release {AIRFLOW_NAMESPACE}/{RELEASE}")
               for d in errors), [str(d) for d in notification_sink.deliveries("slack", since=failed.started_at)]


def test_the_release_alert_announces_a_rollback_exactly_when_there_was_one(failed, notification_sink):
    infos = [d for d in notification_sink.deliveries("slack", since=failed.started_at)
             if d.involved == f"HelmRelease {AIRFLOW_NAMESPACE}/{RELEASE}" and d.body.get("severity") == "info"]
    announced = any(d.body.get("reason") == "RollbackSucceeded" for d in infos)
    assert announced == (failed.remediation == "rollback"), (failed.remediation, [str(d) for d in infos])
