"""`validate --base` refuses an update of an existing object that the API server or an operator refuses (issue 15
item 8), on this repository's own objects; and the restore procedure of docs/operate.md passes it.

The rule: an object both trees apply must not change an immutable (or one-way) field. Each row of REFUSED breaks one
object of the eks cluster as a revert could, and must be named by file, object and field.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow_gitops.cli import main

from tests.helpers import commit_all, require_schemas

POOLER = "infrastructure/configs/eks/airflow-db-pooler.yaml"
DB_HA = "infrastructure/configs/eks/airflow-db-ha.yaml"
DB_BASE = "infrastructure/configs/base/airflow-db.yaml"
SECRETS = "infrastructure/configs/eks/external-secrets.yaml"
STORAGE_CLASS = "infrastructure/controllers/eks/storage-class.yaml"


def edit(repo: Path, path: str, old: str, new: str, count: int = 1) -> None:
    file = repo / path
    text = file.read_text()
    assert text.count(old) >= count, f"{path}: {old!r} not found"
    file.write_text(text.replace(old, new, count))


# (name, file, old text, new text, object, field)
REFUSED = [
    ("pooler re-pointed", POOLER, "  cluster:\n    name: airflow-db\n", "  cluster:\n    name: airflow-db-restore\n",
     "Pooler airflow/airflow-db-pooler-rw", "spec.cluster"),
    ("database re-pointed", DB_BASE, "  cluster:\n    name: airflow-db\n", "  cluster:\n    name: airflow-db-restore\n",
     "Database airflow/pipelines", "spec.cluster"),
    ("storage shrink", DB_HA, "    size: 20Gi\n", "    size: 10Gi\n", "Cluster airflow/airflow-db", "spec.storage"),
    ("postgres major downgrade", DB_BASE, "postgresql:17.6", "postgresql:16.10", "Cluster airflow/airflow-db",
     "spec.imageName"),
]


@pytest.fixture
def committed(repo_copy) -> Path:
    require_schemas()
    return commit_all(repo_copy, "base")


def validate(capsys, repo: Path) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["validate", "eks", "--base", "HEAD", "--repo", str(repo)])
    return code, capsys.readouterr().out


@pytest.mark.parametrize(("path", "old", "new", "obj", "field"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_a_refused_update_fails_naming_file_object_and_field(capsys, committed, path, old, new, obj, field):
    edit(committed, path, old, new)
    code, out = validate(capsys, committed)
    assert code == 1
    # A patched object is named by the file of its last patch (the Cluster: airflow-db-ha.yaml on eks).
    files = {path, DB_HA} if obj.startswith("Cluster") else {path}
    assert any(f"eks: {file}: {obj}: {field}: " in out for file in files), out[-3000:]


def test_the_old_restore_procedure_is_refused(capsys, committed):
    """The README's former step 3 edited spec.cluster of the Pooler and the Database: both refused."""
    for path in (POOLER, DB_BASE):
        edit(committed, path, "  cluster:\n    name: airflow-db\n", "  cluster:\n    name: airflow-db-restore\n")
    code, out = validate(capsys, committed)
    assert code == 1
    assert f"{POOLER}: Pooler airflow/airflow-db-pooler-rw: spec.cluster: cluster reference is immutable" in out
    assert f"{DB_BASE}: Database airflow/pipelines: spec.cluster: cluster reference is immutable" in out


RESTORE_OBJECTS = """\
apiVersion: postgresql.cnpg.io/v1
kind: Pooler
metadata:
  name: airflow-db-restore-pooler-rw
  namespace: airflow
spec:
  cluster:
    name: airflow-db-restore
  type: rw
  instances: 2
  pgbouncer:
    poolMode: transaction
---
apiVersion: postgresql.cnpg.io/v1
kind: Database
metadata:
  name: pipelines-restore
  namespace: airflow
spec:
  name: pipelines
  owner: pipelines
  cluster:
    name: airflow-db-restore
"""


def test_the_documented_restore_step_3_passes_the_refused_change_check(capsys, committed):
    """docs/operate.md, the restore of a backup, step 3: new Pooler and Database, the old ones removed, the hosts in the
    ExternalSecrets changed. No immutable field is edited."""
    pooler = committed / POOLER
    pooler.write_text(pooler.read_text().split("---\n", 1)[1])  # the old Pooler goes; its NetworkPolicies stay here
    base = committed / DB_BASE
    base.write_text(base.read_text().split("---\n", 1)[0])  # the old Database goes
    (committed / "infrastructure/configs/eks/airflow-db-restore.yaml").write_text(RESTORE_OBJECTS)
    edit(committed, "infrastructure/configs/eks/kustomization.yaml", "  - airflow-db-pooler.yaml\n",
         "  - airflow-db-pooler.yaml\n  - airflow-db-restore.yaml\n")
    edit(committed, SECRETS, "@airflow-db-pooler-rw.airflow", "@airflow-db-restore-pooler-rw.airflow")
    edit(committed, SECRETS, "@airflow-db-rw.airflow", "@airflow-db-restore-rw.airflow", count=2)
    code, out = validate(capsys, committed)
    assert "immutable-field" not in out and "is immutable" not in out and "refused" not in out, out[-3000:]
    assert code == 0, out[-3000:]
