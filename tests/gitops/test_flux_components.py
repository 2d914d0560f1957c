"""Flux in Git, as bootstrap writes it: every cluster commits clusters/<cluster>/flux-system/gotk-components.yaml, and
it is exactly `flux install --export` of the pinned Flux CLI, with the options eks-up's bootstrap and kind-up use.

The comparison runs the real CLI (`make live-tools` builds it); without it that test skips loudly, and .ci/run, which
builds it, sets AIRFLOW_GITOPS_REQUIRE_LIVE_TOOLS=1 so that it cannot skip there."""

from __future__ import annotations

import re

import pytest
import yaml
from airflow_gitops.cli import main
from airflow_gitops.live import tools
from airflow_gitops.operate import flux_install

from tests.helpers import CLUSTERS, REPO, skip_for

WORKFLOWS = [REPO / ".github/workflows/ci.yaml", REPO / ".github/workflows/kind-e2e.yaml"]


def committed_version() -> str:
    versions = {flux_install.version_in(file.read_text()) for file in flux_install.component_files(REPO).values()}
    assert len(versions) == 1 and None not in versions, f"one Flux version in every gotk-components.yaml: {versions}"
    return versions.pop()


def pinned_flux():
    """The Flux CLI that `make live-tools` built (the pinned one), else $FLUX or `flux` on PATH (its version is checked
    below)."""
    return tools.find_tool("flux") or flux_install.find_flux()


@pytest.fixture(scope="module")
def flux():
    found = pinned_flux()
    if found is None:
        skip_for("live-tools", "the pinned Flux CLI is not built, so gotk-components.yaml is not compared with "
                               "`flux install --export`")
    return found


@pytest.fixture(scope="module")
def exported(flux) -> str:
    return flux_install.export(flux)


def test_every_cluster_commits_its_flux_components():
    files = flux_install.component_files(REPO)
    assert sorted(files) == sorted(CLUSTERS)
    for cluster, file in files.items():
        kinds = {doc["kind"] for doc in yaml.safe_load_all(file.read_text()) if doc}
        assert {"Namespace", "CustomResourceDefinition", "Deployment", "NetworkPolicy"} <= kinds, cluster
        kustomization = yaml.safe_load((file.parent / "kustomization.yaml").read_text())
        assert "gotk-components.yaml" in kustomization["resources"], cluster


def test_the_ci_flux_cli_is_the_committed_flux_version():
    version = committed_version()
    for workflow in WORKFLOWS:
        pins = re.findall(r"uses: fluxcd/flux2/action@\S+.*\n\s+with:\n\s+version: (\S+)", workflow.read_text())
        assert pins and set(pins) == {version}, f"{workflow.name}: the Flux CLI it installs: {pins}, Git: {version}"


def test_eks_up_bootstraps_with_no_flag_that_changes_the_components(tmp_path, capsys):
    assert main(["eks", "up", "--dry-run", "--budget-email", "ops@example.com", "--workdir", str(tmp_path),
                 "--repo", str(REPO)]) == 0
    bootstrap = [line.split() for line in capsys.readouterr().out.splitlines() if "flux bootstrap" in line]
    assert len(bootstrap) == 1 and bootstrap[0][1:4] == ["flux", "bootstrap", "github"]
    assert [a for a in bootstrap[0] if a.split("=")[0] in flux_install.INSTALL_FLAGS] == []


def test_kind_up_installs_the_committed_components_not_the_clis():
    script = (REPO / "scripts/kind-up.sh").read_text()
    assert re.search(r"^\s*k apply --server-side .*-k \"\$FLUX_COMPONENTS\"", script, re.M)
    assert not re.search(r"^\s*fx install", script, re.M), "`flux install` would install the CLI's version, not Git's"


def test_a_changed_line_is_a_difference(repo_copy):
    file = repo_copy / "clusters/kind/flux-system/gotk-components.yaml"
    text = file.read_text()
    assert flux_install.differences(repo_copy, text).keys() == set(), "the same text on both clusters"
    file.write_text(text.replace("replicas: 1", "replicas: 2", 1))
    found = flux_install.differences(repo_copy, text)
    assert list(found) == ["kind"]
    assert "-  replicas: 2\n+  replicas: 1\n" in found["kind"]


def test_the_pinned_cli_is_the_committed_version(flux):
    assert flux_install.cli_version(flux) == committed_version()


def test_gotk_components_is_what_the_pinned_cli_exports(exported):
    assert flux_install.version_in(exported) == committed_version()
    assert flux_install.differences(REPO, exported) == {}


def test_flux_components_command_reports_a_difference(flux, repo_copy, capsys):
    (repo_copy / "clusters/eks/flux-system/gotk-components.yaml").write_text("# edited by hand\n")
    assert main(["flux-components", "--repo", str(repo_copy), "--flux", str(flux)]) == 1
    out = capsys.readouterr().out
    assert "clusters/kind/flux-system/gotk-components.yaml: what flux" in out
    assert "clusters/eks/flux-system/gotk-components.yaml: DIFFERS" in out
    assert main(["flux-components", "--repo", str(repo_copy), "--flux", str(flux), "--write"]) == 0
    assert main(["flux-components", "--repo", str(repo_copy), "--flux", str(flux)]) == 0
