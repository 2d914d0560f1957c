"""The suite is honest about what it did not run: every skip names a need of tests/helpers.py NEEDS, `make test` ends
with one line per need, and where .ci/run gives a need (AIRFLOW_GITOPS_REQUIRE_<NEED>=1) a skip for it is a failure.

Each case runs pytest on a small test file of its own, with this suite's conftest as a plugin."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import NEEDS, REPO

TESTS = REPO / "tests"


# `make test` runs the suite in pytest-xdist workers (the Makefile): the hooks must see the workers' reports.
WORKERS = ("-n", "2", "--dist", "loadgroup", "--no-loadscope-reorder")


def run_suite(tmp_path: Path, body: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    """pytest over one test file in `tmp_path`, as `make test` runs (the conftest's hooks), with `args` and `env`
    added."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_case.py").write_text(textwrap.dedent(body))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_GITOPS_REQUIRE_")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
                           "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path), *args,
                           str(tmp_path / "test_case.py")],
                          cwd=tmp_path, env={**clean, "PYTHONPATH": str(REPO), **env}, capture_output=True, text=True,
                          timeout=300)
    return proc


CASE = """
    import pytest
    from tests.helpers import skip_for

    def test_runs():
        pass

    def test_needs_a_chart():
        skip_for("chart", "the chart is not at hand")

    def test_needs_a_chart_too():
        skip_for("chart", "nor here")

    def test_needs_checkov():
        skip_for("checkov", "not installed")
"""


@pytest.mark.parametrize("args", [(), WORKERS], ids=["one-process", "workers"])
def test_the_run_ends_with_the_skips_by_reason(tmp_path, args):
    proc = run_suite(tmp_path, CASE, *args)
    assert proc.returncode == 0, proc.stdout
    lines = proc.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "3 skipped, by reason" in line)
    assert re.fullmatch(r"\s+2 CHART NOT AVAILABLE \(test_case\.py\); to run them: AIRFLOW_GITOPS_CHARTS=.*",
                        lines[start + 1])
    assert re.fullmatch(r"\s+1 CHECKOV NOT INSTALLED \(test_case\.py\); to run them: make checkov-venv", lines[start + 2])
    assert "1 passed, 3 skipped" in lines[start + 3], "the summary is the last thing before the counts"


@pytest.mark.parametrize("args", [(), WORKERS], ids=["one-process", "workers"])
def test_a_required_need_fails_instead_of_skipping(tmp_path, args):
    proc = run_suite(tmp_path, CASE, *args, AIRFLOW_GITOPS_REQUIRE_CHARTS="1")
    assert proc.returncode == 1
    assert "2 failed, 1 passed, 1 skipped" in proc.stdout
    assert "AIRFLOW_GITOPS_REQUIRE_CHARTS=1: it must be given here, so this test may not skip" in proc.stdout


@pytest.mark.parametrize("args", [(), WORKERS], ids=["one-process", "workers"])
def test_a_plain_skip_of_a_required_need_fails_the_run(tmp_path, args):
    proc = run_suite(tmp_path, """
        import pytest

        def test_bypasses_the_helper():
            pytest.skip("SCHEMAS NOT AVAILABLE: no folder")
    """, *args, AIRFLOW_GITOPS_REQUIRE_SCHEMAS="1")
    assert proc.returncode == 1, proc.stdout
    assert re.search(r"^skipped although required here: test_case\.py::test_bypasses_the_helper$", proc.stdout,
                     re.MULTILINE), proc.stdout


def test_what_a_worker_has_to_say_at_the_end_is_printed_by_the_controller(tmp_path):
    """tests/live/conftest.py's waits and kept folders, printed at the end of a run in workers as in one process."""
    (tmp_path / "conftest.py").write_text(textwrap.dedent("""
        from tests.helpers import WORKER_SUMMARY

        def pytest_sessionfinish(session):
            output = getattr(session.config, "workeroutput", None)
            if output is not None:
                output.setdefault(WORKER_SUMMARY, []).append(
                    ("what was waited for", ["waited in a worker"]))
    """))
    proc = run_suite(tmp_path, "def test_one():\n    pass\n\ndef test_two():\n    pass\n", *WORKERS)
    assert proc.returncode == 0, proc.stdout
    lines = proc.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "what was waited for" in line)
    assert lines[start + 1:start + 3] == ["waited in a worker"] * 2, "one line from each of the two workers"


def test_a_skip_without_a_need_is_called_so(tmp_path):
    proc = run_suite(tmp_path, """
        import pytest

        @pytest.mark.skipif(True, reason="just because")
        def test_skipped():
            pass
    """)
    assert re.search(r"\s+1 NO REASON FROM tests/helpers\.py NEEDS \(test_case\.py\): just because", proc.stdout)


def test_no_run_says_skipped_is_fine(tmp_path):
    proc = run_suite(tmp_path, "def test_runs():\n    pass\n")
    assert proc.returncode == 0 and "no test skipped" in proc.stdout


def test_every_skip_in_the_suite_goes_through_skip_for():
    """A plain pytest.skip, skipif or importorskip would skip without a need, so without the CI guard."""
    plain = re.compile(r"pytest\.skip\(|mark\.skipif|importorskip\(|mark\.skip\b")
    offenders = [str(path.relative_to(REPO)) for path in sorted(TESTS.rglob("*.py"))
                 if path.name != "helpers.py" and path != Path(__file__) and plain.search(path.read_text())]
    assert offenders == [], f"skip with tests.helpers.skip_for(need, detail) (needs: {', '.join(NEEDS)})"
