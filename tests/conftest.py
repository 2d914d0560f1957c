"""Shared fixtures: the repository, tool settings, and one render helper (as the chart's own tests do)."""

from __future__ import annotations

import os
import shutil
from functools import lru_cache
from pathlib import Path

import pytest
from airflow_gitops.model import ClusterState
from airflow_gitops.pipeline import render_cluster
from airflow_gitops.settings import CHARTS_ENV, SCHEMAS_ENV, Settings, parse_chart_overrides

REPO = Path(__file__).resolve().parent.parent
CLUSTERS = ["kind", "eks"]
# Copied for tests that break something on purpose.
REPO_PARTS = ["clusters", "infrastructure", "apps", "charts-values", "dags", "pyproject.toml"]


def schemas_dir() -> Path | None:
    if os.environ.get(SCHEMAS_ENV):
        return Path(os.environ[SCHEMAS_ENV])
    shared = REPO.parent / "shared" / "schemas"
    return shared if shared.is_dir() else None


def make_settings(repo: Path = REPO) -> Settings:
    return Settings(repo=repo, schemas_dir=schemas_dir(),
                    local_charts=parse_chart_overrides(os.environ.get(CHARTS_ENV, "")))


@lru_cache(maxsize=8)
def render(cluster: str) -> ClusterState:
    """The one render helper: every object Flux applies for a cluster, chart objects when the chart is at hand."""
    return render_cluster(make_settings(), cluster)


def airflow_release(cluster: str):
    return next(r for r in render(cluster).releases if r.helmrelease.name == "airflow")


@pytest.fixture(params=CLUSTERS)
def cluster(request) -> str:
    return request.param


@pytest.fixture
def rendered_airflow(cluster):
    """The chart objects of the Airflow release; skips loudly, with the reason, without the chart."""
    release = airflow_release(cluster)
    if release.unrendered_reason:
        pytest.skip(f"CHART NOT AVAILABLE, chart checks not run: {release.unrendered_reason}")
    return release


@pytest.fixture
def repo_copy(tmp_path) -> Path:
    """A copy of the repository's desired state to break on purpose."""
    for part in REPO_PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, tmp_path / part)
    return tmp_path


def pytest_report_header(config):
    directory = schemas_dir()
    charts = os.environ.get(CHARTS_ENV) or "(none: fetched from the chart repositories, or skipped offline)"
    return [f"schemas: {directory or '(none: fetched on a networked machine)'}", f"local charts: {charts}"]
