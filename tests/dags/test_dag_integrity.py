"""Every file of dags/ parses under Airflow 3.3.2 as the dag-processor parses it: no import errors,
no serialization errors, no cycles, the expected DAGs, and cheap enough to re-parse all day."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import DAG_IDS

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"

# Each DAG lives in the file named after its dag_id (docs/dags.md).
EXPECTED_DAGS = {dag_id: f"{dag_id}.py" for dag_id in DAG_IDS}

# The target; AIRFLOW_GITOPS_PARSE_BUDGET loosens it on a slow machine without editing tests.
PARSE_BUDGET_SECONDS = float(os.environ.get("AIRFLOW_GITOPS_PARSE_BUDGET", "0.3"))


@pytest.fixture(scope="module")
def processor_report():
    """The dag-processor's own DagFileProcessorProcess over every file, in a fresh process."""
    from airflow_gitops.dev.dagparse import parse_report

    return parse_report(DAGS_DIR, repeat=3)


def test_dag_processor_parses_every_file_without_errors(processor_report):
    errors = {r.file: r.import_errors for r in processor_report if r.import_errors}
    assert not errors, errors
    assert {r.file for r in processor_report} == set(EXPECTED_DAGS.values()), (
        "the dag-processor lists other files than expected: is dags/include/ still in .airflowignore?"
    )


def test_dag_processor_finds_the_expected_dags(processor_report):
    found = {dag_id: r.file for r in processor_report for dag_id in r.dag_ids}
    assert found == EXPECTED_DAGS


def test_each_file_parses_within_budget(processor_report):
    slow = {r.file: r.seconds for r in processor_report if r.seconds > PARSE_BUDGET_SECONDS}
    assert not slow, f"parse time over {PARSE_BUDGET_SECONDS}s (dag-processor timing): {slow}"


def test_in_process_dagbag_has_no_import_errors_and_no_cycles(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == set(EXPECTED_DAGS)
    for dag in dagbag.dags.values():
        dag.check_cycle()  # raises on a cycle (DagBag already refuses cyclic DAGs; this says which)
        assert dag.tasks, f"{dag.dag_id} has no task"


def test_helpers_are_not_parsed_as_dag_files():
    from airflow.utils.file import list_py_file_paths

    listed = {os.path.relpath(p, DAGS_DIR) for p in list_py_file_paths(DAGS_DIR, safe_mode=False)}
    assert not {p for p in listed if p.startswith("include")}, listed
