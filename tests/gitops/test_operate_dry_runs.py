"""The Operate commands' dry runs print exactly the commands they would run, and run none."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from airflow_gitops.cli import main

from tests.helpers import commit_all, git


def dry_run(capsys, *argv: str) -> list[str]:
    capsys.readouterr()
    assert main([*argv, "--dry-run"]) == 0
    return capsys.readouterr().out.splitlines()


def reconcile(name: str) -> str:
    return f"flux reconcile kustomization {name} -n flux-system --with-source --timeout=60m"


def test_reconcile_follows_the_dependson_chain_of_eks(capsys):
    assert dry_run(capsys, "reconcile", "eks") == [
        reconcile(n) for n in ("flux-system", "infra-controllers", "infra-configs", "db-backup", "apps")]


def test_reconcile_chain_is_derived_not_hard_coded(capsys, repo_copy):
    apps = repo_copy / "clusters/kind/apps.yaml"
    apps.write_text(apps.read_text().replace("- name: infra-configs", "- name: infra-controllers"))
    infra = repo_copy / "clusters/kind/infrastructure.yaml"
    infra.write_text(infra.read_text().replace("    - name: infra-controllers", "    - name: apps"))
    lines = dry_run(capsys, "reconcile", "kind", "--repo", str(repo_copy))
    assert lines == [reconcile(n) for n in ("flux-system", "infra-controllers", "apps", "infra-configs")]


def test_status_prints_flux_pods_and_helm_history(capsys):
    lines = dry_run(capsys, "status")
    assert lines[:2] == ["flux get all -A", "kubectl get pods -n airflow -l release=airflow -o wide"]
    assert lines[-1].startswith("kubectl get helmrelease airflow -n airflow -o 'jsonpath={range .status.history[*]}")


@pytest.fixture
def bumped(repo_copy) -> Path:
    """History: Airflow 3.2.2, then a commit raising it to 3.3.2 (different heads)."""
    values = repo_copy / "charts-values/airflow/common.yaml"
    values.write_text(values.read_text().replace('"3.3.2"', '"3.2.2"'))
    commit_all(repo_copy, "Airflow 3.2.2")
    values.write_text(values.read_text().replace('"3.2.2"', '"3.3.2"'))
    git(repo_copy, "commit", "-qam", "Airflow 3.3.2")
    return repo_copy


def run_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if line and not line.startswith(("#", "write ", "    |"))]


def test_rollback_dry_run_of_a_schema_changing_bump_is_two_steps_and_runs_nothing(capsys, bumped):
    head = git(bumped, "rev-parse", "HEAD").strip()
    lines = dry_run(capsys, "rollback", "--repo", str(bumped), "--cluster", "eks")
    backup = "infrastructure/backups/eks/airflow-version-backup.yaml"
    layer = "charts-values/airflow/schema-rollback.yaml"
    hr = "apps/base/airflow/helmrelease.yaml"
    assert run_lines(lines) == [
        f"git add {layer} {hr} {backup}",
        "git commit -m 'Roll back Airflow 3.3.2 -> 3.2.2, step 1 of 2: stop Airflow, downgrade the schema' "
        f"-m 'airflow-gitops rollback {head}'",
        f"git checkout HEAD -- {backup}",
        "git add -A -- clusters infrastructure apps charts-values pyproject.toml",
    ]
    steps = [line for line in lines if line.startswith("# ")]
    order = ["delete the chart's finished Jobs", "step 1: publish", "step 1: flux reconcile flux-system -> "
             "infra-controllers -> infra-configs -> db-backup -> apps", "wait until step 1 is Ready",
             "delete the chart's finished Jobs", f"git revert --no-commit {head[:12]}", "git commit: Revert",
             "step 2: publish", "wait until the release runs Airflow 3.2.2"]
    position = -1
    for text in order:  # in this order, each after the one before
        position = next(i for i, line in enumerate(steps) if i > position and line.startswith(f"# {text}"))
    assert f"write {layer}:" in lines and f"write {backup}:" in lines
    assert "    |     airflow-gitops.io/schema-rollback-to: 3.2.2" in lines
    assert f"# {hr}: airflow-gitops.io/schema-version=3.3.0, airflow-gitops.io/schema-rolled-back-to=3.2.0" in lines
    assert f"# {hr}: airflow-gitops.io/schema-version=3.2.0, no airflow-gitops.io/schema-rolled-back-to" in lines
    assert any("name: airflow-db-airflow-3-3-2-to-3-2-2" in line for line in lines)
    assert "# supervised: eks; each step goes by pull request to origin/main" in lines
    # Nothing ran: no commit, the tree unchanged.
    assert git(bumped, "rev-parse", "HEAD").strip() == head
    assert git(bumped, "status", "--porcelain") == ""


def test_rollback_defaults_to_the_last_deploy_commit(capsys, bumped):
    (bumped / "NOTES.txt").write_text("not a deploy change\n")
    git(bumped, "add", "NOTES.txt")
    git(bumped, "commit", "-qm", "notes")
    bump = git(bumped, "rev-parse", "HEAD~1").strip()
    lines = dry_run(capsys, "rollback", "--repo", str(bumped), "--cluster", "kind")
    assert lines[0] == f"# rollback of {bump[:12]} \"Airflow 3.3.2\""


def test_rollback_of_a_values_change_is_one_plain_revert(capsys, bumped):
    values = bumped / "charts-values/airflow/kind.yaml"
    values.write_text(values.read_text().replace("size: 1Gi", "size: 2Gi"))
    git(bumped, "commit", "-qam", "bigger logs")
    head = git(bumped, "rev-parse", "HEAD").strip()
    lines = dry_run(capsys, "rollback", "--repo", str(bumped), "--cluster", "kind")
    assert run_lines(lines)[:2] == [f"git revert --no-commit {head}", "git commit --no-edit"]
    assert not any(line.startswith("write ") for line in lines)


def test_rollback_refuses_a_dirty_tree(capsys, bumped):
    (bumped / "charts-values/airflow/kind.yaml").write_text("dirty: true\n")
    assert main(["rollback", "--repo", str(bumped), "--dry-run"]) == 2
    assert "working tree has changes" in capsys.readouterr().err


def make_n(*args: str) -> str:
    """The commands make would run (printed, none run), with whitespace runs made single spaces."""
    out = subprocess.run(["make", "-n", *args], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[2]).stdout
    return " ".join(out.split())


def test_make_passes_sha_cluster_and_dry_run_through():
    assert "rollback abc --cluster eks --namespace airflow --release airflow --dry-run" in \
        make_n("rollback", "SHA=abc", "CLUSTER=eks", "DRY_RUN=1")
    # CLUSTER's Makefile default (kind) is not a statement about the live cluster: the tool works it out or asks.
    assert "airflow-gitops rollback --namespace airflow --release airflow" in make_n("rollback")
    assert "reconcile eks --dry-run" in make_n("reconcile", "CLUSTER=eks", "DRY_RUN=1")
    assert "status --namespace airflow --release airflow --dry-run" in make_n("status", "DRY_RUN=1")


def test_a_plain_revert_keeps_the_backup_the_reverted_commit_replaced(capsys, bumped):
    backup = "infrastructure/backups/eks/airflow-version-backup.yaml"
    (bumped / backup).write_text("apiVersion: postgresql.cnpg.io/v1\nkind: Backup\nmetadata:\n  name: newer\n"
                                 "  namespace: airflow\nspec:\n  cluster:\n    name: airflow-db\n")
    git(bumped, "commit", "-qam", "a backup record")
    head = git(bumped, "rev-parse", "HEAD").strip()
    lines = run_lines(dry_run(capsys, "rollback", head, "--repo", str(bumped), "--cluster", "eks"))
    assert lines[:3] == [f"git revert --no-commit {head}", f"git checkout HEAD -- {backup}", "git commit --no-edit"]


def test_a_revert_that_raises_airflow_on_eks_writes_a_backup(capsys, bumped):
    values = bumped / "charts-values/airflow/common.yaml"
    values.write_text(values.read_text().replace('"3.3.2"', '"3.3.1"'))
    git(bumped, "commit", "-qam", "Airflow 3.3.1")
    lines = dry_run(capsys, "rollback", "--repo", str(bumped), "--cluster", "eks")
    assert "write infrastructure/backups/eks/airflow-version-backup.yaml:" in lines
    assert "    |   name: airflow-db-airflow-3-3-1-to-3-3-2" in lines


def test_rollback_asks_which_live_clusters_it_supervises(capsys, bumped):
    assert main(["rollback", "--repo", str(bumped), "--dry-run"]) == 2
    assert "name the live cluster(s) with --cluster NAME[=KUBE_CONTEXT]" in capsys.readouterr().err


def test_rollback_resumes_when_head_holds_its_step_1(capsys, bumped):
    head = git(bumped, "rev-parse", "HEAD").strip()
    lines = dry_run(capsys, "rollback", "--repo", str(bumped), "--cluster", "kind")
    layer = next(i for i, line in enumerate(lines) if line == "write charts-values/airflow/schema-rollback.yaml:")
    body = []
    for line in lines[layer + 1:]:
        if not line.startswith("    | "):
            break
        body.append(line[6:] + "\n")
    (bumped / "charts-values/airflow/schema-rollback.yaml").write_text("".join(body))
    git(bumped, "commit", "-qam", "step 1")
    lines = dry_run(capsys, "rollback", head, "--repo", str(bumped), "--cluster", "kind")
    assert "# HEAD holds step 1 of this rollback: resuming with its wait, then step 2" in lines
    assert not any(line.startswith("git commit -m 'Roll back") for line in lines)


def test_rollback_finishes_a_plain_revert_that_landed_without_step_1(capsys, bumped):
    head = git(bumped, "rev-parse", "HEAD").strip()
    git(bumped, "revert", "--no-edit", head)
    lines = dry_run(capsys, "rollback", head, "--repo", str(bumped), "--cluster", "kind")
    assert ("# HEAD already reverted Airflow to 3.2.2 without step 1 (the API server refuses it); step 1 names 3.3.2 "
            "again, and step 2 needs no revert") in lines
    assert "    | airflowVersion: 3.3.2" in lines
    assert not any("git revert --no-commit" in line for line in lines)


def test_abort_undoes_step_1_only_when_head_holds_it(capsys, bumped):
    assert main(["rollback", "--repo", str(bumped), "--cluster", "kind", "--abort", "--dry-run"]) == 2
    assert "--abort undoes a step 1 that HEAD holds; HEAD holds none" in capsys.readouterr().err
