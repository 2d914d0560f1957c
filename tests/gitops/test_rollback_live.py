"""`rollback` in live mode, on real git repositories (a bare "remote" that receives the pushes).

flux and kubectl cannot reach a cluster on this machine: they are replaced by stand-ins on PATH that record their
arguments and succeed. Everything git does is real; the recorded cluster calls must equal the dry run's.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from airflow_gitops.cli import main
from airflow_gitops.operate.downgrade import BACKUP_FILE, LAYER, LAYER_EMPTY

from tests.helpers import commit_all, git

VALUES = "charts-values/airflow/common.yaml"
BACKUP = BACKUP_FILE.format(cluster="eks")
UPGRADE_BACKUP = """apiVersion: postgresql.cnpg.io/v1
kind: Backup
metadata:
  name: airflow-db-airflow-3-2-2-to-3-3-2
  namespace: airflow
spec:
  cluster:
    name: airflow-db
  method: plugin
  pluginConfiguration:
    name: barman-cloud.cloudnative-pg.io
"""


@pytest.fixture
def cluster_tools(tmp_path_factory, monkeypatch) -> Path:
    """Stand-ins for flux and kubectl (no cluster here): append their argv to calls.log, exit 0."""
    tools = tmp_path_factory.mktemp("tools")
    bin_dir, log = tools / "bin", tools / "calls.log"
    bin_dir.mkdir()
    for tool in ("flux", "kubectl"):
        script = bin_dir / tool
        script.write_text(f'#!/bin/sh\nprintf "%s\\n" "{tool} $*" >> "{log}"\n')
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "t")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "t@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "t")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "t@example.com")
    return log


@pytest.fixture
def upgraded(repo_copy, tmp_path_factory) -> tuple[Path, Path, str]:
    """A clone whose last commit is an upgrade PR 3.2.2 -> 3.3.2 with its Backup, pushed to a bare remote."""
    values = repo_copy / VALUES
    values.write_text(values.read_text().replace('"3.3.2"', '"3.2.2"'))
    commit_all(repo_copy, "Airflow 3.2.2")
    values.write_text(values.read_text().replace('"3.2.2"', '"3.3.2"'))
    (repo_copy / BACKUP).write_text(UPGRADE_BACKUP)
    git(repo_copy, "commit", "-qam", "Airflow 3.3.2")
    remote = tmp_path_factory.mktemp("remote") / "remote.git"
    git(remote.parent, "init", "-q", "--bare", str(remote))
    git(repo_copy, "remote", "add", "origin", str(remote))
    git(repo_copy, "push", "-q", "origin", "main")
    return repo_copy, remote, git(repo_copy, "rev-parse", "HEAD").strip()


def test_live_two_step_rollback_commits_pushes_and_ends_on_the_old_tree(capsys, cluster_tools, upgraded):
    repo, remote, bump = upgraded
    capsys.readouterr()
    assert main(["rollback", "--repo", str(repo), "--cluster", "eks", "--dry-run"]) == 0
    planned = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("flux ", "kubectl "))]

    assert main(["rollback", "--repo", str(repo), "--cluster", "eks"]) == 0

    # Two commits reached the remote: step 1, then the revert.
    log = git(remote, "log", "--format=%s", "-3", "main").splitlines()
    assert log == ['Revert "Airflow 3.3.2" (Airflow 3.3.2 -> 3.2.2, step 2 of 2)',
                   "Roll back Airflow 3.3.2 -> 3.2.2, step 1 of 2: stop Airflow, downgrade the schema",
                   "Airflow 3.3.2"]
    step1 = git(remote, "show", f"main~1:{LAYER}")
    assert "airflow db downgrade --to-version 3.2.2 -y" in step1
    assert "name: airflow-db-airflow-3-3-2-to-3-2-2" in git(remote, "show", f"main~1:{BACKUP}")
    # The final tree equals the one before the bump, except that step 1's Backup stays.
    changed = git(remote, "diff", "--name-only", f"{bump}^", "main").split()
    assert changed == [BACKUP]
    assert git(remote, "show", f"main:{LAYER}") == LAYER_EMPTY
    assert git(repo, "status", "--porcelain") == ""
    # The cluster was driven exactly as the dry run said.
    assert cluster_tools.read_text().splitlines() == [line.replace("'", "") for line in planned]


def test_live_rollback_stops_at_the_first_failing_command(capsys, cluster_tools, upgraded, monkeypatch):
    repo, remote, _ = upgraded
    kubectl = Path(os.environ["PATH"].split(os.pathsep)[0]) / "kubectl"
    kubectl.write_text("#!/bin/sh\nexit 1\n")
    assert main(["rollback", "--repo", str(repo), "--cluster", "eks"]) == 1
    assert "failed with exit code 1" in capsys.readouterr().err
    # It failed waiting for the previous migrate Job, before writing or committing anything.
    assert git(remote, "log", "--format=%s", "-1", "main").strip() == "Airflow 3.3.2"
    assert git(repo, "status", "--porcelain") == ""
