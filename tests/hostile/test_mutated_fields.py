"""Issue 16, class 6: bad types and big values are findings, never internal errors.

A property-based test (Hypothesis) over the repository's own objects: it picks any field of any YAML document the
repository holds (Flux objects, Kubernetes objects, kustomizations, chart values; the document itself included),
changes its type or its size, and runs the real `validate` and `diff` on the result. Each must exit 0, 1 or 2 and
never print "internal error" or a traceback.

It is deterministic and bounded: `derandomize=True` makes the examples a function of the test's source, and
MAX_EXAMPLES (AIRFLOW_GITOPS_MUTATION_EXAMPLES, default 24) bounds the run to about a minute on this machine.
AIRFLOW_GITOPS_MUTATION_SEARCH=1 drops the derandomisation to explore new examples (how the bugs it found were
found); a failure prints the field and the mutation, and `@example` rows below keep each one found."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow_gitops.cli import main
from airflow_gitops.source.repository import copy_desired_state
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.helpers import REPO, require_schemas

MAX_EXAMPLES = int(os.environ.get("AIRFLOW_GITOPS_MUTATION_EXAMPLES", "24"))
SEARCH = os.environ.get("AIRFLOW_GITOPS_MUTATION_SEARCH") == "1"
FOLDERS = ("clusters", "infrastructure", "apps", "charts-values")


@dataclass(frozen=True)
class Field:
    file: str
    document: int
    path: tuple[Any, ...]

    def __str__(self) -> str:
        return f"{self.file} document {self.document} field {'.'.join(map(str, self.path)) or '(document)'}"


def _load(file: Path) -> list[Any]:
    return list(yaml.safe_load_all(file.read_text()))


def _paths(node: Any, path: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*path, index))


def repository_fields() -> list[Field]:
    """Every field of every YAML document of the desired state, in a stable order."""
    found = []
    for folder in FOLDERS:
        for file in sorted((REPO / folder).rglob("*.y*ml")):
            for index, doc in enumerate(_load(file)):
                found += [Field(str(file.relative_to(REPO)), index, path) for path in _paths(doc, ())]
    return found


FIELDS = repository_fields()


def _nested(depth: int) -> Any:
    node: Any = "x"
    for _ in range(depth):
        node = {"a": node}
    return node


# What a field can become: another type, another size, another shape.
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["", " ", "${undefined_variable}", "$(X)", "0x1F", "1e3", "yes", "~", "!!notbase64!!", "é\u202e",
                     "a: b", "- a", "{", "'", "ENC[AES256_GCM,data:x,type:str]", "-----BEGIN RSA PRIVATE KEY-----"]),
)
SIZES = st.one_of(
    st.integers(1_000, 300_000).map(lambda n: "x" * n),
    st.integers(100, 5_000).map(lambda n: ["x"] * n),
    st.integers(100, 3_000).map(lambda n: {f"k{i}": i for i in range(n)}),
    st.integers(40, 130).map(_nested),
)
SHAPES = st.sampled_from(["as-list", "as-mapping", "delete", "key-as-int", "key-as-null", "key-renamed"])
MUTATIONS = st.one_of(SCALARS.map(lambda v: ("value", v)), SIZES.map(lambda v: ("value", v)),
                      SHAPES.map(lambda s: (s, None)))


def mutate(doc: Any, path: tuple[Any, ...], mutation: tuple[str, Any]) -> Any:
    """`doc` with the field at `path` changed; the document itself when `path` is empty."""
    kind, value = mutation
    if not path:
        return value if kind == "value" else [doc] if kind == "as-list" else {"x": doc} if kind == "as-mapping" else None
    parent: Any = doc
    for part in path[:-1]:
        parent = parent[part]
    key = path[-1]
    old = parent[key]
    if kind == "value":
        parent[key] = value
    elif kind == "as-list":
        parent[key] = [old]
    elif kind == "as-mapping":
        parent[key] = {"x": old}
    elif kind == "delete":
        del parent[key]
    elif isinstance(parent, dict):  # the key itself: a number, a null, another name
        new_key = {"key-as-int": 7, "key-as-null": None, "key-renamed": f"{key}x"}[kind]
        parent[new_key] = parent.pop(key)
    else:
        parent[key] = {str(kind): old}
    return doc


@dataclass
class Run:
    code: int
    output: str


def run(*argv: str) -> Run:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(list(argv))
    return Run(code, out.getvalue())


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A git repository holding a copy of the desired state (commit `base`): each example changes one file of the
    working tree, and puts it back."""
    require_schemas()
    repo = tmp_path_factory.mktemp("mutated")
    copy_desired_state(REPO, repo)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "base"], cwd=repo, check=True)
    return repo


def cluster_of(file: str) -> str:
    for cluster in ("eks", "kind"):
        if f"/{cluster}/" in file or file.endswith(f"/{cluster}.yaml"):
            return cluster
    return "kind"


def check(workspace: Path, field: Field, mutation: tuple[str, Any]) -> None:
    target = workspace / field.file
    original = target.read_text()
    docs = _load(target)
    docs[field.document] = mutate(docs[field.document], field.path, mutation)
    target.write_text(yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True))
    cluster = cluster_of(field.file)
    try:
        for argv in (["validate", cluster], ["diff", cluster, "--base", "main"]):
            result = run(*argv, "--repo", str(workspace))
            shown = f"{' '.join(argv)} after {field} became {mutation!r:.200}: exit {result.code}\n{result.output[-3000:]}"
            assert result.code in (0, 1, 2), shown
            assert "internal error" not in result.output and "Traceback" not in result.output, shown
    finally:
        target.write_text(original)


def field_at(file: str, *path: Any) -> Field:
    """The first field at `path` in `file`: the examples below name fields by place, not by document number."""
    return next(field for field in FIELDS if field.file == file and field.path == path)


@settings(max_examples=MAX_EXAMPLES, derandomize=not SEARCH, deadline=None, database=None, print_blob=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.differing_executors])
@given(field=st.sampled_from(FIELDS), mutation=MUTATIONS)
# Each internal error this test found, kept (they run on every run, before the generated examples):
# metadata not a mapping (source/provenance.py read it before any build; model.Resource.name)
@example(field=field_at("infrastructure/controllers/eks/storage-class.yaml", "metadata"), mutation=("value", ["x"]))
@example(field=field_at("infrastructure/configs/eks/external-secrets.yaml", "metadata"), mutation=("value", True))
# labels as a list pass kustomize (kustomize_controller/postbuild.py substitution_disabled)
@example(field=field_at("infrastructure/controllers/base/namespaces.yaml", "metadata", "labels"),
         mutation=("value", ["x"] * 200))
# a number where a mapping is read (checks/aws.py secret_names)
@example(field=field_at("infrastructure/configs/eks/external-secrets.yaml", "spec", "dataFrom", 0),
         mutation=("value", 1.5))
# a mapping where kustomize wants a path (source/containment.py: a 4 kB file name)
@example(field=field_at("infrastructure/configs/eks/kustomization.yaml", "resources", 0), mutation=("value", _nested(60)))
def test_a_mutated_field_is_a_finding_never_an_internal_error(workspace, field, mutation):
    check(workspace, field, mutation)


def test_the_mutations_reach_every_file():
    """The fields sampled from are every file's that holds a document (each cluster's gotk-components.yaml
    included): no folder of the desired state is left out."""
    files = {field.file for field in FIELDS}
    expected = {str(p.relative_to(REPO)) for folder in FOLDERS for p in (REPO / folder).rglob("*.y*ml")
                if any(doc is not None for doc in _load(p))}
    assert files == expected and len(FIELDS) > 1000
