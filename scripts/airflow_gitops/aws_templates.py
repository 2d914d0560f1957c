"""The AWS side of a cluster as Git keeps it under infrastructure/aws/, never applied by Flux: where each file is,
and the templates filled with the cluster's cluster-vars as Flux's post-build substitutes the manifests, so one value
is written once. `eks up` (operate/eks_plan.py) applies them; checks/aws.py checks them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from airflow_gitops.kustomize_controller.postbuild import Substitution
from airflow_gitops.model import RenderError

AWS_DIR = "infrastructure/aws"
IAM_DIR = f"{AWS_DIR}/iam"
S3_DIR = f"{AWS_DIR}/s3"
BUDGET_DIR = f"{AWS_DIR}/budget"
# S3 settings eks-up applies to both buckets: (s3api subcommand, its option, template in infrastructure/aws/s3).
# The lifecycle differs per bucket purpose.
BUCKET_SETTINGS = [
    ("put-public-access-block", "--public-access-block-configuration", "public-access-block.json"),
    ("put-bucket-encryption", "--server-side-encryption-configuration", "encryption.json"),
    ("put-bucket-versioning", "--versioning-configuration", "versioning.json"),
    ("put-bucket-policy", "--policy", "tls-only-policy.json"),
]
LIFECYCLE = {"task-logs": "lifecycle-task-logs.json", "db-backups": "lifecycle-db-backups.json"}


def cluster_config_file(cluster: str) -> str:
    """Convention: the eksctl config of clusters/<cluster> is infrastructure/aws/<cluster>/cluster.yaml."""
    return f"{AWS_DIR}/{cluster}/cluster.yaml"


def fill(text: str, variables: dict[str, str], where: str) -> tuple[str, list[str]]:
    """`${var}` substitution as Flux's post-build does; returns the text and the names that have no value."""
    substitution = Substitution(variables)
    try:
        result = substitution.text(text, where)
    except RenderError as error:
        return text, [error.message]
    return result, [name for name, _ in substitution.missing]


def render_json_template(path: Path, variables: dict[str, str]) -> Any:
    """A JSON template with `${var}`s filled; a missing variable is an error naming the file."""
    text, missing = fill(path.read_text(), variables, path.name)
    if missing:
        raise RenderError(f"variable ${{{missing[0]}}} has no value", file=str(path))
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise RenderError(f"broken JSON: {error}", file=str(path)) from error
