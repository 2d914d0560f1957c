"""`validate all` in worker processes prints byte for byte what a serial run prints, exit code included."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from airflow_gitops import parallel

from tests.helpers import REPO, edit


def _validate_all(repo, workers: str, tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, parallel.PARALLEL_ENV: workers, "AIRFLOW_GITOPS_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": str(REPO / "scripts")}
    return subprocess.run([sys.executable, "-m", "airflow_gitops", "validate", "all", "--repo", str(repo)],
                          capture_output=True, text=True, env=env, timeout=300)


def _assert_same(repo, tmp_path) -> subprocess.CompletedProcess:
    serial = _validate_all(repo, "0", tmp_path)
    in_parallel = _validate_all(repo, "2", tmp_path)
    assert (in_parallel.returncode, in_parallel.stdout, in_parallel.stderr) == \
        (serial.returncode, serial.stdout, serial.stderr)
    return serial


def test_parallel_validate_prints_what_serial_prints_on_the_repository(tmp_path):
    result = _assert_same(REPO, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "kind: " in result.stdout and "eks: " in result.stdout


def test_parallel_validate_prints_what_serial_prints_on_a_broken_copy(repo_copy, tmp_path):
    edit(repo_copy, "apps/base/airflow/helmrelease.yaml", "kind: HelmRelease", "kind: HelmReleas")
    result = _assert_same(repo_copy, tmp_path)
    assert result.returncode != 0 and result.stdout


def _exit_hard(code: int) -> int:
    if code:
        os._exit(code)
    return code


def test_a_worker_that_dies_is_one_result_not_a_hang_or_traceback(monkeypatch):
    monkeypatch.setenv(parallel.PARALLEL_ENV, "2")
    outcomes = list(parallel.run_in_order(_exit_hard, [(0,), (3,), (0,)]))
    # The dead worker broke the tasks still in the pool; they ran again alone, so only its own task is lost.
    assert outcomes[0] == (0, None)
    assert outcomes[1][0] is None and isinstance(outcomes[1][1], parallel.WorkerCrashed)
    assert outcomes[2] == (0, None)
    # The pool is started afresh after a crash.
    assert list(parallel.run_in_order(_exit_hard, [(0,), (0,)])) == [(0, None), (0, None)]


def _fail(message: str) -> None:
    raise SystemExit(message)


def test_a_task_error_comes_back_with_its_type_and_message(monkeypatch):
    monkeypatch.setenv(parallel.PARALLEL_ENV, "2")
    (_, first), (_, second) = parallel.run_in_order(_fail, [("one",), ("two",)])
    assert isinstance(first, SystemExit) and first.code == "one"
    assert isinstance(second, SystemExit) and second.code == "two"


@pytest.mark.parametrize(("env", "tasks", "workers"), [("0", 2, 0), ("1", 2, 0), ("2", 1, 0), ("4", 2, 2)])
def test_worker_count(monkeypatch, env, tasks, workers):
    monkeypatch.setenv(parallel.PARALLEL_ENV, env)
    assert parallel.workers_for(tasks) == workers


def test_a_bad_worker_count_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(parallel.PARALLEL_ENV, "many")
    with pytest.raises(SystemExit, match="AIRFLOW_GITOPS_PARALLEL"):
        parallel.workers_for(2)
