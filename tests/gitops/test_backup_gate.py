"""The backup gate's dead ends (issue 15 item 9), offline: it fails fast on every terminal phase of a CloudNativePG
Backup, a failed gate is re-armed through Git, and a gate leaves Git before retention deletes its backup (else Flux
recreates it and the new backup holds `apps` back).

The rule of each, in general form, and the variants that must fail, are in each test's table.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from airflow_gitops.cli import main
from airflow_gitops.kustomize_controller.api import Kustomization
from airflow_gitops.operate.downgrade import (
    BACKUP_CURRENT_EXPR,
    BACKUP_FAILED_EXPR,
    BACKUP_FAILED_PHASES,
    BACKUP_FILE,
    BACKUP_PHASES,
    CannotRearm,
    rearm,
    rearmed_name,
)

from tests.gitops.test_airflow_version_change import on, printed_backup, set_version, validate  # noqa: F401
from tests.helpers import REPO, git, render, require_schemas, schemas_dir, skip_for

# The operator the clusters run: chart cloudnative-pg 0.29.0 (infrastructure/controllers) ships operator 1.30.0.
CNPG_MODULE = "github.com/cloudnative-pg/cloudnative-pg@v1.30.0"
GATE = BACKUP_FILE.format(cluster="eks")
INFRA = "clusters/eks/infrastructure.yaml"


def cnpg_source() -> Path:
    """The cloudnative-pg module's source, from the Go module cache or proxy (`go mod download -json`)."""
    if shutil.which("go") is None:
        if os.environ.get("CI"):
            pytest.fail("go is not installed: the Backup phases cannot be read from cloudnative-pg's source")
        skip_for("tool", "go is not installed: the Backup phases cannot be read from cloudnative-pg's source")
    result = subprocess.run(["go", "mod", "download", "-json", CNPG_MODULE], capture_output=True, text=True,
                            timeout=300, cwd="/")
    info = json.loads(result.stdout or "{}")
    if "Dir" not in info:
        pytest.fail(f"go mod download {CNPG_MODULE}: {info.get('Error') or result.stderr}")
    return Path(info["Dir"])


def test_every_backup_phase_of_cloudnative_pg_is_classified():
    """Rule: every phase CloudNativePG defines is in BACKUP_PHASES, so a new terminal phase cannot pass unseen."""
    text = (cnpg_source() / "api/v1/backup_types.go").read_text()
    phases = set(re.findall(r'^\s*BackupPhase\w+\s*=\s*"([^"]*)"', text, re.M))
    assert "invalid backup definition" in phases and "walArchivingFailing" in phases
    assert phases == set(BACKUP_PHASES) - {""}


def test_the_done_and_failed_phases_are_those_the_operator_treats_so():
    """`failed` and `completed` are the two the backup controller never reconciles again; the admission guard's
    phase and the WAL-archiving one are the others a Backup never leaves by itself."""
    source = cnpg_source()
    controller = (source / "internal/controller/backup_controller.go").read_text()
    assert "case apiv1.BackupPhaseFailed, apiv1.BackupPhaseCompleted:\n\t\treturn ctrl.Result{}, nil" in controller
    funcs = (source / "api/v1/backup_funcs.go").read_text()
    assert "backup.Status.Phase = BackupPhaseDefinitionInvalid" in funcs
    assert BACKUP_PHASES["completed"] == "done"
    assert set(BACKUP_FAILED_PHASES) == {"failed", "invalid backup definition", "walArchivingFailing"}


def gate_checks(state) -> list:
    ks = Kustomization.parse(state.find("Kustomization", "db-backup", "flux-system"))
    return [c for c in ks.health_check_exprs if c.kind == "Backup"]


def test_the_eks_gate_waits_for_completed_and_fails_on_every_terminal_phase():
    [check] = gate_checks(render("eks"))
    assert check.current == BACKUP_CURRENT_EXPR
    assert check.failed == BACKUP_FAILED_EXPR
    assert all(f"'{phase}'" in check.failed for phase in BACKUP_FAILED_PHASES)


FAILED_EXPR_LINE = f"      failed: {BACKUP_FAILED_EXPR}\n"
# Variants of the gate's `failed` expression that leave a terminal phase to the timeout.
WEAK_FAILED = {
    "only failed": "      failed: has(status.phase) && status.phase == 'failed'\n",
    "without invalid backup definition": "      failed: has(status.phase) && status.phase in ['failed', "
                                         "'walArchivingFailing']\n",
    "without walArchivingFailing": "      failed: has(status.phase) && status.phase in ['failed', "
                                   "'invalid backup definition']\n",
    "no failed expression": "",
}


@pytest.mark.parametrize("variant", list(WEAK_FAILED), ids=list(WEAK_FAILED))
def test_an_upgrade_gated_by_a_gate_that_only_times_out_fails(capsys, on, variant):  # noqa: F811
    repo = on("3.2.2")
    infra = repo / INFRA
    assert FAILED_EXPR_LINE in infra.read_text()
    infra.write_text(infra.read_text().replace(FAILED_EXPR_LINE, WEAK_FAILED[variant]))
    git(repo, "commit", "-qam", "a weaker gate")
    set_version(repo, "3.3.2")
    out = validate(capsys, repo, "eks")[1]
    (repo / GATE).write_text(printed_backup(out) + "\n")
    code, out = validate(capsys, repo, "eks")
    assert code == 1
    assert "fails on `has(status.phase) && status.phase in ['failed', 'walArchivingFailing', " in out


# --- re-arm -----------------------------------------------------------------------------------------------------

GATE_BACKUP = {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Backup",
               "metadata": {"name": "airflow-db-airflow-3-2-2-to-3-3-2", "namespace": "airflow"},
               "spec": {"cluster": {"name": "airflow-db"}, "method": "plugin",
                        "pluginConfiguration": {"name": "barman-cloud.cloudnative-pg.io"}}}


def test_a_rearmed_name_counts_up():
    assert rearmed_name("airflow-db-airflow-3-2-2-to-3-3-2") == "airflow-db-airflow-3-2-2-to-3-3-2-rearm-2"
    assert rearmed_name("x-rearm-2") == "x-rearm-3"
    assert rearmed_name("x-rearm-9") == "x-rearm-10"


def test_rearm_keeps_the_spec_and_renames_the_one_backup():
    text, old, new = rearm(yaml.safe_dump(GATE_BACKUP), GATE)
    [backup] = [d for d in yaml.safe_load_all(text) if d]
    assert (old, new) == ("airflow-db-airflow-3-2-2-to-3-3-2", "airflow-db-airflow-3-2-2-to-3-3-2-rearm-2")
    assert backup["spec"] == GATE_BACKUP["spec"] and backup["metadata"]["namespace"] == "airflow"


@pytest.mark.parametrize("text", ["", "# only a comment\n", yaml.safe_dump_all([GATE_BACKUP, GATE_BACKUP]),
                                  yaml.safe_dump({**GATE_BACKUP, "kind": "ScheduledBackup"}), "a: [b\n"],
                         ids=["empty", "comment", "two backups", "not a backup", "not yaml"])
def test_rearm_refuses_a_file_that_is_not_one_backup(text):
    with pytest.raises(CannotRearm, match=re.escape(GATE)):
        rearm(text, GATE)


@pytest.fixture
def armed(on):  # noqa: F811
    """A history whose HEAD is an upgrade to 3.3.2 with its gate (the Backup validate printed)."""
    repo = on("3.2.2")
    set_version(repo, "3.3.2")
    (repo / GATE).write_text(yaml.safe_dump(GATE_BACKUP))
    git(repo, "commit", "-qam", "Airflow 3.3.2 with its backup gate")
    return repo


def test_backup_rearm_writes_a_new_gate_that_validate_base_accepts(capsys, armed):
    capsys.readouterr()
    assert main(["backup-rearm", "eks", "--repo", str(armed)]) == 0
    assert "-> airflow-db-airflow-3-2-2-to-3-3-2-rearm-2" in capsys.readouterr().out
    code, out = validate(capsys, armed, "eks")
    assert code == 0, out
    names = {r.name for r in _render(armed).resources if r.kind == "Backup"}
    assert names == {"airflow-db-airflow-3-2-2-to-3-3-2-rearm-2"}  # the failed one is pruned with it


def test_backup_rearm_dry_run_writes_nothing(capsys, armed):
    before = (armed / GATE).read_text()
    assert main(["backup-rearm", "eks", "--repo", str(armed), "--dry-run"]) == 0
    assert (armed / GATE).read_text() == before
    assert "name: airflow-db-airflow-3-2-2-to-3-3-2-rearm-2" in capsys.readouterr().out


def test_rearming_by_editing_the_failed_backup_in_place_is_refused(capsys, armed):
    """The other way one might try: change the failed Backup's spec under the same name. Backup.spec is immutable
    (the CRD's `oldSelf == self`), so the update is refused; validate --base says so. The rule is read from
    CloudNativePG's Backup CRD, which only a schema folder gives offline (the operator's chart carries it too)."""
    require_schemas()
    backup = dict(GATE_BACKUP, spec={**GATE_BACKUP["spec"], "target": "primary"})
    (armed / GATE).write_text(yaml.safe_dump(backup))
    capsys.readouterr()
    code = main(["validate", "eks", "--base", "HEAD", "--repo", str(armed), "--schemas", str(schemas_dir())])
    out = capsys.readouterr().out
    assert code == 1
    assert (f"eks: {GATE}: Backup airflow/airflow-db-airflow-3-2-2-to-3-3-2: spec: BackupSpec is immutable once set"
            in out)


def _render(repo: Path):
    from airflow_gitops.pipeline import render_cluster

    from tests.helpers import make_settings
    return render_cluster(make_settings(repo), "eks", charts=False)


# --- retention: a gate leaves Git before its backup expires -------------------------------------------------------

DAY = 86400


def commit_at(repo: Path, message: str, when: int) -> None:
    env = {**os.environ, "GIT_COMMITTER_DATE": f"@{when} +0000", "GIT_AUTHOR_DATE": f"@{when} +0000"}
    subprocess.run(["git", "commit", "-qam", message], cwd=repo, env=env, check=True)


@pytest.fixture
def gated(armed):
    """(repo, t0): the gate committed at t0; the ObjectStore keeps backups 30 days (infrastructure/configs/eks)."""
    assert "retentionPolicy: 30d" in (REPO / "infrastructure/configs/eks/database-backups.yaml").read_text()
    t0 = int(git(armed, "log", "-1", "--format=%ct").strip())
    return armed, t0


def later_commit(repo: Path, when: int) -> None:
    note = repo / "dags" / "README.later"
    note.parent.mkdir(exist_ok=True)
    note.write_text(str(when))
    git(repo, "add", "-A")
    commit_at(repo, "a later change", when)


# (days on the base branch, whether a change that keeps the gate is refused): window 30 days, margin 7.
AGES = [(1, False), (22, False), (23, True), (29, True), (45, True)]


@pytest.mark.parametrize(("days", "refused"), AGES, ids=[f"{d} days" for d, _ in AGES])
def test_a_change_that_keeps_a_gate_past_its_backups_life_is_refused(capsys, gated, days, refused):
    repo, t0 = gated
    later_commit(repo, t0 + days * DAY)
    (repo / "dags" / "README.later").write_text("a change that keeps the gate")
    code, out = validate(capsys, repo, "eks")
    assert (f"eks: {GATE}: Backup airflow/airflow-db-airflow-3-2-2-to-3-3-2: metadata.name: this backup gate was "
            "written" in out) is refused
    assert code == (1 if refused else 0), out


def test_emptying_the_expired_gate_passes(capsys, gated):
    repo, t0 = gated
    later_commit(repo, t0 + 40 * DAY)
    header = (REPO / GATE).read_text()
    (repo / GATE).write_text(header)
    code, out = validate(capsys, repo, "eks")
    assert code == 0, out
