"""Shared fixtures: the repository's clusters, its rendered Airflow release, a copy to break, and the schemas
check. The helpers they use live in tests/helpers.py."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from airflow_gitops.settings import CHARTS_ENV

from tests.helpers import CLUSTERS, REPO, REPO_PARTS, airflow_release, require_schemas, schemas_dir


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
def need_schemas():
    require_schemas()


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
