"""scripts/flux-build-compare.sh, the CI job that compares the tool's builds with the real Flux CLI's.

The real Flux CLI cannot run here (no network to install it), so these tests put a MOCK `flux` on PATH. It is
clearly not Flux: it prints builds the test prepared and records how it was called. They prove the script's
plumbing (which Kustomizations, which flags, which Kustomization file) and that it fails on any difference and
passes on equality whatever the order and formatting. That the tool matches real Flux is proven only by the CI
job `flux-build` in .github/workflows/ci.yaml, against Flux CLI 2.9.5.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from airflow_gitops.kustomize_controller import postbuild
from airflow_gitops.kustomize_controller.api import Kustomization
from airflow_gitops.kustomize_controller.postbuild import collect_variables
from airflow_gitops.model import ClusterState, Resource
from airflow_gitops.operate import flux_build
from airflow_gitops.pipeline import render_cluster

from tests.helpers import REPO, make_settings

SCRIPT = REPO / "scripts" / "flux-build-compare.sh"

MOCK_FLUX = f"""#!{sys.executable}
# MOCK of the Flux CLI, for tests only: this is NOT Flux. It prints the build the test prepared for --path
# (in $MOCK_FLUX_BUILDS) and records its arguments and the Kustomization file it was given (in $MOCK_FLUX_CALLS).
import json, os, pathlib, shutil, sys
args = sys.argv[1:]
if args == ["--version"]:
    print("flux version 2.9.5 (MOCK)")
    sys.exit(0)
calls = pathlib.Path(os.environ["MOCK_FLUX_CALLS"])
calls.mkdir(exist_ok=True)
path = args[args.index("--path") + 1].replace("/", "_")
(calls / (args[2] + "-" + path + ".json")).write_text(json.dumps(args))
shutil.copy(args[args.index("--kustomization-file") + 1], calls / (args[2] + "-" + path + ".ks.yaml"))
build = pathlib.Path(os.environ["MOCK_FLUX_BUILDS"]) / (path + ".yaml")
if not build.exists():
    print("✗ MOCK: kustomize build failed: no prepared build for " + str(build), file=sys.stderr)
    sys.exit(1)
sys.stdout.write(build.read_text())
"""


@pytest.fixture
def mock_flux(tmp_path) -> dict[str, str]:
    """A MOCK flux on PATH and the tool run from this checkout; returns the environment for the script."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "flux").write_text(MOCK_FLUX)
    (bin_dir / "flux").chmod(0o755)
    tool = bin_dir / "airflow-gitops"
    tool.write_text(f"#!/bin/sh\nexec {sys.executable} -m airflow_gitops \"$@\"\n")
    tool.chmod(0o755)
    (tmp_path / "builds").mkdir()
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "AIRFLOW_GITOPS": str(tool),
            "PYTHONPATH": str(REPO / "scripts"), "MOCK_FLUX_BUILDS": str(tmp_path / "builds"),
            "MOCK_FLUX_CALLS": str(tmp_path / "calls")}


def prepare_builds(env: dict[str, str], cluster: str) -> dict[str, list[dict]]:
    """What Flux would print if it agreed with the tool, in another order and shape than the tool prints."""
    state = render_cluster(make_settings(), cluster, charts=False)
    builds = {}
    for ks in flux_build.kustomizations(state):
        objects = list(reversed(flux_build.tool_objects(state, ks)))
        builds[ks.path] = objects
        write_build(env, ks.path, objects)
    return builds


def write_build(env: dict[str, str], path: str, objects: list[dict]) -> None:
    target = Path(env["MOCK_FLUX_BUILDS"]) / (path.replace("/", "_") + ".yaml")
    target.write_text(yaml.safe_dump_all(objects, sort_keys=False, default_flow_style=None, width=80))


def run(env: dict[str, str], *clusters: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *clusters], env=env, capture_output=True, text=True, timeout=300)


def test_identical_builds_pass_whatever_the_order_and_formatting(mock_flux):
    prepare_builds(mock_flux, "kind")
    result = run(mock_flux, "kind")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "flux version 2.9.5 (MOCK)" in result.stdout
    for ref in ("flux-system", "infra-controllers", "infra-configs", "apps"):
        assert f"same: kind flux-system/{ref}" in result.stdout
    assert "4 Kustomization(s) compared; differences: 0; errors: 0" in result.stdout


def test_one_changed_value_fails_with_a_diff_naming_the_object(mock_flux):
    builds = prepare_builds(mock_flux, "kind")
    values = next(o for o in builds["apps/kind"] if o["metadata"]["name"].startswith("airflow-values-common-"))
    values["data"]["values.yaml"] = values["data"]["values.yaml"].replace("    branch: main\n", "    branch: other\n")
    write_build(mock_flux, "apps/kind", builds["apps/kind"])
    result = run(mock_flux, "kind")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "DIFFERENT: kind flux-system/apps (apps/kind)" in result.stdout
    assert "--- airflow-gitops: kind flux-system/apps" in result.stdout
    assert "+++ flux build: kind flux-system/apps" in result.stdout
    assert re.search(r"^-\s+branch: main\n\+\s+branch: other$", result.stdout, re.M)
    assert "same: kind flux-system/infra-configs" in result.stdout


def test_an_object_only_flux_builds_is_a_difference(mock_flux):
    builds = prepare_builds(mock_flux, "kind")
    extra = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "only-in-flux", "namespace": "airflow"}}
    write_build(mock_flux, "infrastructure/configs/kind", [*builds["infrastructure/configs/kind"], extra])
    result = run(mock_flux, "kind")
    assert result.returncode == 1
    assert "+# v1 ConfigMap airflow/only-in-flux" in result.stdout


def test_a_failing_flux_build_is_an_error_not_a_pass(mock_flux):
    prepare_builds(mock_flux, "kind")
    (Path(mock_flux["MOCK_FLUX_BUILDS"]) / "apps_kind.yaml").unlink()
    result = run(mock_flux, "kind")
    assert result.returncode == 2
    assert "ERROR: kind flux-system/apps: flux build failed:" in result.stdout
    assert "no prepared build" in result.stderr


def test_flux_is_called_in_dry_run_with_the_cluster_vars_as_inline_substitute(mock_flux):
    prepare_builds(mock_flux, "eks")
    assert run(mock_flux, "eks").returncode == 0
    calls = Path(mock_flux["MOCK_FLUX_CALLS"])
    args = json.loads((calls / "apps-apps_eks.json").read_text())
    assert args[:7] == ["build", "kustomization", "apps", "--namespace", "flux-system", "--path", "apps/eks"]
    assert {"--dry-run", "--strict-substitute", "--in-memory-build"} <= set(args)
    ks = yaml.safe_load((calls / "apps-apps_eks.ks.yaml").read_text())
    assert ks["metadata"] == {"name": "apps", "namespace": "flux-system"}
    assert "substituteFrom" not in ks["spec"]["postBuild"]
    cluster_vars = yaml.safe_load((REPO / "clusters/eks/cluster-vars.yaml").read_text())["data"]
    assert ks["spec"]["postBuild"]["substitute"] == cluster_vars
    root = json.loads((calls / "flux-system-clusters_eks.json").read_text())
    assert root[root.index("--path") + 1] == "clusters/eks"


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
