"""Issue 16, class 6: a field of the wrong type, anywhere, and a value too big are findings that name the file, the
object and the field; never an internal error.

The rule: an object without a Kubernetes envelope (model.envelope_problems: string apiVersion and kind, a metadata
mapping with a string name, string labels and annotations) is a schema finding and is not applied, in a build's
output and in a chart's; every other field is judged by the schemas (Kubernetes, the CRDs, the chart's values
schema) plus `format: byte` (schemas.byte_fields); a check that meets a wrongly typed field the schemas reported says
it did not run. Post-build output is bounded as kustomize output is. test_mutated_fields.py tries the rule on every
field of the repository; this table names the variants the issue lists."""

from __future__ import annotations

import contextlib
import io
import re
import textwrap
from pathlib import Path

import pytest
from airflow_gitops.checks.schemas import byte_fields
from airflow_gitops.cli import main
from airflow_gitops.kustomize_controller import postbuild
from airflow_gitops.model import Resource, envelope_problems

from tests.helpers import edit, require_schemas, require_values_schema, schemas_dir

CONFIGS = "infrastructure/configs/base"


# --- the envelope ---------------------------------------------------------------------------------------------

GOOD = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "labels": {"a": "b"}}}


@pytest.mark.parametrize("change, field", [
    ({"metadata": ["name", "x"]}, "metadata"),
    ({"metadata": True}, "metadata"),
    ({"metadata": "x"}, "metadata"),
    ({"kind": 5}, "kind"),
    ({"kind": ""}, "kind"),
    ({"apiVersion": ["v1"]}, "apiVersion"),
    ({"metadata": {"name": 12}}, "metadata.name"),
    ({"metadata": {"name": None}}, "metadata.name"),
    ({"metadata": {"name": "x", "namespace": ["a"]}}, "metadata.namespace"),
    ({"metadata": {"name": "x", "labels": ["a"]}}, "metadata.labels"),
    ({"metadata": {"name": "x", "labels": {"a": 1}}}, "metadata.labels.a"),
    ({"metadata": {"name": "x", "annotations": {"a": None}}}, "metadata.annotations.a"),
    ({"metadata": {"name": "x", "annotations": "a=b"}}, "metadata.annotations"),
])
def test_an_object_without_an_envelope(change, field):
    assert field in [where for where, _ in envelope_problems({**GOOD, **change})]


@pytest.mark.parametrize("doc", [[GOOD], 5, "text", None])
def test_a_document_that_is_no_object(doc):
    assert [where for where, _ in envelope_problems(doc)] == ["(root)"]


def test_an_object_with_its_envelope():
    assert envelope_problems(GOOD) == [] and envelope_problems({**GOOD, "metadata": {"generateName": "x-"}}) == []


# --- base64 fields -------------------------------------------------------------------------------------------

def secret(data: dict, kind: str = "Secret", key: str = "data", **extra) -> Resource:
    return Resource({"apiVersion": "v1", "kind": kind, "metadata": {"name": "s", "namespace": "a"}, key: data, **extra},
                    "x.yaml", "Kustomization flux-system/apps")


@pytest.mark.parametrize("value, ok", [
    ("aGVsbG8=", True), ("aGVsbG8gd29ybGQ=\n", True), ("", True), ("aGk=", True),
    ("!!notbase64!!", False), ("aGVsbG8", False), ("aGVsbG8_", False), ("é", False), ("aGVsbG8=aGk=", False),
])
def test_secret_data_must_be_base64(value, ok):
    found = byte_fields(secret({"k": value}))
    assert (found == []) is ok
    if not ok:
        assert [(f.file, f.object, f.field) for f in found] == [("x.yaml", "Secret a/s", "data.k")]


def test_configmap_binary_data_must_be_base64():
    assert [f.field for f in byte_fields(secret({"blob": "%%%"}, "ConfigMap", "binaryData"))] == ["binaryData.blob"]


def test_sops_ciphertext_is_not_judged_as_base64():
    assert byte_fields(secret({"k": "ENC[AES256_GCM,data:x,type:str]"}, sops={"mac": "x"})) == []


# --- the post-build size bound -----------------------------------------------------------------------------------

def test_post_build_output_is_bounded():
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"},
                 "data": {f"k{i}": "${big}" for i in range(100)}}
    objects, findings = postbuild.substitute([configmap], {"big": "x" * 1_000_000}, lambda obj: "apps/x.yaml")
    assert objects == [configmap]  # not substituted: the text is never built
    assert [f"{f.file}: {f.object}: {f.field}" for f in findings] == ["apps/x.yaml: ConfigMap big: data.k67"]
    assert "over the 67,108,864-character bound" in findings[0].message


def test_the_bound_is_per_kustomization():
    many = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{n}"},
             "data": {f"k{i}": "${big}" for i in range(10)}} for n in range(10)]
    _, findings = postbuild.substitute(many, {"big": "x" * 1_000_000}, lambda obj: "apps/x.yaml")
    assert [f.object for f in findings] == ["ConfigMap c6", "ConfigMap c7", "ConfigMap c8", "ConfigMap c9"]


# --- end to end: the real command on a copy of the repository ----------------------------------------------------

def validate(repo: Path, *extra: str) -> tuple[int, str]:
    out = io.StringIO()
    folder = schemas_dir()  # the one require_schemas() found, also where the environment does not name it
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(["validate", "kind", "--repo", str(repo), *(["--schemas", str(folder)] if folder else []), *extra])
    return code, out.getvalue()


def add_manifest(repo: Path, name: str, text: str) -> str:
    (repo / CONFIGS / name).write_text(textwrap.dedent(text))
    edit(repo, f"{CONFIGS}/kustomization.yaml", "resources:\n", f"resources:\n  - {name}\n")
    return f"{CONFIGS}/{name}"


CASES = [
    # (id, how the copy is broken, expected line of validate's output)
    ("metadata as a list", lambda repo: add_manifest(repo, "bad.yaml", """\
        apiVersion: v1
        kind: ConfigMap
        metadata: [name, bad]
        data: {a: b}
        """), r"kind: clusters/kind/infrastructure.yaml: Kustomization flux-system/infra-configs: spec.path: kustomize "
              r"build infrastructure/configs/kind failed: .*'bad.yaml': missing metadata.name"),
    ("labels as a list", lambda repo: add_manifest(repo, "bad.yaml", """\
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: bad, namespace: airflow, labels: [a, b]}
        """), rf"kind: {CONFIGS}/bad.yaml: ConfigMap airflow/bad: metadata.labels: must be a mapping of strings"),
    ("a number where Flux wants a string", lambda repo: edit(
        repo, "apps/base/airflow/helmrelease.yaml", 'version: "1.22.0"', "version: 1.22"),
     r"kind: apps/base/airflow/helmrelease.yaml: HelmRelease airflow/airflow: spec.chart.spec.version: 1.22 is not "
     r"of type 'string'"),
    ("an interval as a number", lambda repo: edit(repo, "clusters/kind/apps.yaml", "interval: 10m", "interval: 10"),
     r"kind: clusters/kind/apps.yaml: Kustomization flux-system/apps: spec.interval: 10 is not of type 'string'"),
    ("undecodable base64", lambda repo: add_manifest(repo, "bad.yaml", """\
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: bad, namespace: airflow}
        binaryData: {blob: "%%%not-base64"}
        """), rf"kind: {CONFIGS}/bad.yaml: ConfigMap airflow/bad: binaryData.blob: not base64"),
    ("env as a mapping", lambda repo: add_manifest(repo, "bad.yaml", """\
        apiVersion: batch/v1
        kind: Job
        metadata: {name: bad, namespace: airflow}
        spec:
          template:
            spec:
              restartPolicy: Never
              containers:
                - name: c
                  image: docker.io/apache/airflow:3.3.2
                  env: {AIRFLOW__CORE__EXECUTOR: CeleryExecutor}
        """), rf"kind: {CONFIGS}/bad.yaml: Job airflow/bad: spec.template.spec.containers\[0\].env: .* is not of type "
              r"'array'"),
    ("a values section as a list", lambda repo: edit(repo, "charts-values/airflow/kind.yaml", "triggerer:\n",
                                                     "dags: [1, 2]\ntriggerer:\n"),
     r"kind: charts-values/airflow/kind.yaml: values of HelmRelease airflow/airflow: dags: \[1, 2\] is not of type "
     r"'object'"),
]


@pytest.mark.parametrize("breaks, expected", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_a_wrong_type_is_a_finding_naming_file_object_and_field(repo_copy, breaks, expected):
    require_schemas()
    if "values of HelmRelease" in expected:  # judged by the chart's values schema, not by the schema folder's
        require_values_schema()
    breaks(repo_copy)
    code, output = validate(repo_copy)
    assert code == 1 and "internal error" not in output and "Traceback" not in output, output
    assert re.search(expected, output, re.M), output


def test_a_chart_without_values_yaml_renders(repo_copy, tmp_path):
    require_schemas()
    chart = tmp_path / "airflow"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: airflow\nversion: 1.22.0\n")
    (chart / "templates/cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    code, output = validate(repo_copy, "--chart", f"airflow={chart}", "--no-render-cache")
    assert code in (0, 1) and "internal error" not in output and "Traceback" not in output, output


def test_a_chart_that_does_not_load_is_a_finding(repo_copy, tmp_path):
    require_schemas()
    chart = tmp_path / "airflow"
    chart.mkdir()
    (chart / "Chart.yaml").write_text("name: [\n")
    code, output = validate(repo_copy, "--chart", f"airflow={chart}", "--no-render-cache")
    assert code == 1 and "internal error" not in output, output
    assert re.search(rf"^kind: apps/base/airflow/helmrelease.yaml: HelmRelease airflow/airflow: spec.chart: chart "
                     rf"{chart} cannot be loaded", output, re.M), output
