"""Rolling back is reverting a commit: checked on the rendered state of real git commits, and `diff` shows it."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow_gitops.cli import main
from airflow_gitops.pipeline import render_cluster

from tests.helpers import commit_all, git, make_settings


@pytest.fixture
def history(repo_copy) -> Path:
    commit_all(repo_copy, "base")
    return repo_copy


def helmrelease_spec(repo: Path, cluster: str = "kind") -> dict:
    state = render_cluster(make_settings(repo), cluster, charts=False)
    return next(r.obj["spec"] for r in state.resources if r.kind == "HelmRelease" and r.name == "airflow")


def git_objects(repo: Path, cluster: str = "kind") -> dict:
    state = render_cluster(make_settings(repo), cluster, charts=False)
    return {(r.kind, r.namespace, r.name): r.obj for r in state.resources}


def test_a_values_change_changes_the_helmrelease_spec_and_its_revert_restores_it(history):
    before_spec, before_objects = helmrelease_spec(history), git_objects(history)
    values = history / "charts-values/airflow/common.yaml"
    values.write_text(values.read_text().replace("refresh_interval: 30", "refresh_interval: 45"))
    git(history, "commit", "-qam", "slower DAG discovery")
    changed = helmrelease_spec(history)
    # The hashed ConfigMap name moves, so helm-controller sees a new spec and upgrades.
    assert changed["valuesFrom"] != before_spec["valuesFrom"]
    git(history, "revert", "--no-edit", "HEAD")
    assert helmrelease_spec(history) == before_spec
    assert git_objects(history) == before_objects


def test_a_chart_bump_revert_pins_the_old_version_again(history):
    release = history / "apps/base/airflow/helmrelease.yaml"
    release.write_text(release.read_text().replace('version: "1.22.0"', 'version: "1.22.1"'))
    git(history, "commit", "-qam", "bump chart")
    assert helmrelease_spec(history)["chart"]["spec"]["version"] == "1.22.1"
    git(history, "revert", "--no-edit", "HEAD")
    assert helmrelease_spec(history)["chart"]["spec"]["version"] == "1.22.0"


def test_diff_shows_the_change_against_the_base_ref_and_exits_1(history, capsys):
    values = history / "charts-values/airflow/kind.yaml"
    values.write_text(values.read_text().replace("size: 1Gi", "size: 2Gi"))
    capsys.readouterr()
    assert main(["diff", "kind", "--base", "HEAD", "--repo", str(history)]) == 1
    out = capsys.readouterr().out
    # The values ConfigMap is replaced under a new hashed name, and the HelmRelease follows it.
    assert "--- HEAD/ConfigMap/airflow/airflow-values-cluster-" in out
    assert "+++ working-tree/ConfigMap/airflow/airflow-values-cluster-" in out
    assert "+++ working-tree/HelmRelease/airflow/airflow" in out
    assert any(line.startswith("+") and "2Gi" in line for line in out.splitlines())


def test_diff_of_an_unchanged_tree_is_empty_and_exits_0(history, capsys):
    assert main(["diff", "eks", "--base", "HEAD", "--repo", str(history)]) == 0
    assert capsys.readouterr().out == ""
