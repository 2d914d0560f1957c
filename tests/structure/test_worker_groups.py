"""`make test`'s worker processes (pytest-xdist, --dist loadgroup): the groups tests/conftest.py gives the tests that
must share a process, and the order the workers are handed the scopes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import (
    FIXTURE_GROUPS,
    LONGEST_FIRST,
    PATH_GROUPS,
    check_fixture_groups,
    order_for_workers,
    worker_group,
)
from tests.helpers import REPO

ROLLBACK = "tests/live/test_rollback.py"
INSTALL = "tests/install/test_tool_without_airflow.py"
STEP1 = "tests/rollback/test_airflow_downgrade.py::test_step1_brings_the_database_back_and_the_old_release_starts"


def test_every_live_test_but_the_rollback_module_is_in_the_live_cluster_group():
    assert worker_group("tests/live/test_deploy.py::test_a") == "live-cluster"
    assert worker_group("tests/live/test_prune.py::test_b[x]") == "live-cluster"
    assert worker_group(f"{ROLLBACK}::test_first") == "rollback-cluster"


def test_the_light_install_module_is_a_group_and_other_tests_are_in_none():
    assert worker_group(f"{INSTALL}::test_x") == "tool-without-airflow"
    assert worker_group("tests/install/test_other.py::test_x") is None
    assert worker_group("tests/livex/test_a.py::test_a") is None
    assert worker_group(STEP1) is None


def test_a_test_using_a_cluster_fixture_outside_its_group_is_refused():
    check_fixture_groups("tests/live/test_deploy.py::test_a", ["deployed", "live_cluster"])
    check_fixture_groups(f"{ROLLBACK}::test_first", ["rollback_cluster", "live_tools"])
    with pytest.raises(pytest.UsageError, match="uses the fixture live_cluster but is not in the worker group"):
        check_fixture_groups("tests/gitops/test_new.py::test_c", ["live_cluster"])
    # In test_rollback.py, live_cluster would start the shared cluster in the rollback group's worker too.
    with pytest.raises(pytest.UsageError, match="live_cluster"):
        check_fixture_groups(f"{ROLLBACK}::test_both", ["live_cluster", "rollback_cluster"])


def ordered(*nodeids: str) -> list[str]:
    return [item.nodeid for item in order_for_workers([SimpleNamespace(nodeid=nodeid) for nodeid in nodeids])]


def test_the_longest_scopes_go_first_in_their_order_each_in_collection_order():
    collection = [
        "tests/a/test_short.py::test_1",
        f"{INSTALL}::test_x",
        "tests/live/test_deploy.py::test_a",
        STEP1,
        f"{ROLLBACK}::test_first",
        "tests/a/test_short.py::test_2",
        "tests/live/test_deploy.py::test_b[p]",
        f"{ROLLBACK}::test_second",
        f"{INSTALL}::test_y",
        "tests/live/test_prune.py::test_c",
    ]
    assert ordered(*collection) == [
        "tests/live/test_deploy.py::test_a", "tests/live/test_deploy.py::test_b[p]", "tests/live/test_prune.py::test_c",
        f"{ROLLBACK}::test_first", f"{ROLLBACK}::test_second",
        f"{INSTALL}::test_x", f"{INSTALL}::test_y",
        STEP1,
        "tests/a/test_short.py::test_1", "tests/a/test_short.py::test_2",
    ]


def test_a_listed_module_goes_first_as_a_whole_and_a_parametrized_test_by_its_name():
    assert ordered("tests/a/test_s.py::t", "tests/gitops/test_checkov.py::test_one[kind]",
                   "tests/gitops/test_checkov.py::test_two", f"{STEP1}[x]") == [
        f"{STEP1}[x]", "tests/gitops/test_checkov.py::test_one[kind]", "tests/gitops/test_checkov.py::test_two",
        "tests/a/test_s.py::t"]


def test_every_table_entry_names_a_group_folder_module_or_test_that_exists():
    groups = set(PATH_GROUPS.values())
    assert set(FIXTURE_GROUPS.values()) <= groups
    for path in PATH_GROUPS:
        assert (REPO / path).is_dir() if path.endswith("/") else (REPO / path).is_file(), \
            f"tests/conftest.py PATH_GROUPS: {path} does not exist"
    for entry in LONGEST_FIRST:
        if entry in groups:
            continue
        module, _, test = entry.partition("::")
        assert (REPO / module).is_file(), f"tests/conftest.py LONGEST_FIRST: {module} does not exist"
        if test:
            assert re.search(rf"^def {re.escape(test)}\(", (REPO / module).read_text(), re.MULTILINE), entry


# A tree laid out as the suite is, run by the real scheduler in two workers: each test writes down its worker.
TREE = {
    "tests/early/test_short.py": "\n".join(f"def test_{n}(record):\n    record('short')\n" for n in range(4)),
    "tests/live/test_one.py": "\n".join(f"def test_{n}(live_cluster, record):\n    record('live')\n"
                                        for n in range(3)),
    "tests/live/test_rollback.py": "\n".join(f"def test_{n}(record):\n    record('rollback')\n" for n in range(3)),
    "tests/live/test_two.py": "\n".join(f"def test_{n}(live_cluster, record):\n    record('live')\n"
                                        for n in range(3)),
    "tests/late/test_more.py": "\n".join(f"def test_{n}(record):\n    record('short')\n" for n in range(2)),
}
CONFTEST = """
import os, time
import pytest

@pytest.fixture(scope="session")
def live_cluster():
    return "started in this worker"

@pytest.fixture
def record(request):
    def write(kind):
        time.sleep(0.2)  # long enough that the other worker is handed tests meanwhile
        with open(os.environ["RECORD"], "a") as out:
            out.write(f"{os.environ['PYTEST_XDIST_WORKER']} {kind} {request.node.nodeid}\\n")
    return write
"""


def lay_out(tmp_path: Path) -> None:
    for path, body in TREE.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(body)
    (tmp_path / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")


def test_two_workers_run_each_group_in_one_of_them_in_collection_order(tmp_path):
    lay_out(tmp_path)
    record = tmp_path / "record.txt"
    env = {**os.environ, "PYTHONPATH": str(REPO), "RECORD": str(record)}
    # The Makefile's options.
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", "-c",
                           str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path), "-n", "2", "--dist", "loadgroup",
                           "--no-loadscope-reorder", "tests"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = [line.split(" ", 2) for line in record.read_text().splitlines()]
    assert len(runs) == 15

    def workers(kind: str) -> set[str]:
        return {worker for worker, ran, _ in runs if ran == kind}

    assert len(workers("live")) == 1, runs
    assert len(workers("rollback")) == 1, runs
    rollback = [nodeid for _, ran, nodeid in runs if ran == "rollback"]
    assert rollback == [f"tests/live/test_rollback.py::test_{n}" for n in range(3)]
    # The live-cluster group is handed out first, so its worker starts with it.
    live_worker = workers("live").pop()
    assert [ran for worker, ran, _ in runs if worker == live_worker][:6] == ["live"] * 6, runs
    assert workers("short") == {"gw0", "gw1"}, "the short tests fill in on both workers"


def test_the_collection_lists_the_groups_in_the_order_they_are_handed_out(tmp_path):
    lay_out(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", "-c",
                           str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path), "--collect-only", "-q",
                           "-n", "2", "--dist", "loadgroup", "tests"],
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "worker groups: live-cluster (6 tests), rollback-cluster (3 tests)" in proc.stdout
    assert proc.stdout.index("tests/live/test_one.py::test_0") < proc.stdout.index("tests/early/test_short.py::test_0")


def make_test_command(*variables: str) -> list[str]:
    """The pytest command line `make test` runs (make -n: nothing is run)."""
    proc = subprocess.run(["make", "-n", "test", *variables], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    commands = [line.split() for line in proc.stdout.splitlines() if line.strip()]
    return next(words for words in commands if words[0].endswith("/bin/pytest"))


def test_make_test_runs_the_workers_with_the_groups_and_test_workers_0_runs_one_process():
    assert make_test_command()[1:] == ["-n", "auto", "--dist", "loadgroup", "--no-loadscope-reorder"]
    assert make_test_command("TEST_WORKERS=0")[1:] == []
