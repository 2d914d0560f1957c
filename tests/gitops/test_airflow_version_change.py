"""`validate --base` and `diff --base` say what a change does to Airflow's version and schema, and stop a
plain revert that lowers the schema, or an upgrade without a backup."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from airflow_gitops.cli import main
from airflow_gitops.operate.downgrade import BACKUP_FILE, LAYER, LAYER_EMPTY, step1_layer

from tests.helpers import commit_all, git

VALUES = "charts-values/airflow/common.yaml"


def set_version(repo: Path, version: str) -> None:
    values = repo / VALUES
    text = values.read_text()
    for old in ("3.3.2", "3.3.1", "3.2.2"):
        text = text.replace(f'"{old}"', f'"{version}"')
    values.write_text(text)


@pytest.fixture
def on(repo_copy):
    """on(version): a history whose HEAD runs that Airflow (after a first commit with 3.2.2)."""
    def make(version: str) -> Path:
        set_version(repo_copy, "3.2.2")
        commit_all(repo_copy, "Airflow 3.2.2")
        if version != "3.2.2":
            set_version(repo_copy, version)
            git(repo_copy, "commit", "-qam", f"Airflow {version}")
        return repo_copy
    return make


def printed_backup(out: str) -> str:
    return out.split(f"Put this in {BACKUP_FILE.format(cluster='eks')}:\n", 1)[1].split("\neks: ", 1)[0]


def validate(capsys, repo: Path, cluster: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["validate", cluster, "--base", "HEAD", "--repo", str(repo)])
    return code, capsys.readouterr().out


def test_a_plain_revert_across_heads_fails_naming_the_field_and_the_command(capsys, on):
    repo = on("3.3.2")
    bump = git(repo, "rev-parse", "--short=12", "HEAD").strip()
    set_version(repo, "3.2.2")
    code, out = validate(capsys, repo, "kind")
    assert code == 1
    assert (f"kind: {VALUES}: HelmRelease airflow/airflow: airflowVersion: lowers Airflow 3.3.2 -> 3.2.2 across "
            "different migration heads") in out
    assert f"make rollback SHA={bump}" in out


def test_the_revert_passes_when_the_base_is_step_1_for_that_version(capsys, on):
    repo = on("3.3.2")
    (repo / LAYER).write_text(step1_layer("3.3.2", "3.2.2", "0" * 40))
    git(repo, "commit", "-qam", "step 1")
    set_version(repo, "3.2.2")
    (repo / LAYER).write_text(LAYER_EMPTY)
    code, out = validate(capsys, repo, "kind")
    assert "airflowVersion: lowers" not in out and "must empty this layer" not in out
    assert "step 2 of a rollback" in out


def test_step_2_must_empty_the_layer(capsys, on):
    repo = on("3.3.2")
    (repo / LAYER).write_text(step1_layer("3.3.2", "3.2.2", "0" * 40))
    git(repo, "commit", "-qam", "step 1")
    set_version(repo, "3.2.2")
    code, out = validate(capsys, repo, "kind")
    assert code == 1
    assert (f"kind: {LAYER}: HelmRelease airflow/airflow: migrateDatabaseJob.annotations.airflow-gitops.io/"
            "schema-rollback-to: step 2 of the rollback to 3.2.2 must empty this layer again") in out


def test_step_1_for_another_version_does_not_count(capsys, on):
    repo = on("3.3.2")
    (repo / LAYER).write_text(step1_layer("3.3.2", "3.1.8", "0" * 40))
    git(repo, "commit", "-qam", "step 1 for another target")
    set_version(repo, "3.2.2")
    code, out = validate(capsys, repo, "kind")
    assert code == 1
    assert (f"kind: {LAYER}: HelmRelease airflow/airflow: airflowVersion: lowers Airflow 3.3.2 -> 3.2.2 while step 1 "
            "of a rollback to 3.1.8 is in Git") in out


def test_lowering_between_equal_heads_is_a_plain_revert(capsys, on):
    repo = on("3.3.2")
    set_version(repo, "3.3.1")
    out = validate(capsys, repo, "kind")[1]
    assert "lowers Airflow 3.3.2 -> 3.3.1; migration heads equal" in out
    assert "airflowVersion: lowers" not in out


def test_an_upgrade_on_eks_without_a_backup_fails_and_prints_the_backup_yaml(capsys, on):
    repo = on("3.2.2")
    set_version(repo, "3.3.2")
    code, out = validate(capsys, repo, "eks")
    assert code == 1
    assert f"eks: {VALUES}: HelmRelease airflow/airflow: airflowVersion: changing Airflow 3.2.2 -> 3.3.2" in out
    assert f"Put this in {BACKUP_FILE.format(cluster='eks')}" in out
    assert "name: airflow-db-airflow-3-2-2-to-3-3-2" in out
    assert "this change raises Airflow 3.2.2 -> 3.3.2; migration heads differ" in out


def test_the_printed_backup_satisfies_the_check(capsys, on):
    repo = on("3.2.2")
    set_version(repo, "3.3.2")
    out = validate(capsys, repo, "eks")[1]
    (repo / BACKUP_FILE.format(cluster="eks")).write_text(printed_backup(out) + "\n")
    assert "changing Airflow" not in validate(capsys, repo, "eks")[1]


def test_a_backup_outside_the_gating_kustomization_does_not_count(capsys, on):
    repo = on("3.2.2")
    set_version(repo, "3.3.2")
    out = validate(capsys, repo, "eks")[1]
    yaml_text = printed_backup(out)
    # In infra-configs, which apps depends on, but whose Kustomization does not wait for a Backup to complete.
    (repo / "infrastructure/configs/eks/version-backup.yaml").write_text(yaml_text + "\n")
    kustomization = repo / "infrastructure/configs/eks/kustomization.yaml"
    kustomization.write_text(kustomization.read_text().replace("  - flux-receiver.yaml\n",
                                                               "  - flux-receiver.yaml\n  - version-backup.yaml\n"))
    assert "is not applied by a Kustomization that the release's Kustomization dependsOn" in \
        validate(capsys, repo, "eks")[1]


def test_an_upgrade_on_kind_needs_no_backup(capsys, on):
    repo = on("3.2.2")
    set_version(repo, "3.3.2")
    assert "changing Airflow" not in validate(capsys, repo, "kind")[1]


def test_diff_reports_the_version_change(capsys, on):
    repo = on("3.2.2")
    set_version(repo, "3.3.2")
    capsys.readouterr()
    assert main(["diff", "kind", "--base", "HEAD", "--repo", str(repo)]) == 1
    err = capsys.readouterr().err
    assert "kind: this change raises Airflow 3.2.2 -> 3.3.2; migration heads differ" in err
    assert "rolling it back takes two steps" in err


def test_a_cluster_without_an_airflow_release_diffs_without_a_version_report(tmp_path, capsys):
    # The engine's diff fixture has no HelmRelease airflow: diff must still diff (exit 1), not stop with exit 2.
    fixture = Path(__file__).resolve().parents[1] / "testdata" / "diff"
    repo = tmp_path / "repo"
    shutil.copytree(fixture / "base", repo)
    commit_all(repo, "base")
    for side in ("apps", "clusters"):
        shutil.rmtree(repo / side)
        shutil.copytree(fixture / "head" / side, repo / side)
    assert main(["diff", "dev", "--base", "HEAD", "--repo", str(repo)]) == 1
    err = capsys.readouterr().err
    assert "dev: no Airflow version to compare (cluster dev has no HelmRelease airflow on one side)" in err
