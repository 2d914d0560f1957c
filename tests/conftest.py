"""Shared fixtures: the repository's clusters, its rendered Airflow release, a copy to break, and the schemas
check; and the closing summary of the skips by reason. The helpers they use live in tests/helpers.py."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from airflow_gitops.settings import CHARTS_ENV

from tests.helpers import (
    CLUSTERS,
    NEEDS,
    REPO,
    REPO_PARTS,
    airflow_release,
    need_of,
    require_schemas,
    schemas_dir,
    skip_for,
)


@pytest.fixture(params=CLUSTERS)
def cluster(request) -> str:
    return request.param


@pytest.fixture
def rendered_airflow(cluster):
    """The chart objects of the Airflow release; skips loudly, with the reason, without the chart."""
    release = airflow_release(cluster)
    if release.unrendered_reason:
        skip_for("chart", f"chart checks not run: {release.unrendered_reason}")
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


def _skip_reason(report) -> str:
    """The reason a skipped test report gives (pytest keeps it as (file, line, reason) for skips)."""
    longrepr = report.longrepr
    return str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """After every other summary: the skips by reason, one line each, so that "passed" never hides "not run"."""
    result = yield
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if getattr(r, "longrepr", None)]
    if not skipped:
        terminalreporter.write_sep("=", "no test skipped", green=True)
        return result
    by_need: dict[str, list] = {}
    for report in skipped:
        by_need.setdefault(need_of(_skip_reason(report)) or "", []).append(report)
    terminalreporter.write_sep("=", f"{len(skipped)} skipped, by reason", yellow=True)
    for key, reports in sorted(by_need.items(), key=lambda item: -len(item[1])):
        files = sorted({r.nodeid.split("::", 1)[0].removeprefix("tests/") for r in reports})
        shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
        if key:
            need = NEEDS[key]
            line = f"{len(reports):5d} {need.label} ({shown}); to run them: {need.give}"
        else:
            line = (f"{len(reports):5d} NO REASON FROM tests/helpers.py NEEDS ({shown}): "
                    f"{_skip_reason(reports[0]).removeprefix('Skipped: ')[:150]}")
        terminalreporter.write_line(line, yellow=True)
    return result


def pytest_sessionfinish(session, exitstatus):
    """A skip for a need whose AIRFLOW_GITOPS_REQUIRE_* variable is 1 fails the run, however it was skipped: skip_for
    already fails such a test, this catches a plain pytest.skip or skipif."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    forbidden = [r.nodeid for r in reporter.stats.get("skipped", []) if getattr(r, "longrepr", None)
                 and (need := need_of(_skip_reason(r))) and NEEDS[need].require
                 and os.environ.get(NEEDS[need].require) == "1"]
    if forbidden and session.exitstatus == 0:
        reporter.write_line(f"skipped although required here: {', '.join(forbidden)}", red=True)
        session.exitstatus = 1


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
