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
