"""Shared fixtures: the repository's clusters, its rendered Airflow release, a copy to break, and the schemas
check; the closing summary of the skips by reason; and, for `make test`'s worker processes (pytest-xdist), the
groups of tests that must share a process and the order the workers are handed the tests. The helpers they use live
in tests/helpers.py."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pytest
from airflow_gitops.settings import CHARTS_ENV
from airflow_gitops.source.repository import copy_desired_state

from tests.helpers import (
    CLUSTERS,
    NEEDS,
    REPO,
    WORKER_SUMMARY,
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
    return copy_desired_state(REPO, tmp_path)


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
    for title, lines in _from_workers().items():
        if title:
            terminalreporter.section(title)
        for line in lines:
            terminalreporter.write_line(line)
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
    if _SKIPPED_ALTHOUGH_REQUIRED:
        terminalreporter.write_line(f"skipped although required here: {', '.join(_SKIPPED_ALTHOUGH_REQUIRED)}",
                                    red=True)
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
        _SKIPPED_ALTHOUGH_REQUIRED.extend(forbidden)  # said last, by pytest_terminal_summary
        session.exitstatus = 1


_SKIPPED_ALTHOUGH_REQUIRED: list[str] = []


# --- `make test` in worker processes (pytest-xdist, --dist loadgroup) ----------------------------------------------
# xdist 3.8's loadgroup (LoadGroupScheduling, a LoadScopeScheduling) hands out scopes: all the tests of one scope run
# in one worker, in collection order. With --no-loadscope-reorder (the Makefile) the scopes go out in collection
# order, one to each worker at first, then the next to a worker whenever it has two tests or fewer left.
#
# xdist puts a test in a group by its xdist_group mark, which it writes into the test's node id (test@group): with
# pytest 9.2 that write is lost (node ids became structured; pytest-dev/pytest-xdist#1386, open) and every test
# would be a scope of its own. So the scopes come from here instead: pytest_xdist_make_scheduler below makes the
# loadgroup scheduler with a scope of its own for each group, read from the node id's path on the controller, which
# does not collect. The workers, which do, check that every test using a fixture of FIXTURE_GROUPS is in its group,
# and order the collection so that the longest scopes start first and the short tests fill in around them.

# Groups by path: a module, or a folder (ending in "/"); the first that matches.
PATH_GROUPS = {
    # A second cluster (module fixture rollback_cluster); its tests run in order, each leaving it at Airflow A.
    "tests/live/test_rollback.py": "rollback-cluster",
    # The session's local Kubernetes and Flux cluster (tests/live/conftest.py live_cluster, deployed, work_clone),
    # which every worker would start again for the live tests it were handed.
    "tests/live/": "live-cluster",
    # Its light_venv fixture holds a file lock for the whole module: a second worker would wait on it.
    "tests/install/test_tool_without_airflow.py": "tool-without-airflow",
}
# A test that uses one of these fixtures must be in its group (checked at collection, in the workers).
FIXTURE_GROUPS = {"live_cluster": "live-cluster", "rollback_cluster": "rollback-cluster"}
# Handed out first, in this order: groups, modules and tests (node ids without parameters), longest first. The
# seconds are those of one run on the 2-core machine (docs/speed.md, "`make test` time"); a scope not listed is
# short and keeps its place in the collection.
LONGEST_FIRST = (
    "live-cluster",  # about 13 minutes (docs/live-cluster.md: the first deploy, then the flows)
    "rollback-cluster",  # not timed alone: a second cluster and three real Airflow migrations per test
    "tool-without-airflow",  # 500 s
    "tests/rollback/test_airflow_downgrade.py::test_step1_brings_the_database_back_and_the_old_release_starts",  # 490
    "tests/rollback/test_airflow_downgrade.py::test_naive_revert_fails_as_on_the_cluster",  # 300 s
    "tests/gitops/test_policy_bypasses.py",  # 270 s
    "tests/dags/test_dag_assets.py",  # 210 s
    "tests/gitops/test_operate_dry_runs.py",  # 170 s
    "tests/dags/test_dev_loop.py",  # 145 s
    "tests/rollback/test_airflow_downgrade.py::test_equal_heads_plan_a_plain_revert_and_the_downgrade_is_a_no_op",  # 125
    "tests/perf/test_parallel.py",  # 115 s
    "tests/gitops/test_flux_build_compare.py",  # 105 s
    "tests/gitops/test_checkov.py",  # 105 s
    "tests/dags/test_dag_user_processing.py",  # 95 s
    "tests/gitops/test_rollback_and_diff.py",  # 90 s
)


def worker_group(nodeid: str) -> str | None:
    """The group of the test `nodeid`: the tests of one group run in one worker process."""
    module = nodeid.split("::")[0]
    return next((group for path, group in PATH_GROUPS.items()
                 if module == path or (path.endswith("/") and module.startswith(path))), None)


def check_fixture_groups(nodeid: str, fixturenames: Iterable[str]) -> None:
    """A test that uses a fixture of FIXTURE_GROUPS outside its group would start what it starts in another worker."""
    for fixture, group in FIXTURE_GROUPS.items():
        if fixture in fixturenames and worker_group(nodeid) != group:
            raise pytest.UsageError(f"{nodeid} uses the fixture {fixture} but is not in the worker group {group}: "
                                    "move it, or extend PATH_GROUPS in tests/conftest.py")


def order_for_workers(items: list) -> list:
    """`items`, the scopes of LONGEST_FIRST first in its order, each in collection order."""
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}

    def place(item) -> int:
        test, module = item.nodeid.split("[")[0], item.nodeid.split("::")[0]
        return min((rank[key] for key in (worker_group(item.nodeid), test, module) if key in rank), default=len(rank))

    return sorted(items, key=place)  # stable: the collection order within a scope and among the rest


def _loadgroup(config: pytest.Config) -> bool:
    # A worker sees dist "no" and the option loadgroup that xdist sets for it (xdist/remote.py setup_config).
    return bool(getattr(config.option, "loadgroup", False)) or config.getoption("dist", "no") == "loadgroup"


def pytest_collection_modifyitems(config, items):
    if not _loadgroup(config):
        return
    for item in items:
        check_fixture_groups(item.nodeid, getattr(item, "fixturenames", ()))
    items[:] = order_for_workers(items)


def pytest_report_collectionfinish(config, items):
    """With --dist loadgroup and --collect-only: the groups, in the order the workers are handed them."""
    if not (_loadgroup(config) and items):
        return []
    counts: dict[str, int] = {}
    for item in items:
        if group := worker_group(item.nodeid):
            counts[group] = counts.get(group, 0) + 1
    return [f"worker groups: {', '.join(f'{name} ({count} tests)' for name, count in counts.items()) or 'none'}"]


@pytest.hookimpl(optionalhook=True)  # an xdist hook: the controller's scheduler
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class GroupScheduling(LoadGroupScheduling):
        """loadgroup, with the groups of PATH_GROUPS as scopes (and xdist_group marks, where xdist still reads
        them)."""

        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid) or super()._split_scope(nodeid)

    return GroupScheduling(config, log)


# --- what the workers have to say at the end ----------------------------------------------------------------------
# A worker's own terminal summary is never shown. A conftest that has something to print at the end of the run
# (tests/live/conftest.py: the waits, the folders kept) puts it, when it runs in a worker, into
# config.workeroutput[WORKER_SUMMARY] (tests/helpers.py) as (section title or "", lines); the controller prints it
# before the skips.
_WORKER_SECTIONS: list = []


@pytest.hookimpl(optionalhook=True)  # an xdist hook: called on the controller as each worker finishes
def pytest_testnodedown(node, error):
    _WORKER_SECTIONS.extend(getattr(node, "workeroutput", {}).get(WORKER_SUMMARY, []))


def _from_workers() -> dict[str, list[str]]:
    """The workers' sections, those of one title together."""
    sections: dict[str, list[str]] = {}
    for title, lines in _WORKER_SECTIONS:
        sections.setdefault(title, []).extend(lines)
    return sections
