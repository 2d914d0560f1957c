"""The contract every DAG of dags/ keeps: an owner, retries, tags, a fixed start_date and a deliberate,
commented ``catchup``.

Owner, retries and tags are read from the parsed DAGs. "Fixed" and "deliberate" are properties of the
source, not of the parsed object (a ``datetime.now()`` start_date or Airflow's default catchup parse
fine), so those two are checked on the DAG files' syntax tree and comments.
"""

from __future__ import annotations

import ast
import io
import tokenize
from datetime import datetime
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py"))


def _dag_calls(tree: ast.Module) -> list[ast.Call]:
    """Every `@dag(...)` / `DAG(...)` call of a module."""

    def name(func: ast.expr) -> str:
        return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""

    return [node for node in ast.walk(tree) if isinstance(node, ast.Call) and name(node.func) in {"dag", "DAG"}]


def _module_constants(tree: ast.Module) -> dict[str, ast.expr]:
    return {
        target.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def _dag_definitions():
    for path in DAG_FILES:
        tree = ast.parse(path.read_text(), filename=str(path))
        for call in _dag_calls(tree):
            keywords = {kw.arg: kw for kw in call.keywords}
            dag_id = keywords["dag_id"].value.value if "dag_id" in keywords else None
            yield pytest.param(path, tree, call, id=f"{path.name}:{dag_id}")


def _comments_by_line(path: Path) -> dict[int, str]:
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    return {tok.start[0]: tok.string for tok in tokens if tok.type == tokenize.COMMENT}


def test_every_dag_file_defines_its_dags_with_explicit_ids():
    definitions = list(_dag_definitions())
    assert len(definitions) >= 9
    for param in definitions:
        assert "None" not in param.id, f"{param.id}: give the DAG an explicit dag_id"


@pytest.mark.parametrize(("path", "tree", "call"), list(_dag_definitions()))
def test_catchup_is_explicit_and_explained(path: Path, tree: ast.Module, call: ast.Call):
    keywords = {kw.arg: kw for kw in call.keywords}
    assert "catchup" in keywords, f"{path.name}: set catchup explicitly (True or False), do not inherit it"
    value = keywords["catchup"].value
    assert isinstance(value, ast.Constant) and isinstance(value.value, bool)
    line = value.lineno
    comments = _comments_by_line(path)
    nearby = " ".join(comments.get(n, "") for n in range(line - 4, line + 1)).lower()
    assert "catch" in nearby, f"{path.name}:{line}: say in a comment why this DAG does (not) catch up"


@pytest.mark.parametrize(("path", "tree", "call"), list(_dag_definitions()))
def test_start_date_is_a_fixed_literal(path: Path, tree: ast.Module, call: ast.Call):
    keywords = {kw.arg: kw.value for kw in call.keywords}
    assert "start_date" in keywords, f"{path.name}: give the DAG a start_date"
    node = keywords["start_date"]
    if isinstance(node, ast.Name):  # a module-level constant shared by the file's DAGs
        node = _module_constants(tree)[node.id]
    assert isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "datetime", (
        f"{path.name}: start_date must be a datetime(...) literal, not computed"
    )
    assert node.args and all(isinstance(arg, ast.Constant) for arg in node.args), (
        f"{path.name}: start_date's date must be constants (no now(), no days_ago())"
    )
    assert "tzinfo" in {kw.arg for kw in node.keywords}, f"{path.name}: make start_date timezone-aware"


def test_parsed_dags_keep_the_contract(dagbag):
    assert dagbag.dags
    for dag in dagbag.dags.values():
        assert dag.tags, f"{dag.dag_id}: no tags"
        assert isinstance(dag.start_date, datetime) and dag.start_date.tzinfo is not None, dag.dag_id
        assert dag.start_date < datetime.now(dag.start_date.tzinfo), f"{dag.dag_id}: start_date in the future"
        for task in dag.tasks:
            assert task.owner and task.owner != "airflow", f"{dag.dag_id}.{task.task_id}: set an owner"
            assert task.retries >= 1, f"{dag.dag_id}.{task.task_id}: no retries"
