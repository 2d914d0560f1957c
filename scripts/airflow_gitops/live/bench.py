"""Push-to-live latencies measured on the local cluster (`make bench`; docs/live-cluster.md).

A cluster of its own is started and bootstrapped as `make live-up` does, with the clusters' own intervals (the
GitRepository polls every minute, as `flux bootstrap` and `make kind-up` set it; no test overlay), plus the
notification overlay for the webhook Receiver. Each run commits a chart value change to charts-values/airflow/
common.yaml, pushes it and watches the cluster's objects until the HelmRelease is Ready at the new Helm revision;
then `git revert`s it and watches the same way until the revision with the old values is Ready. Runs go once with
Flux's poll (nothing else happens after the push) and once with the GitHub webhook (a signed push event to the
Receiver right after the push).

Each figure is split into what it consists of, from what the watch saw first:
- source: push -> the GitRepository's artifact is the pushed commit (the poll's wait, or the webhook, and the fetch);
- build and apply: -> the HelmRelease's spec changed (kustomize-controller built and applied flux-system,
  infra-controllers, infra-configs and apps in dependsOn order; the values ConfigMaps' names follow their hash);
- Helm upgrade: -> the new revision's release Secret exists (helm-controller rendered the chart, started the upgrade);
- readiness: -> that revision is deployed (the objects applied, and Helm waited for Deployments and Jobs);
- Ready: -> the HelmRelease reports Ready for it.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow_gitops.live import flux, notification, operators
from airflow_gitops.live.cluster import AIRFLOW_NAMESPACE, FLUX_NAMESPACE, Cluster, running
from airflow_gitops.live.git import WorkClone, flux_revision

VALUES_FILE = "charts-values/airflow/common.yaml"
STAGES = ("source", "build and apply", "Helm upgrade", "readiness", "Ready")
RELEASE = "airflow"
TIMEOUT = 600
"""Bounds one push: the poll (1 m) and a slow upgrade on a loaded machine fit well inside."""


@dataclasses.dataclass
class Run:
    path: str
    total: float
    stages: dict[str, float]


def _change(number: int) -> Callable[[str], str]:
    def edit(text: str) -> str:
        if "\nconfig:\n" not in text:
            raise RuntimeError(f"{VALUES_FILE}: no top-level `config:` to add a scheduler setting to")
        return text.replace("\nconfig:\n", "\nconfig:\n  scheduler:\n    # make bench\n"
                            f"    max_dagruns_per_loop_to_schedule: {20 + number}\n", 1)
    return edit


def _snapshot(cluster: Cluster) -> dict[str, Any]:
    """One read of what the stages look at: the GitRepository, the HelmRelease, the release Secrets' labels."""
    objects = json.loads(cluster.kubectl("get", f"{flux.GITREPOSITORY},{flux.HELMRELEASE}", "-A", "-o",
                                         "json").stdout)["items"]
    source = next(o for o in objects if o["kind"] == "GitRepository" and o["metadata"]["name"] == "flux-system")
    release = next(o for o in objects if o["kind"] == "HelmRelease" and o["metadata"]["name"] == RELEASE)
    secrets = json.loads(cluster.kubectl("get", "secrets", "-n", AIRFLOW_NAMESPACE, "-l",
                                         f"owner=helm,name={RELEASE}", "-o", "json").stdout)["items"]
    versions = {int(s["metadata"]["labels"]["version"]): s["metadata"]["labels"]["status"] for s in secrets}
    return {"source": (source.get("status") or {}).get("artifact", {}).get("revision"),
            "generation": release["metadata"]["generation"], "helmrelease": release, "versions": versions}


def _watch(cluster: Cluster, commit: str, before: dict[str, Any], started: float) -> tuple[float, dict[str, float]]:
    """From `started` (time.monotonic() of the push) until the HelmRelease is Ready at a revision newer than any in
    `before`; the time each stage was first seen."""
    newest = max(before["versions"] or {0: ""})
    seen: dict[str, float] = {}
    while time.monotonic() - started < TIMEOUT:
        now = _snapshot(cluster)
        at = time.monotonic() - started
        marks = {
            "source": now["source"] == flux_revision(commit),
            "build and apply": now["generation"] > before["generation"],
            "Helm upgrade": any(v > newest for v in now["versions"]),
            "readiness": any(v > newest and s in ("deployed", "superseded") for v, s in now["versions"].items()),
            "Ready": flux.is_ready(now["helmrelease"])
            and ((now["helmrelease"]["status"].get("history") or [{}])[0].get("version") or 0) > newest,
        }
        for stage in STAGES:
            if marks[stage] and stage not in seen:
                seen[stage] = at
        if "Ready" in seen:
            break
        time.sleep(0.5)
    else:
        raise RuntimeError(f"no Ready HelmRelease within {TIMEOUT} s of pushing {commit}; seen: {seen}")
    # A later stage seen in the same read as an earlier one: both at that time.
    stages, previous = {}, 0.0
    for stage in STAGES:
        at = seen.get(stage, seen["Ready"])
        at = max(at, previous)
        stages[stage], previous = at - previous, at
    return seen["Ready"], stages


def _deploy(cluster: Cluster, log: Callable[[str], None]) -> None:
    """The first deploy, with the CloudNativePG operator played (as tests/live do)."""
    flux.wait_for(cluster, "Cluster airflow/airflow-db applied", lambda: flux.get(
        cluster, operators.CNPG_CLUSTER, "airflow-db", AIRFLOW_NAMESPACE) is not None, TIMEOUT)
    operators.play_cloudnative_pg(cluster)
    flux.wait_ready(cluster, flux.KUSTOMIZATION, "apps", FLUX_NAMESPACE, TIMEOUT)
    flux.wait_ready(cluster, flux.HELMRELEASE, RELEASE, AIRFLOW_NAMESPACE, TIMEOUT)
    log("first deploy Ready")


def measure(repo: Path, charts: dict[str, Path], runs: int = 3, log: Callable[[str], None] = print,
            root: Path | None = None) -> list[Run]:
    """`runs` commits and reverts by poll, then `runs` by webhook, on a cluster of their own."""
    sink = notification.Sink().start()
    token = notification.webhook_token()
    results: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="airflow-gitops-bench-live-") as tmp:
        where = root or Path(tmp) / "cluster"
        try:
            with running(where, repo, charts, log=lambda line: log(f"up: {line}"),
                         overlays=[notification.overlay(sink.url, token)]) as cluster:
                _deploy(cluster, log)
                clone = WorkClone(cluster.layout.bare_repository, Path(tmp) / "clone")
                receiver = _receiver_url(cluster)
                for path in ("poll", "webhook"):
                    for number in range(runs):
                        before_commit = clone.head()
                        clone.edit(VALUES_FILE, _change(number))
                        commit = clone.commit(f"make bench: scheduler setting, run {number + 1}")
                        results.append(_push(cluster, clone, commit, before_commit, path, "commit", receiver, token))
                        log(f"{path} commit {number + 1}: {results[-1].total:.1f} s")
                        revert = clone.revert(commit)
                        results.append(_push(cluster, clone, revert, commit, path, "git revert", receiver, token))
                        log(f"{path} revert {number + 1}: {results[-1].total:.1f} s")
        finally:
            sink.stop()
    return results


def _receiver_url(cluster: Cluster) -> str:
    kind = "receivers.notification.toolkit.fluxcd.io"
    flux.wait_ready(cluster, kind, "github-push", FLUX_NAMESPACE, TIMEOUT)
    return cluster.receiver_url + (flux.get(cluster, kind, "github-push", FLUX_NAMESPACE) or {})["status"]["webhookPath"]


def _push(cluster: Cluster, clone: WorkClone, commit: str, before_commit: str, path: str, what: str,
          receiver: str, token: str) -> Run:
    # Nothing of the previous push still moving: apps has applied it and the release is Ready.
    before = _snapshot(cluster)
    started = time.monotonic()
    clone.push()
    if path == "webhook":
        status = notification.github_push(receiver, token, notification.push_payload(
            cluster.git_url, "main", before_commit, commit))
        if status != 200:
            raise RuntimeError(f"the Receiver answered {status} to a signed push")
    total, stages = _watch(cluster, commit, before, started)
    flux.wait_ready(cluster, flux.KUSTOMIZATION, "apps", FLUX_NAMESPACE, TIMEOUT, revision=flux_revision(commit))
    return Run(f"{what} by {path}", total, stages)


def table(results: list[Run]) -> list[str]:
    """Median per path (and per stage) over the runs: the rows `make bench` prints."""
    lines = [f"  {'push -> HelmRelease upgraded and Ready':<40} {'median':>8}  {'runs':<24} "
             + "  ".join(f"{s:>15}" for s in STAGES)]
    for path in dict.fromkeys(r.path for r in results):
        runs = [r for r in results if r.path == path]
        medians = [statistics.median(r.stages[s] for r in runs) for s in STAGES]
        lines.append(f"  {path:<40} {statistics.median(r.total for r in runs):7.1f}s  "
                     f"{', '.join(f'{r.total:.0f}' for r in runs):<24} " + "  ".join(f"{m:14.1f}s" for m in medians))
    return lines
