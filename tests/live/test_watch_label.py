"""A change that arrives only through a post-build variable, on the local cluster (issue 14, section 2).

On kind, `make kind-up` writes the checkout's Git URL and branch into the ConfigMap flux-system/cluster-vars-local,
which every Kustomization of clusters/kind reads after cluster-vars (`postBuild.substituteFrom`), and labels it
`reconcile.fluxcd.io/watch: Enabled`, as clusters/*/cluster-vars.yaml are labelled; the local cluster's bootstrap
does the same. Such a change alters no file in Git and no HelmRelease spec: kustomize hashes the values ConfigMap
`airflow-values-common` before the variables are substituted, so its name stays and only its content changes.

- With the label, the change is a new Helm revision within seconds: kustomize-controller re-runs the Kustomizations
  that read the labelled ConfigMap, `apps` rewrites airflow-values-common in place, and helm-controller, watching
  that labelled ConfigMap (apps/base/airflow/kustomization.yaml), upgrades.
- Without the label (the same cluster, the label taken off cluster-vars-local), nothing moves: no Kustomization
  re-runs and no revision comes, until the interval's reconcile, played here by `flux reconcile kustomization apps`
  (the interval is 10 m); then the change arrives.

No second cluster is needed: the label is on an object of the cluster, not of Git, and is put back afterwards. The
value changed is git_url, written another way for the same Git server (localhost for 127.0.0.1), so nothing else
changes; the second half changes it back, so the module leaves the variables as it found them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from airflow_gitops.live import flux
from airflow_gitops.live.cluster import AIRFLOW_NAMESPACE, FLUX_NAMESPACE

from tests.live.flows import deployed_after, kustomization, latest, releases, wait_for_release

pytestmark = pytest.mark.live

LOCAL_VARS = "cluster-vars-local"
WATCH = "reconcile.fluxcd.io/watch"
WITHIN_SECONDS = 60
"""The label's promise, against the Kustomization interval (10 m) and the HelmRelease interval (30 m)."""
LABEL_SETTLE = 5
UNWATCHED_WINDOW = (20, 1.5, 90)
"""How long the test watches, without the label, for a revision that must not come: at least 20 s, and half again
as long as the labelled change took to start an upgrade (10 to 35 s here, with the dependsOn chain re-run), at most
90 s."""


def git_repo(release: dict[str, Any]) -> str | None:
    return ((((release.get("config") or {}).get("dags") or {}).get("gitSync")) or {}).get("repo")


def local_vars(live_cluster) -> dict[str, Any]:
    return flux.get(live_cluster, "configmap", LOCAL_VARS, FLUX_NAMESPACE) or {}


def set_git_url(live_cluster, url: str) -> None:
    """What `make kind-up` does on a re-run (scripts/kind-up.sh point_flux_at_branch), labels kept as they are."""
    current = local_vars(live_cluster)
    live_cluster.kubectl("patch", "configmap", LOCAL_VARS, "-n", FLUX_NAMESPACE, "--type=merge",
                         "-p", json.dumps({"data": {**current["data"], "git_url": url}}))


def values_common(live_cluster) -> str:
    """values.yaml of airflow-values-common as apps last applied it (substituted)."""
    found = json.loads(live_cluster.kubectl("get", "configmaps", "-n", AIRFLOW_NAMESPACE, "-o", "json").stdout)
    return next(str(c["data"].get("values.yaml")) for c in found["items"]
                if c["metadata"]["name"].startswith("airflow-values-common"))


@dataclass
class Labelled:
    before: int
    original_url: str
    url: str
    version: int
    seconds: float


@dataclass
class Unlabelled:
    version_before: int
    seen: list[dict[str, Any]] = field(repr=False)
    """Samples while the test watched: the newest revision and apps' status."""
    version: int = 0
    release: dict[str, Any] = field(default_factory=dict, repr=False)
    window: float = 0.0


@pytest.fixture(scope="module")
def labelled(deployed, live_cluster, waits) -> Labelled:
    before, release = latest(live_cluster)
    original = local_vars(live_cluster)["data"]["git_url"]
    url = original.replace("://127.0.0.1:", "://localhost:")
    assert url != original and git_repo(release) == original
    assert local_vars(live_cluster)["metadata"]["labels"].get(WATCH) == "Enabled"
    started = time.monotonic()
    set_git_url(live_cluster, url)
    # The label's part ends when helm-controller starts the upgrade (its release Secret appears); how long the
    # upgrade itself takes is the chart's and the machine's.
    version, _ = wait_for_release(
        live_cluster, waits, f"git_url changed in {LOCAL_VARS} (labelled): helm-controller starts a Helm revision "
        f"after v{before} with dags.gitSync.repo the new URL", lambda v, r: v > before and git_repo(r) == url,
        timeout=WITHIN_SECONDS + 60, ready=False)
    seconds = time.monotonic() - started
    wait_for_release(live_cluster, waits, f"Helm revision v{version} deployed, HelmRelease Ready",
                     lambda v, r: v == version and deployed_after(before)(v, r))
    return Labelled(before, original, url, version, seconds)


@pytest.fixture(scope="module")
def unlabelled(labelled, live_cluster, waits) -> Unlabelled:
    record = Unlabelled(latest(live_cluster)[0], [])
    try:
        live_cluster.kubectl("label", "configmap", LOCAL_VARS, "-n", FLUX_NAMESPACE, f"{WATCH}-")
        # Taking the label off is itself an event for the controllers' label-selected watches; let it pass, so
        # that what follows is a change to a ConfigMap that has no label.
        time.sleep(LABEL_SETTLE)
        waits.record(f"{LABEL_SETTLE} s for the label's removal to pass", LABEL_SETTLE)
        set_git_url(live_cluster, labelled.original_url)
        least, factor, most = UNWATCHED_WINDOW
        record.window = min(most, max(least, factor * labelled.seconds))
        deadline = time.monotonic() + record.window
        while time.monotonic() < deadline:
            record.seen.append({"version": latest(live_cluster)[0], "values": values_common(live_cluster)})
            time.sleep(2)
        waits.record(f"{record.window:.0f} s watching for a revision that must not come (git_url changed back in "
                     f"{LOCAL_VARS} without the label)", record.window)
        # The interval's reconcile, now rather than in 10 m.
        token = flux.request_reconcile(live_cluster, flux.KUSTOMIZATION, "apps", FLUX_NAMESPACE)
        record.version, record.release = wait_for_release(
            live_cluster, waits, "the reconcile of apps that its interval makes: a Helm revision with the old URL",
            lambda v, r: deployed_after(record.version_before)(v, r) and git_repo(r) == labelled.original_url)
        # apps takes the request once its health check (the HelmRelease Ready) has passed.
        flux.wait_for(live_cluster, "apps to report the reconcile request handled",
                      lambda: flux.handled(kustomization(live_cluster, "apps"), token), 60, waits)
    finally:
        live_cluster.kubectl("label", "--overwrite", "configmap", LOCAL_VARS, "-n", FLUX_NAMESPACE, f"{WATCH}=Enabled")
    return record


def test_a_variable_change_starts_a_helm_upgrade_within_seconds_with_the_label(labelled):
    assert labelled.version == labelled.before + 1
    assert labelled.seconds < WITHIN_SECONDS, f"{labelled.seconds:.0f} s"


def test_without_the_label_no_revision_comes_until_the_interval(labelled, unlabelled):
    assert labelled.seconds < unlabelled.window, "the window without the label is shorter than the change took with it"
    assert unlabelled.version_before == labelled.version
    assert unlabelled.seen and all(s["version"] == labelled.version for s in unlabelled.seen), \
        [s["version"] for s in unlabelled.seen]


def test_without_the_label_apps_does_not_rerun(labelled, unlabelled):
    # apps would rewrite airflow-values-common with the URL changed back: it still holds the one before.
    for sample in unlabelled.seen:
        assert f"repo: {labelled.url}\n" in sample["values"], sample["values"]


def test_the_interval_brings_the_change(labelled, unlabelled, live_cluster):
    assert unlabelled.version == labelled.version + 1
    assert git_repo(unlabelled.release) == labelled.original_url
    assert sorted(releases(live_cluster))[-1] == unlabelled.version


def test_the_label_is_back(unlabelled, live_cluster):
    assert local_vars(live_cluster)["metadata"]["labels"].get(WATCH) == "Enabled"
