"""The layout of dags/ (docs/dags.md, "Where a DAG lives, and what it shares"): each file is named after the DAG it holds,
and what the DAGs share (default_args, connection ids) is defined once, in dags/include/defaults.py.

The file rule is checked on the DAGs as Airflow's own DagBag parses them (a file's DAGs are the ones
whose ``fileloc`` it is), so a DAG built in a loop or by a factory counts as well as a literal ``@dag``.
The sharing rules are properties of the source (a copied dict parses to the same DAG as an imported
one), so they are checked on each file's syntax tree. Every check also runs on a file broken on
purpose, to show it fails with the file, the line and the DAG.
"""

from __future__ import annotations

import ast
import os
import textwrap
from collections import defaultdict
from collections.abc import Collection
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(DAGS_DIR.glob("*.py"))
SHARED_MODULE = "include.defaults"
SHARED_FILE = DAGS_DIR / "include" / "defaults.py"


# --- each file is named after its DAG(s) ------------------------------------------------------------


def file_name_finding(stem: str, dag_ids: Collection[str]) -> str | None:
    """Why a DAG file named STEM.py that holds DAG_IDS breaks the naming rule, or None if it keeps it.

    The rule: one DAG whose dag_id is the file's stem, or a producer/consumer pair exchanging one asset,
    ``producer_<stem>`` and ``consumer_<stem>``, in a file named after that asset.
    """
    ids = set(dag_ids)
    if ids == {stem} or ids == {f"producer_{stem}", f"consumer_{stem}"}:
        return None
    if not ids:
        return "holds no DAG; move helpers to dags/include/ (which .airflowignore skips)"
    return (
        f"holds {sorted(ids)}; a DAG file holds one DAG and is named after its dag_id "
        f"({' and '.join(f'{i}.py' for i in sorted(ids))}), or holds producer_<asset> and consumer_<asset> "
        "and is named <asset>.py (docs/dags.md)"
    )


def file_name_findings(dags_dir: Path, dagbag) -> list[str]:
    """Every file the dag-processor would parse in DAGS_DIR that breaks the naming rule."""
    from airflow.utils.file import list_py_file_paths

    dag_ids_by_file: dict[str, set[str]] = defaultdict(set)
    for dag in dagbag.dags.values():
        dag_ids_by_file[os.path.relpath(dag.fileloc, dags_dir)].add(dag.dag_id)
    # safe_mode=False lists every .py file not in .airflowignore, also those without the words
    # "airflow" and "dag" that the dag-processor's safe mode would skip: a stray helper is a finding.
    listed = {os.path.relpath(p, dags_dir) for p in list_py_file_paths(str(dags_dir), safe_mode=False)}
    findings = []
    for relpath in sorted(listed | set(dag_ids_by_file)):
        finding = file_name_finding(Path(relpath).stem, dag_ids_by_file.get(relpath, set()))
        if finding:
            findings.append(f"dags/{relpath}: {finding}")
    return findings


@pytest.mark.parametrize(
    ("stem", "dag_ids"),
    [
        ("parallel_dag", ["parallel_dag"]),
        ("partner_users", ["producer_partner_users", "consumer_partner_users"]),
    ],
)
def test_naming_rule_accepts_one_dag_named_like_its_file_or_a_pair_named_after_its_asset(stem, dag_ids):
    assert file_name_finding(stem, dag_ids) is None


@pytest.mark.parametrize(
    ("stem", "dag_ids", "expected"),
    [
        ("assets_or_time", ["consumer_users_or_daily"], "consumer_users_or_daily.py"),
        ("user_processing", ["user_processing", "consumer_users_guarded"], "holds one DAG"),
        ("partner_users", ["producer_remote_partner", "consumer_partner_users"], "producer_<asset>"),
        ("partner_users", ["consumer_partner_users"], "consumer_partner_users.py"),
        ("crm", ["producer_crm", "consumer_crm", "producer_billing"], "holds one DAG"),
        ("helpers", [], "holds no DAG"),
    ],
)
def test_naming_rule_rejects_other_layouts(stem, dag_ids, expected):
    finding = file_name_finding(stem, dag_ids)
    assert finding and expected in finding, finding


def test_every_dag_file_is_named_after_its_dags(dagbag):
    assert dagbag.dags, "no DAG parsed"
    assert file_name_findings(DAGS_DIR, dagbag) == []


def test_a_misnamed_file_and_a_stray_helper_are_found_in_a_parsed_folder(tmp_path: Path):
    from airflow.dag_processing.dagbag import BundleDagBag

    (tmp_path / "assets_all_of.py").write_text(
        textwrap.dedent(
            """
            from datetime import UTC, datetime
            from airflow.sdk import dag

            for dag_id in ("producer_crm", "consumer_crm_and_billing"):
                dag(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC))(lambda: None)()
            """
        )
    )
    (tmp_path / "parallel_dag.py").write_text(
        "from datetime import UTC, datetime\nfrom airflow.sdk import DAG\n\n"
        "parallel = DAG(dag_id='parallel_dag', schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC))\n"
    )
    (tmp_path / "helpers.py").write_text("def flatten(row):\n    return row\n")
    bag = BundleDagBag(dag_folder=tmp_path, bundle_path=tmp_path, bundle_name="layout-test")
    assert bag.import_errors == {}

    findings = file_name_findings(tmp_path, bag)

    assert [f.split(":")[0] for f in findings] == ["dags/assets_all_of.py", "dags/helpers.py"]
    assert "['consumer_crm_and_billing', 'producer_crm']" in findings[0]
    assert "holds no DAG" in findings[1]


# --- default_args and connection ids come from include/defaults.py ----------------------------------


def _names_imported_from_shared_module(tree: ast.Module) -> set[str]:
    return {
        alias.asname or alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module == SHARED_MODULE
        for alias in node.names
    }


def _assigned_names(tree: ast.Module) -> list[ast.Name]:
    targets: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets.extend(node.targets)
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets.append(node.target)
    return [t for t in targets if isinstance(t, ast.Name)]


def _default_args_override(value: ast.expr) -> ast.Dict | None:
    """The dict literal of ``DEFAULT_ARGS | {...}``, or None."""
    is_union = isinstance(value, ast.BinOp) and isinstance(value.op, ast.BitOr)
    if is_union and isinstance(value.left, ast.Name) and value.left.id == "DEFAULT_ARGS" and isinstance(value.right, ast.Dict):
        return value.right
    return None


def _dag_id(call: ast.Call) -> str | None:
    for kw in call.keywords:
        if kw.arg == "dag_id" and isinstance(kw.value, ast.Constant):
            return kw.value.value
    return None


def _line(finding: str) -> int:
    """The line number of a "file:line: message" finding (ast.walk visits nodes breadth-first, not by line)."""
    return int(finding.split(":")[1].split(" ")[0])


def default_args_findings(relpath: str, source: str) -> list[str]:
    """Where a DAG file defines default_args itself instead of starting from include.defaults.DEFAULT_ARGS.

    Allowed: ``default_args=DEFAULT_ARGS`` and ``default_args=DEFAULT_ARGS | {"key": value, ...}`` (only
    the difference), with DEFAULT_ARGS imported from include.defaults.
    """
    tree = ast.parse(source, filename=relpath)
    imported = _names_imported_from_shared_module(tree)
    findings = [
        f"{relpath}:{name.lineno}: assigns {name.id}; import DEFAULT_ARGS from {SHARED_MODULE} instead"
        for name in _assigned_names(tree)
        if "default_args" in name.id.lower()
    ]
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for kw in node.keywords:
            if kw.arg != "default_args":
                continue
            where = f"{relpath}:{kw.value.lineno}" + (f" (DAG {_dag_id(node)})" if _dag_id(node) else "")
            override = _default_args_override(kw.value)
            uses_shared = (isinstance(kw.value, ast.Name) and kw.value.id == "DEFAULT_ARGS") or override is not None
            if not uses_shared:
                findings.append(
                    f"{where}: default_args={ast.unparse(kw.value)}; write default_args=DEFAULT_ARGS, or "
                    'DEFAULT_ARGS | {"key": ...} for what differs'
                )
            elif "DEFAULT_ARGS" not in imported:
                findings.append(f"{where}: DEFAULT_ARGS is not imported from {SHARED_MODULE}")
            elif override is not None and not all(
                isinstance(k, ast.Constant) and isinstance(k.value, str) for k in override.keys
            ):
                findings.append(f"{where}: override default_args key by key, with string keys (no ** spread)")
    return sorted(findings, key=_line)


def connection_id_findings(relpath: str, source: str) -> list[str]:
    """Where a DAG file names a connection id itself instead of importing its constant from include.defaults."""
    tree = ast.parse(source, filename=relpath)
    imported = _names_imported_from_shared_module(tree)
    findings = [
        f"{relpath}:{name.lineno}: defines {name.id}; connection ids are defined once, in {SHARED_MODULE}"
        for name in _assigned_names(tree)
        if name.id.upper().endswith("CONN_ID")
    ]
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        uses = [(kw.arg, kw.value) for kw in node.keywords if kw.arg and kw.arg.endswith("conn_id")]
        if isinstance(node.func, ast.Attribute) and node.func.attr == "get_connection" and node.args:
            uses.append(("get_connection()", node.args[0]))
        for arg, value in uses:
            if not (isinstance(value, ast.Name) and value.id in imported):
                findings.append(
                    f"{relpath}:{value.lineno}: {arg}={ast.unparse(value)}; use a *_CONN_ID constant "
                    f"imported from {SHARED_MODULE}"
                )
    return sorted(findings, key=_line)


def _relpath(path: Path) -> str:
    return f"dags/{path.relative_to(DAGS_DIR)}"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_takes_default_args_from_include_defaults(path: Path):
    assert default_args_findings(_relpath(path), path.read_text()) == []


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_takes_connection_ids_from_include_defaults(path: Path):
    assert connection_id_findings(_relpath(path), path.read_text()) == []


def test_shared_names_are_defined_only_in_include_defaults():
    definitions = defaultdict(list)
    for path in sorted(DAGS_DIR.rglob("*.py")):
        for name in _assigned_names(ast.parse(path.read_text(), filename=str(path))):
            if name.id == "DEFAULT_ARGS" or name.id.endswith("_CONN_ID"):
                definitions[name.id].append(_relpath(path))
    assert definitions, f"{_relpath(SHARED_FILE)} defines nothing"
    elsewhere = {name: files for name, files in definitions.items() if files != [_relpath(SHARED_FILE)]}
    assert not elsewhere, f"define these once, in {_relpath(SHARED_FILE)}: {elsewhere}"


def test_default_args_overrides_change_something(dagbag):
    """``DEFAULT_ARGS | {"retries": 2}`` when the shared value is 2 is a copy, not a difference."""
    from include.defaults import DEFAULT_ARGS

    copies = []
    for path in DAG_FILES:
        tree = ast.parse(path.read_text(), filename=str(path))
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            for kw in call.keywords:
                override = _default_args_override(kw.value) if kw.arg == "default_args" else None
                if override is None:
                    continue
                parsed = dagbag.dags[_dag_id(call)].default_args
                copies += [
                    f"{_relpath(path)}:{key.lineno} (DAG {_dag_id(call)}): {key.value}={parsed[key.value]!r} "
                    "is already the shared value"
                    for key in override.keys
                    if isinstance(key, ast.Constant)
                    and key.value in DEFAULT_ARGS
                    and parsed[key.value] == DEFAULT_ARGS[key.value]
                ]
    assert not copies, copies


BROKEN_DAG_FILE = """
from datetime import UTC, datetime, timedelta

from airflow.providers.postgres.hooks.postgres import PostgresHook
from airflow.sdk import BaseHook, dag, task
from include.defaults import DEFAULT_ARGS, POSTGRES_CONN_ID

REMOTE_CONN_ID = "airflow_remote"
my_default_args = {"owner": "data-eng", "retries": 2}


@dag(
    dag_id="broken",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    default_args={"owner": "data-eng", "retries": 2, "retry_delay": timedelta(minutes=1)},
)
def broken():
    @task
    def read():
        PostgresHook(postgres_conn_id="postgres").get_first("SELECT 1")
        BaseHook.get_connection(REMOTE_CONN_ID)
        PostgresHook(postgres_conn_id=POSTGRES_CONN_ID)  # the right way: no finding

    read()


@dag(dag_id="broken_too", default_args=DEFAULT_ARGS | {**my_default_args})
def broken_too():
    pass
"""


def test_copied_default_args_are_found_with_file_line_and_dag():
    assert default_args_findings("dags/broken.py", BROKEN_DAG_FILE) == [
        "dags/broken.py:9: assigns my_default_args; import DEFAULT_ARGS from include.defaults instead",
        "dags/broken.py:15 (DAG broken): default_args={'owner': 'data-eng', 'retries': 2, 'retry_delay': "
        'timedelta(minutes=1)}; write default_args=DEFAULT_ARGS, or DEFAULT_ARGS | {"key": ...} for what differs',
        "dags/broken.py:27 (DAG broken_too): override default_args key by key, with string keys (no ** spread)",
    ]


def test_default_args_not_imported_from_include_defaults_are_found():
    source = 'from common import DEFAULT_ARGS\n\nDAG(dag_id="x", default_args=DEFAULT_ARGS)\n'
    assert default_args_findings("dags/x.py", source) == [
        "dags/x.py:3 (DAG x): DEFAULT_ARGS is not imported from include.defaults",
    ]


def test_connection_ids_named_in_a_dag_file_are_found_with_file_and_line():
    assert connection_id_findings("dags/broken.py", BROKEN_DAG_FILE) == [
        "dags/broken.py:8: defines REMOTE_CONN_ID; connection ids are defined once, in include.defaults",
        "dags/broken.py:20: postgres_conn_id='postgres'; use a *_CONN_ID constant imported from include.defaults",
        "dags/broken.py:21: get_connection()=REMOTE_CONN_ID; use a *_CONN_ID constant imported from include.defaults",
    ]
