"""The live tests' cluster: real etcd, kube-apiserver, controller manager, scheduler, kwok and Flux controllers on
127.0.0.1 (scripts/airflow_gitops/live), started once for the session and stopped after it.

It is bootstrapped like `make live-up`, with two overlays laid over the bootstrap, each written down where it is:
scripts/live/tests.yaml (the waits a test cannot sit through: the Airflow release's timeout, the chart Jobs' TTL)
and scripts/live/notification.yaml (EKS's Receiver and Alerts, their Providers redirected to `notification_sink`).
The first deploy happens once, in the `deployed` fixture. Tests that push to the cluster's Git do it from
`work_clone`, as a user pushes, and leave Git as they found it (they revert what they pushed).

The parts are built from Go modules on first use (`make live-tools`; cached by version). Without Go the tests skip,
saying so; under .ci/run (AIRFLOW_GITOPS_REQUIRE_LIVE_TOOLS=1) they fail instead. A failing test prints where the
cluster's logs are and the last lines of each; every wait is listed, with its duration, at the end of the run.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from pathlib import Path

import pytest
from airflow_gitops.live import cluster as live
from airflow_gitops.live import flux, notification, operators, tools
from airflow_gitops.live.cluster import AIRFLOW_NAMESPACE, FLUX_NAMESPACE
from airflow_gitops.live.flux import Waits
from airflow_gitops.live.git import WorkClone

from tests.helpers import REPO, WORKER_SUMMARY, skip_for
from tests.live.flows import HOLD_SECONDS, ORDER, Deploy, kustomization

WAITS = Waits()
_CLUSTERS: list[live.Cluster] = []


def required() -> bool:
    return os.environ.get(tools.ENV_REQUIRE, "") not in ("", "0")


def unavailable(reason: str) -> None:
    """Skip loudly, or fail where the run promised the tools (.ci/run)."""
    if required():
        pytest.fail(f"LIVE CLUSTER NOT RUN: {reason} ({tools.ENV_REQUIRE}=1)", pytrace=False)
    skip_for("live-cluster", reason)


def cluster_folder(name: str) -> Path:
    """A folder for one cluster outside pytest's temporary directories, which another pytest session on the machine
    may clean up while this one still runs (it keeps only the last three)."""
    folder = Path(tempfile.mkdtemp(prefix=f"airflow-gitops-{name}-"))
    FOLDERS.append(folder)
    return folder


def chart_packages() -> dict[str, Path]:
    shared = REPO.parent / "shared" / "charts"
    return live.default_charts(shared) if shared.is_dir() else {}


@pytest.fixture(scope="session")
def live_tools() -> dict[str, Path]:
    if tools.go_binary() is None:
        unavailable("Go is not installed; the cluster's parts are built from Go modules (docs/live-cluster.md)")
    lock_file = tools.cache_root() / "live-tools.lock"
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        # One build at a time: `make test`'s workers (the live-cluster and rollback-cluster groups) may both start
        # here on a cold cache, and the builds share their work folder. The second finds the first's binaries.
        with open(lock_file, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return tools.build_all()
    except tools.ToolsUnavailable as error:
        pytest.fail(f"building the live cluster's parts failed: {error}", pytrace=False)


@pytest.fixture(scope="session")
def notification_sink():
    """Where the repository's Providers deliver on the local cluster (scripts/live/notification.yaml)."""
    sink = notification.Sink().start()
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
def webhook_token() -> str:
    """The Receiver's token: the Secret flux-webhook-token, which External Secrets makes on EKS."""
    return notification.webhook_token()


@pytest.fixture(scope="session")
def live_cluster(live_tools, tmp_path_factory, notification_sink, webhook_token) -> live.Cluster:
    charts = chart_packages()
    if "airflow" not in charts:
        unavailable(f"CHART NOT AVAILABLE: no Airflow chart package in {REPO.parent / 'shared' / 'charts'}")
    cluster = live.Cluster(cluster_folder("live-cluster"))
    _CLUSTERS.append(cluster)
    overlays = [live.Overlay(live.TESTS_OVERLAY), notification.overlay(notification_sink.url, webhook_token)]
    try:
        cluster.up(REPO, charts=charts, log=lambda line: None, overlays=overlays, die_with_parent=True)
    except Exception as error:
        cluster.down()
        pytest.fail(f"the live cluster did not start: {error}\nlogs: {cluster.layout.logs}", pytrace=False)
    yield cluster
    cluster.down(purge=not FAILED)


FAILED: list[str] = []
FOLDERS: list[Path] = []


@pytest.fixture(scope="session")
def deployed(live_cluster, waits) -> Deploy:
    """The first deploy of clusters/kind, watched: every Kustomization Ready in dependsOn order, the database's
    health checks holding infra-configs back until the test plays the CloudNativePG operator."""
    flux.wait_ready(live_cluster, flux.GITREPOSITORY, "flux-system", FLUX_NAMESPACE, 120, waits=waits)
    record = Deploy(revision=flux.source_revision(live_cluster))
    started = time.monotonic()
    flux.wait_ready(live_cluster, flux.KUSTOMIZATION, "infra-controllers", FLUX_NAMESPACE, 300,
                    revision=record.revision, waits=waits)
    record.ready_at["infra-controllers"] = time.monotonic() - started
    # infra-configs has applied the database; its health checks now wait on the operator, which does not run.
    flux.wait_for(live_cluster, "Cluster airflow/airflow-db applied by infra-configs",
                  lambda: flux.get(live_cluster, operators.CNPG_CLUSTER, "airflow-db", AIRFLOW_NAMESPACE) is not None,
                  120, waits)
    deadline = time.monotonic() + HOLD_SECONDS
    while time.monotonic() < deadline:
        record.held.append({name: kustomization(live_cluster, name) for name in ("infra-configs", "apps")})
        time.sleep(3)
    record.played_at = time.monotonic() - started
    operators.play_cloudnative_pg(live_cluster)
    for name in ORDER[1:]:
        flux.wait_ready(live_cluster, flux.KUSTOMIZATION, name, FLUX_NAMESPACE, 600, revision=record.revision,
                        waits=waits)
        record.ready_at[name] = time.monotonic() - started
    return record


@pytest.fixture(scope="session")
def work_clone(live_cluster, tmp_path_factory) -> WorkClone:
    """A clone of the cluster's Git repository, where tests commit and push as a user does."""
    return WorkClone(live_cluster.layout.bare_repository, tmp_path_factory.mktemp("work-clone") / "repo")


@pytest.fixture(scope="session")
def waits() -> Waits:
    return WAITS


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        FAILED.append(item.nodeid)
    if report.when in ("setup", "call") and report.failed and _CLUSTERS:
        cluster = _CLUSTERS[-1]
        report.sections.append(("live cluster", f"logs: {cluster.layout.logs}"))
        for name in ("kustomize-controller", "helm-controller", "source-controller", "kwok", "kube-apiserver"):
            report.sections.append((f"live log {name} (last 25 lines)", cluster.log_tail(name, 25)))


def summary() -> list[tuple[str, list[str]]]:
    """What the run prints at its end: (section title or "", lines)."""
    sections: list[tuple[str, list[str]]] = []
    kept = [str(folder) for folder in FOLDERS if folder.exists()]
    if kept:
        sections.append(("", [f"live cluster folders kept for a look (a test failed): {', '.join(kept)}"]))
    if WAITS.entries:
        sections.append(("live cluster: what the tests waited for",
                         [f"{seconds:7.1f} s  {what}" for what, seconds in WAITS.entries]))
    return sections


def pytest_sessionfinish(session):
    """In a pytest-xdist worker (`make test`), the controller prints the summary (tests/conftest.py)."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output.setdefault(WORKER_SUMMARY, []).extend(summary())


def pytest_terminal_summary(terminalreporter):
    if hasattr(terminalreporter.config, "workeroutput"):
        return
    for title, lines in summary():
        if title:
            terminalreporter.section(title)
        for line in lines:
            terminalreporter.write_line(line)
