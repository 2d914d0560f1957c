"""Policy storage-class: every class a volume asks for is declared before it is used, or comes with the cluster."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from airflow_gitops.checks.storage import provided_classes
from airflow_gitops.checks.validation import validate_cluster

from tests.helpers import edit, make_settings


def storage_errors(repo: Path, cluster: str) -> list[str]:
    return [str(f) for f in validate_cluster(make_settings(repo), cluster).errors if f.check == "storage-class"]


def test_provided_classes_are_a_comma_separated_list():
    assert provided_classes({"provided_storage_classes": " standard, local-path ,,"}) == {"standard", "local-path"}
    assert provided_classes({}) == set()


@pytest.mark.parametrize("cluster", ["kind", "eks"])
def test_every_class_used_by_the_repository_exists(cluster):
    from tests.helpers import REPO

    assert storage_errors(REPO, cluster) == []


def test_eks_without_the_gp3_storage_class_leaves_the_database_pending(repo_copy):
    edit(repo_copy, "infrastructure/controllers/eks/kustomization.yaml", "  - storage-class.yaml\n", "")
    found = storage_errors(repo_copy, "eks")
    assert any(re.match(r"^infrastructure/configs/eks/airflow-db-ha.yaml: Cluster airflow/airflow-db: "
                        r"spec.storage.storageClass: storage class 'gp3' is not declared", line) for line in found), found
    assert any(re.match(r"^charts-values/airflow/eks.yaml: values of HelmRelease airflow/airflow: "
                        r"triggerer.persistence.storageClassName: storage class 'gp3' is not declared", line)
               for line in found), found


def test_a_class_applied_after_its_volumes_is_an_error(repo_copy):
    # The StorageClass moves to `apps`, which infra-configs (the database) does not depend on.
    edit(repo_copy, "infrastructure/controllers/eks/kustomization.yaml", "  - storage-class.yaml\n", "")
    (repo_copy / "apps/eks/storage-class.yaml").write_text(
        (repo_copy / "infrastructure/controllers/eks/storage-class.yaml").read_text())
    edit(repo_copy, "apps/eks/kustomization.yaml", "  - ../base/airflow\n", "  - ../base/airflow\n  - storage-class.yaml\n")
    found = storage_errors(repo_copy, "eks")
    assert found == [
        "infrastructure/configs/eks/airflow-db-ha.yaml: Cluster airflow/airflow-db: spec.storage.storageClass: "
        "storage class 'gp3' is applied by Kustomization flux-system/apps, which Kustomization "
        "flux-system/infra-configs does not depend on: the volume may be created before its class exists"]


def test_a_class_the_cluster_provides_passes_and_an_unknown_one_fails(repo_copy):
    edit(repo_copy, "charts-values/airflow/kind.yaml", "    size: 1Gi\n", "    size: 1Gi\n    storageClassName: standard\n")
    assert storage_errors(repo_copy, "kind") == []
    edit(repo_copy, "charts-values/airflow/kind.yaml", "storageClassName: standard", "storageClassName: fast-ssd")
    # With the chart at hand, the triggerer's StatefulSet is reported as well; the values file is always named.
    assert [line for line in storage_errors(repo_copy, "kind") if line.startswith("charts-values/")] == [
        "charts-values/airflow/kind.yaml: values of HelmRelease airflow/airflow: triggerer.persistence.storageClassName: "
        "storage class 'fast-ssd' is not declared in this cluster's desired state nor listed in cluster-vars "
        "provided_storage_classes (provided: standard): its volumes would stay Pending"]


def test_a_pvc_in_git_with_an_unknown_class_names_its_file(repo_copy):
    (repo_copy / "infrastructure/configs/base/scratch.yaml").write_text(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: scratch\n  namespace: airflow\nspec:\n"
        "  storageClassName: io2\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 1Gi\n")
    edit(repo_copy, "infrastructure/configs/base/kustomization.yaml", "  - airflow-db.yaml",
         "  - airflow-db.yaml\n  - scratch.yaml")
    found = storage_errors(repo_copy, "kind")
    assert [line.split(": storage class")[0] for line in found] == [
        "infrastructure/configs/base/scratch.yaml: PersistentVolumeClaim airflow/scratch: spec.storageClassName"]
