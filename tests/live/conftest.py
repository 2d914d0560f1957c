"""The live tests' cluster: real etcd, kube-apiserver, controller manager, scheduler, kwok and Flux controllers on
127.0.0.1 (scripts/airflow_gitops/live), started once for the session and stopped after it.

The parts are built from Go modules on first use (`make live-tools`; cached by version). Without Go the tests skip,
saying so; under .ci/run (AIRFLOW_GITOPS_REQUIRE_LIVE_TOOLS=1) they fail instead. A failing test prints where the
cluster's logs are and the last lines of each; every wait is listed, with its duration, at the end of the run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from airflow_gitops.live import cluster as live
from airflow_gitops.live import tools
from airflow_gitops.live.flux import Waits

from tests.helpers import REPO, skip_for

WAITS = Waits()
_CLUSTERS: list[live.Cluster] = []


def required() -> bool:
    return os.environ.get(tools.ENV_REQUIRE, "") not in ("", "0")


def unavailable(reason: str) -> None:
    """Skip loudly, or fail where the run promised the tools (.ci/run)."""
    if required():
        pytest.fail(f"LIVE CLUSTER NOT RUN: {reason} ({tools.ENV_REQUIRE}=1)", pytrace=False)
    skip_for("live-cluster", reason)


def chart_packages() -> dict[str, Path]:
    shared = REPO.parent / "shared" / "charts"
    return live.default_charts(shared) if shared.is_dir() else {}


@pytest.fixture(scope="session")
def live_tools() -> dict[str, Path]:
    if tools.go_binary() is None:
        unavailable("Go is not installed; the cluster's parts are built from Go modules (docs/live-cluster.md)")
    try:
        return tools.build_all()
    except tools.ToolsUnavailable as error:
        pytest.fail(f"building the live cluster's parts failed: {error}", pytrace=False)


@pytest.fixture(scope="session")
def live_cluster(live_tools, tmp_path_factory) -> live.Cluster:
    charts = chart_packages()
    if "airflow" not in charts:
        unavailable(f"CHART NOT AVAILABLE: no Airflow chart package in {REPO.parent / 'shared' / 'charts'}")
    cluster = live.Cluster(tmp_path_factory.mktemp("live-cluster"))
    _CLUSTERS.append(cluster)
    try:
        cluster.up(REPO, charts=charts, log=lambda line: None)
    except Exception as error:
        cluster.down()
        pytest.fail(f"the live cluster did not start: {error}\nlogs: {cluster.layout.logs}", pytrace=False)
    yield cluster
    cluster.down()


@pytest.fixture(scope="session")
def waits() -> Waits:
    return WAITS


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed and _CLUSTERS:
        cluster = _CLUSTERS[-1]
        report.sections.append(("live cluster", f"logs: {cluster.layout.logs}"))
        for name in ("kustomize-controller", "helm-controller", "source-controller", "kwok", "kube-apiserver"):
            report.sections.append((f"live log {name} (last 25 lines)", cluster.log_tail(name, 25)))


def pytest_terminal_summary(terminalreporter):
    if WAITS.entries:
        terminalreporter.section("live cluster: what the tests waited for")
        for what, seconds in WAITS.entries:
            terminalreporter.write_line(f"{seconds:7.1f} s  {what}")
