"""The tool's side of the comparison with `flux build` (operate/flux_build.py): which Kustomizations, the
Kustomization file it hands the Flux CLI, and the normalisation both sides are printed in. The comparison itself
runs with the real Flux CLI in tests/live/test_flux_build.py.
"""

from __future__ import annotations

import pytest
from airflow_gitops.kustomize_controller import postbuild
from airflow_gitops.kustomize_controller.api import Kustomization
from airflow_gitops.kustomize_controller.postbuild import collect_variables
from airflow_gitops.model import ClusterState, Resource
from airflow_gitops.operate import flux_build
from airflow_gitops.pipeline import render_cluster

from tests.helpers import REPO, make_settings

SCRIPT = REPO / "scripts" / "flux-build-compare.sh"

def test_every_kustomization_of_both_clusters_is_listed():
    for cluster in ("kind", "eks"):
        state = render_cluster(make_settings(), cluster, charts=False)
        # eks backs the database up before an Airflow version change (README "Operate").
        backup = [("flux-system/db-backup", "infrastructure/backups/eks")] if cluster == "eks" else []
        assert [(k.ref, k.path) for k in flux_build.kustomizations(state)] == [
            ("flux-system/flux-system", f"clusters/{cluster}"), ("flux-system/apps", f"apps/{cluster}"), *backup,
            ("flux-system/infra-configs", f"infrastructure/configs/{cluster}"),
            ("flux-system/infra-controllers", f"infrastructure/controllers/{cluster}")]


def test_sops_data_is_masked_on_both_sides_as_flux_build_prints_it():
    encrypted = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "airflow"},
                 "stringData": {"password": "ENC[AES256_GCM,data:abc,type:str]"},
                 "sops": {"mac": "ENC[AES256_GCM,data:xyz,type:str]", "version": "3.9.0"}}
    assert "password: '**SOPS**'" in flux_build.canonical([encrypted])
    assert "sops:" not in flux_build.canonical([encrypted])


def test_the_normalisation_keeps_a_number_and_a_string_apart():
    # What flux build prints for an unquoted `replicas: ${n}` (sigs.k8s.io/yaml writes strings quoted when needed).
    flux_text = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  replicas: 3\n  s: "3"\n  big: 1e+21\n'
    as_flux = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
               "data": {"replicas": 3, "s": "3", "big": 1e21}}
    assert flux_build.canonical_text(flux_text) == flux_build.canonical([as_flux])
    as_string = {**as_flux, "data": {**as_flux["data"], "replicas": "3"}}
    assert flux_build.canonical_text(flux_text) != flux_build.canonical([as_string])


# --- render matches kustomize-controller's substitution (fluxcd/pkg kustomize.SubstituteVariables) ---------------

def test_variable_values_lose_their_newlines_as_in_flux():
    vars_cm = Resource({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "cluster-vars", "namespace": "flux-system"},
                        "data": {"git_branch": "main\n"}}, "clusters/x/cluster-vars.yaml", "root")
    ks = Resource({"kind": "Kustomization", "metadata": {"name": "apps", "namespace": "flux-system"}}, "x", "root")
    post_build = {"substituteFrom": [{"kind": "ConfigMap", "name": "cluster-vars"}], "substitute": {"a": "b\nc"}}
    ks.obj["spec"] = {"postBuild": post_build}
    assert collect_variables(ClusterState("x", resources=[vars_cm]), Kustomization.parse(ks)) == {
        "git_branch": "main", "a": "bc"}


@pytest.mark.parametrize("where", ["labels", "annotations"])
def test_substitution_disabled_by_label_or_annotation(where):
    obj = {"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "x", where: {"kustomize.toolkit.fluxcd.io/substitute": "disabled"}},
           "data": {"v": "${git_branch}"}}
    [result], findings = postbuild.substitute([obj], {"git_branch": "main"}, lambda o: "x.yaml")
    assert result["data"]["v"] == "${git_branch}" and findings == []


def test_unknown_kustomization_is_a_clear_error(tmp_path, capsys):
    from airflow_gitops.cli import main

    assert main(["flux-build", "kind", "flux-system/nope", "--repo", str(REPO),
                 "--kustomization-file-out", str(tmp_path / "ks.yaml")]) == 2
    assert "error: cluster kind has no Flux Kustomization 'flux-system/nope' (has: flux-system/flux-system, " \
           "flux-system/apps, flux-system/infra-configs, flux-system/infra-controllers)" in capsys.readouterr().err
