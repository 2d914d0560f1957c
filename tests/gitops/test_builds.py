"""Every Flux Kustomization builds as kustomize-controller builds it, with post-build substitution."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from airflow_gitops.kustomize_controller import postbuild
from airflow_gitops.model import ERROR
from airflow_gitops.pipeline import render_cluster

from tests.helpers import make_settings, render


def test_every_kustomization_of_every_cluster_builds(cluster):
    state = render(cluster)
    build_errors = [str(f) for f in state.findings if f.severity == ERROR]
    assert build_errors == []
    applied = {r.applied_by for r in state.resources}
    assert {f"Kustomization flux-system/{name}" for name in ("infra-controllers", "infra-configs", "apps")} <= applied


def test_cluster_variables_are_substituted_into_the_airflow_values(cluster):
    values_maps = [r for r in render(cluster).resources if r.name.startswith("airflow-values-common")]
    assert values_maps, "the common values ConfigMap is rendered"
    text = values_maps[0].obj["data"]["values.yaml"]
    assert "${git_url}" not in text
    assert yaml.safe_load(text)["dags"]["gitSync"]["repo"] == render(cluster).variables["git_url"]


def test_braced_and_default_forms():
    # fluxcd/pkg envsubst toDefault: `=` gives its default for an empty value too, as `:=` does.
    sub = postbuild.Substitution({"name": "airflow", "empty": ""})
    assert sub.text("${name}-${missing:=fallback}-${empty:=x}-${empty=y}", "f") == "airflow-fallback-x-y"
    assert sub.missing == []


def test_double_dollar_escapes_and_command_substitution_is_left_alone():
    sub = postbuild.Substitution({})
    assert sub.text('$${literal} "$(printenv PASSWORD)"', "f") == '${literal} "$(printenv PASSWORD)"'


def test_a_missing_variable_is_reported_with_its_field():
    objects, findings = postbuild.substitute(
        [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"url": "${nope}"}}], {},
        lambda obj: "some/file.yaml")
    # As non-strict Flux leaves it: the empty text of a plain scalar reads back as null.
    assert objects[0]["data"]["url"] is None
    assert [(f.file, f.object, f.field) for f in findings] == [("some/file.yaml", "ConfigMap x", "data.url")]


def test_substitution_can_be_disabled_per_object():
    obj = {"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "x", "annotations": {postbuild.SUBSTITUTE_ANNOTATION: "disabled"}},
           "data": {"k": "${v}"}}
    objects, findings = postbuild.substitute([obj], {"v": "1"}, lambda o: "f")
    assert objects[0]["data"]["k"] == "${v}" and findings == []


def _kustomization(path: str, **spec) -> str:
    body = {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": "demo", "namespace": "flux-system"},
            "spec": {"interval": "10m", "path": path, "prune": True,
                     "sourceRef": {"kind": "GitRepository", "name": "flux-system"}, **spec}}
    return yaml.safe_dump(body)


@pytest.fixture
def tiny_repo(tmp_path) -> Path:
    (tmp_path / "pyproject.toml").write_text("[project]\nname='x'\n")
    (tmp_path / "clusters" / "t").mkdir(parents=True)
    app = tmp_path / "apps" / "demo"
    (app / "nested").mkdir(parents=True)
    # No kustomization.yaml: kustomize-controller generates one from the YAML files below the path.
    (app / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  v: ${color}\n")
    (app / "nested" / "cm2.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n")
    return tmp_path


def test_path_without_kustomization_yaml_is_generated_and_substitute_beats_substitute_from(tiny_repo):
    (tiny_repo / "clusters/t/vars.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cluster-vars\n  namespace: flux-system\n"
        "data:\n  color: blue\n")
    (tiny_repo / "clusters/t/demo.yaml").write_text(_kustomization(
        "./apps/demo", targetNamespace="demo",
        postBuild={"substitute": {"color": "red"}, "substituteFrom": [{"kind": "ConfigMap", "name": "cluster-vars"}]}))
    state = render_cluster(make_settings(tiny_repo), "t", charts=False)
    demo = {r.name: r for r in state.resources if r.applied_by == "Kustomization flux-system/demo"}
    assert sorted(demo) == ["a", "b"]
    assert demo["a"].obj["data"]["v"] == "red"
    assert {r.namespace for r in demo.values()} == {"demo"}


def test_a_yaml_file_that_is_no_object_fails_a_generated_build_as_in_flux(tiny_repo):
    # fluxcd/pkg kustomize scanManifests: "failed to decode Kubernetes YAML from <file>: missing kind in object".
    (tiny_repo / "apps/demo/notes.yaml").write_text("just: data\n")
    (tiny_repo / "clusters/t/demo.yaml").write_text(_kustomization("./apps/demo"))
    state = render_cluster(make_settings(tiny_repo), "t", charts=False)
    assert [str(f) for f in state.findings if f.severity == ERROR] == [
        "clusters/t/demo.yaml: Kustomization flux-system/demo: spec.path: kustomize build apps/demo failed: failed to "
        "decode Kubernetes YAML from apps/demo/notes.yaml: missing kind in object (Flux lists every YAML file of a "
        "path without kustomization.yaml)"]


@pytest.mark.parametrize("ignore", [True, False])
def test_a_missing_component_is_left_out_only_with_ignore_missing_components(tiny_repo, ignore):
    (tiny_repo / "clusters/t/demo.yaml").write_text(_kustomization(
        "./apps/demo", components=["../no-such-component"], ignoreMissingComponents=ignore))
    state = render_cluster(make_settings(tiny_repo), "t", charts=False)
    errors = [f.field for f in state.findings if f.severity == ERROR]
    built = sorted(r.name for r in state.resources if r.applied_by == "Kustomization flux-system/demo")
    assert (errors, built) == (([], ["a", "b"]) if ignore else (["spec.components[0]"], []))


def test_a_path_that_does_not_exist_names_the_kustomization_file(tiny_repo):
    (tiny_repo / "clusters/t/demo.yaml").write_text(_kustomization("./apps/nope"))
    state = render_cluster(make_settings(tiny_repo), "t", charts=False)
    assert [(f.file, f.object, f.field) for f in state.findings] == [
        ("clusters/t/demo.yaml", "Kustomization flux-system/demo", "spec.path")]
