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
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow_gitops import airflow_versions
from airflow_gitops.live import flux, notification, operators, tools
from airflow_gitops.live.cluster import AIRFLOW_NAMESPACE, FLUX_NAMESPACE, Cluster, running
from airflow_gitops.live.git import WorkClone, desired_state_repository, flux_revision, set_airflow_version
from airflow_gitops.live.kubelet import MIGRATE_COMPONENT, MigrationKubelet

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


# --- the whole two-step Airflow rollback ------------------------------------------------------------------------

ROLLBACK_FROM, ROLLBACK_TO = "3.3.2", "3.2.2"
"""The bump that is rolled back: the two releases whose migration heads differ (tests/live/test_rollback.py too)."""
ROLLBACK_STAGES = ("step 1 pushed", "step 1 live", "step 2 pushed", "step 2 live")
ROLLBACK_TIMEOUT = 1800


def _stage_of(line: str) -> str | None:
    """The stage a line of `airflow-gitops rollback` ends (operate/rollback.py prints each as it happens)."""
    if line.startswith("# step 1: pushed") or line.startswith("# step 1: merged"):
        return "step 1 pushed"
    if line.startswith("# step 2: pushed") or line.startswith("# step 2: merged"):
        return "step 2 pushed"
    if line.startswith("# kind: ") and " after " in line:
        return "live"
    return None


def measure_rollback(repo: Path, charts: dict[str, Path], database_url: str, venvs: dict[str, Path], runs: int = 3,
                     log: Callable[[str], None] = print) -> list[Run]:
    """`runs` times: Airflow raised from ROLLBACK_TO to ROLLBACK_FROM by a pushed commit, then
    `airflow-gitops rollback <that commit> --via push` timed from its start until step 2 is live. The migrate Job's
    pods run for real against `database_url` (live/kubelet.py, one venv per image tag), so both steps include the
    real `airflow db migrate` / `db downgrade`; every other pod is kwok's."""
    results: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="airflow-gitops-bench-rollback-") as tmp:
        tree = desired_state_repository(repo, Path(tmp) / "tree")
        set_airflow_version(tree, ROLLBACK_TO)
        WorkClone(tree, tree).commit(f"Airflow {ROLLBACK_TO}")
        with running(Path(tmp) / "cluster", tree, charts, log=lambda line: log(f"up: {line}"),
                     real_pods=(MIGRATE_COMPONENT,)) as cluster:
            kubelet = MigrationKubelet(cluster, database_url, venvs)
            kubelet.start()
            try:
                _deploy(cluster, log)
                clone = WorkClone(cluster.layout.bare_repository, Path(tmp) / "clone")
                env = {**os.environ, **cluster.env(), "PATH": os.pathsep.join(
                    [str(tools.require_tool("flux").parent), str(Path(sys.executable).parent), os.environ["PATH"]])}
                schema = airflow_versions.schema_version(ROLLBACK_FROM) or ""
                for number in range(runs):
                    # Setup, not measured: the bump is an upgrade like any other, and within the chart Jobs' TTL
                    # (300 s) it would wait for its retry (6m) on their immutable pod templates.
                    cluster.kubectl("delete", "jobs", "-n", AIRFLOW_NAMESPACE, "-l", f"release={RELEASE}",
                                    "--wait=true", timeout=300)
                    set_airflow_version(clone.path, ROLLBACK_FROM)
                    bump = clone.commit(f"Airflow {ROLLBACK_FROM}")
                    clone.push()
                    flux.reconcile_source(cluster)
                    flux.wait_for(cluster, f"Airflow {ROLLBACK_FROM} live", lambda: _on_schema(cluster, schema),
                                  ROLLBACK_TIMEOUT)
                    results.append(_timed_rollback(clone, bump, env, run=number + 1))
                    log(f"two-step rollback {number + 1}: {results[-1].total:.1f} s")
                    clone.pull()
            finally:
                kubelet.stop()
    return results


def _on_schema(cluster: Cluster, schema: str) -> bool:
    obj = flux.get(cluster, flux.HELMRELEASE, RELEASE, AIRFLOW_NAMESPACE) or {}
    annotations = obj.get("metadata", {}).get("annotations") or {}
    status = obj.get("status") or {}
    return annotations.get("airflow-gitops.io/schema-version") == schema and flux.is_ready(obj) \
        and status.get("observedGeneration") == obj["metadata"].get("generation")


def _timed_rollback(clone: WorkClone, bump: str, env: dict[str, str], run: int) -> Run:
    started = time.monotonic()
    tool = subprocess.Popen([str(Path(sys.executable).parent / "airflow-gitops"), "rollback", bump, "--repo",
                             str(clone.path), "--cluster", "kind", "--via", "push", "--timeout", "900"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: dict[str, float] = {}
    output: list[str] = []
    assert tool.stdout is not None
    for line in tool.stdout:
        output.append(line)
        stage = _stage_of(line)
        if stage == "live":
            stage = "step 1 live" if "step 2 pushed" not in seen else "step 2 live"
        if stage and stage not in seen:
            seen[stage] = time.monotonic() - started
    if tool.wait() != 0 or set(seen) != set(ROLLBACK_STAGES):
        raise RuntimeError(f"rollback run {run} failed (stages seen: {seen}):\n{''.join(output[-40:])}")
    stages, previous = {}, 0.0
    for stage in ROLLBACK_STAGES:
        stages[stage], previous = seen[stage] - previous, seen[stage]
    return Run("two-step Airflow rollback", seen["step 2 live"], stages)


def rollback_table(results: list[Run]) -> list[str]:
    """Median of the two-step rollbacks, and of each stage (from the previous one)."""
    if not results:
        return []
    medians = [statistics.median(r.stages[s] for r in results) for s in ROLLBACK_STAGES]
    return [f"  {'make rollback SHA=<bump> -> step 2 live':<40} {'median':>8}  {'runs':<24} "
            + "  ".join(f"{s:>15}" for s in ROLLBACK_STAGES),
            f"  {f'Airflow {ROLLBACK_FROM} -> {ROLLBACK_TO}':<40} {statistics.median(r.total for r in results):7.1f}s  "
            f"{', '.join(f'{r.total:.0f}' for r in results):<24} " + "  ".join(f"{m:14.1f}s" for m in medians)]
