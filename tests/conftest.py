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


# --- `make test` in worker processes (pytest-xdist, --dist worksteal) ----------------------------------------------
# worksteal hands each worker a consecutive, equal share of the collected tests, and a worker that runs dry steals the
# second half of another's queue. So that no worker is left alone with the long tests at the end, the collection is
# ordered here: the long tests (or modules, when their fixtures are shared) spread over the workers' shares by weight,
# each share starting with its long ones, the short tests after them. The weights are seconds of one full run on the
# 2-core machine (docs/speed.md); only their ratios matter. A test not listed is short.
LONG_TESTS = {
    "tests/rollback/test_airflow_downgrade.py::test_step1_brings_the_database_back_and_the_old_release_starts": 490,
    "tests/rollback/test_airflow_downgrade.py::test_naive_revert_fails_as_on_the_cluster": 300,
    "tests/rollback/test_airflow_downgrade.py::test_equal_heads_plan_a_plain_revert_and_the_downgrade_is_a_no_op": 125,
    # One module, one worker: its venv fixture holds a lock for the whole module.
    "tests/install/test_tool_without_airflow.py": 500,
    "tests/gitops/test_policy_bypasses.py": 270,
    "tests/dags/test_dag_assets.py": 210,
    "tests/gitops/test_operate_dry_runs.py": 170,
    "tests/dags/test_dev_loop.py": 145,
    "tests/gitops/test_rollback_live.py": 135,
    "tests/perf/test_parallel.py": 115,
    "tests/gitops/test_flux_build_compare.py": 105,
    "tests/gitops/test_checkov.py": 105,
    "tests/dags/test_dag_user_processing.py": 95,
    "tests/gitops/test_rollback_and_diff.py": 90,
}


def _long_unit(item: pytest.Item) -> str | None:
    test = item.nodeid.split("[")[0]
    if test in LONG_TESTS:
        return test
    module = item.nodeid.split("::")[0]
    return module if module in LONG_TESTS else None


def order_for_workers(items: list[pytest.Item], workers: int) -> list[pytest.Item]:
    """`items` reordered into `workers` consecutive shares of worksteal's sizes, the long units balanced by weight."""
    units: dict[str, list[pytest.Item]] = {}
    short: list[pytest.Item] = []
    for item in items:
        unit = _long_unit(item)
        (units.setdefault(unit, []) if unit else short).append(item)
    lanes: list[list[pytest.Item]] = [[] for _ in range(workers)]
    weights = [0] * workers
    for unit in sorted(units, key=lambda name: (-LONG_TESTS[name], name)):
        lightest = weights.index(min(weights))
        lanes[lightest] += units[unit]
        weights[lightest] += LONG_TESTS[unit]
    ordered: list[pytest.Item] = []
    remaining = len(items)
    for index, lane in enumerate(lanes):
        size = remaining // (workers - index)  # what worksteal sends worker `index` first
        fill = max(0, size - len(lane))
        ordered += lane + short[:fill]
        short = short[fill:]
        remaining -= len(lane) + fill
    return ordered + short


def pytest_collection_modifyitems(config, items):
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 0)
    if workers > 1 and config.getoption("dist", None) == "worksteal":
        items[:] = order_for_workers(items, workers)
