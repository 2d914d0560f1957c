"""The AWS side in Git (infrastructure/aws): eksctl's ClusterConfig, IAM policies, S3 settings and the budget.

Each policy breaks on a fixture (a copy of the repository) with the exact file, object and field, and passes
on the repository. IAM policies are linted with parliament; the S3 and budget files are checked against the
request shapes of botocore's service models (the AWS CLI's own), since AWS cannot be reached here."""

from __future__ import annotations

import json
from pathlib import Path

import botocore.session
import pytest
from airflow_gitops import aws_templates
from airflow_gitops.checks import aws
from airflow_gitops.checks.validation import validate_cluster
from botocore.validate import ParamValidator
from parliament import analyze_policy_string

from tests.helpers import REPO, airflow_release, edit, make_settings, render, require_schemas, skip_for

AWS_CHECKS = ("aws-config", "aws-identity", "aws-outside-flux", "aws-iam")
CONFIG = "infrastructure/aws/eks/cluster.yaml"
REF = "ClusterConfig airflow-gitops-eks"


def aws_errors(repo: Path, cluster: str = "eks") -> list[str]:
    """The AWS checks' errors; without eksctl's schema (offline) the ClusterConfig is unvalidated, not an error."""
    report = validate_cluster(make_settings(repo), cluster)
    return [str(f) for f in report.errors if f.check in AWS_CHECKS]


def eks_variables() -> dict[str, str]:
    variables = dict(render("eks").variables)
    return {**variables, "secret_name": "airflow-gitops/eks", "bucket": variables["logs_bucket"],
            "budget_email": "ops@example.com", "budget_usd": "300"}


# --- the ClusterConfig ---------------------------------------------------------------------------------

@pytest.mark.parametrize("cluster", ["kind", "eks"])
def test_the_repository_passes(cluster):
    assert aws_errors(REPO, cluster) == []


def test_the_cluster_config_is_validated_against_eksctls_schema(repo_copy):
    require_schemas()
    edit(repo_copy, CONFIG, "  enabled: true\n", "  enable: true\n")
    assert [line for line in aws_errors(repo_copy) if "autoModeConfig" in line] == [
        f"{CONFIG}: {REF}: autoModeConfig: Additional properties are not allowed ('enable' was unexpected) "
        "(schema: eksctl-v0.230/clusterconfig.schema.json)"]


def test_without_the_eksctl_schema_the_config_is_unvalidated_not_valid():
    findings = aws.schema_findings({"metadata": {"name": "x"}}, CONFIG, Path("/nonexistent"))
    assert [(f.severity, f.field) for f in findings] == [("unvalidated", "apiVersion")]


def test_kubernetes_version_must_equal_cluster_vars(repo_copy):
    edit(repo_copy, CONFIG, 'version: "1.35"', 'version: "1.34"')
    assert aws_errors(repo_copy) == [
        f"{CONFIG}: {REF}: metadata.version: '1.34' differs from kubernetes_version '1.35' in "
        "clusters/eks/cluster-vars.yaml: both must name the same cluster"]


def test_region_must_equal_cluster_vars(repo_copy):
    edit(repo_copy, "clusters/eks/cluster-vars.yaml", "aws_region: eu-west-1", "aws_region: us-east-2")
    assert [line for line in aws_errors(repo_copy) if "metadata.region" in line] == [
        f"{CONFIG}: {REF}: metadata.region: 'eu-west-1' differs from aws_region 'us-east-2' in "
        "clusters/eks/cluster-vars.yaml: both must name the same cluster"]


def test_a_variable_missing_from_cluster_vars_names_the_config(repo_copy):
    edit(repo_copy, CONFIG, "roleName: ${cluster_name}-airflow-worker", "roleName: ${cluster}-airflow-worker")
    assert f"{CONFIG}: ClusterConfig: (file): variable ${{cluster}} has no value in clusters/eks/cluster-vars.yaml" \
        in aws_errors(repo_copy)


def test_an_annotated_service_account_without_an_irsa_entry(repo_copy):
    edit(repo_copy, CONFIG, "    - metadata: {name: airflow-worker, namespace: airflow}\n",
         "    - metadata: {name: airflow-workers, namespace: airflow}\n")
    found = aws_errors(repo_copy)
    # With the chart, its ServiceAccount object is named; without it, the values file that annotates it.
    where = ("charts-values/airflow/eks.yaml: values of HelmRelease airflow/airflow: "
             "workers.serviceAccount.annotations.eks.amazonaws.com/role-arn"
             if airflow_release("eks").unrendered_reason else
             "apps/base/airflow/helmrelease.yaml (airflow/templates/workers/worker-serviceaccount.yaml): "
             "ServiceAccount airflow/airflow-worker: metadata.annotations.eks.amazonaws.com/role-arn")
    assert found == [
        f"{where}: service account airflow/airflow-worker asks for role arn:aws:iam::111122223333:role/"
        f"airflow-gitops-eks-airflow-worker, but {CONFIG} has no iam.serviceAccounts entry for it: the role would "
        "not trust this account",
        f"{CONFIG}: {REF}: iam.serviceAccounts[4].metadata: no service account airflow/airflow-workers in the "
        "rendered cluster asks for this role (renamed, or not annotated with eks.amazonaws.com/role-arn?)"]


def test_an_annotation_naming_another_role(repo_copy):
    edit(repo_copy, "infrastructure/configs/eks/airflow-db-ha.yaml", "role/${cluster_name}-db-backups",
         "role/${cluster_name}-backups")
    assert aws_errors(repo_copy) == [
        "infrastructure/configs/eks/airflow-db-ha.yaml: Cluster airflow/airflow-db: "
        "spec.serviceAccountTemplate.metadata.annotations.eks.amazonaws.com/role-arn: "
        "role arn:aws:iam::111122223333:role/airflow-gitops-eks-backups differs from the role "
        f"arn:aws:iam::111122223333:role/airflow-gitops-eks-db-backups that {CONFIG} iam.serviceAccounts[5] "
        "creates for airflow/airflow-db"]


def test_the_secret_store_account_needs_an_irsa_role(repo_copy):
    edit(repo_copy, "infrastructure/configs/eks/secret-store.yaml", "name: external-secrets\n",
         "name: external-secrets-reader\n")
    assert aws_errors(repo_copy) == [
        "infrastructure/configs/eks/secret-store.yaml: ClusterSecretStore aws-secrets-manager: "
        "spec.provider.aws.auth.jwt.serviceAccountRef: service account external-secrets/external-secrets-reader "
        f"has no iam.serviceAccounts entry in {CONFIG}: its token gets no AWS role"]


def test_an_attached_policy_must_be_a_file_of_the_repository(repo_copy):
    (repo_copy / "infrastructure/aws/iam/task-logs.json").rename(repo_copy / "infrastructure/aws/iam/logs.json")
    found = aws_errors(repo_copy)
    assert len(found) == 5
    assert found[0] == (
        f"{CONFIG}: {REF}: iam.serviceAccounts[0].attachPolicyARNs[0]: arn:aws:iam::111122223333:policy/"
        "airflow-gitops-eks-task-logs is not arn:aws:iam::111122223333:policy/airflow-gitops-eks-<name> with a policy "
        "file infrastructure/aws/iam/<name>.json: eks-up creates only the policies in that folder")


def test_the_node_pool_uses_auto_modes_default_node_class():
    pool = render("eks").find("NodePool", "high-cpu")
    assert pool.obj["spec"]["template"]["spec"]["nodeClassRef"] == {
        "group": "eks.amazonaws.com", "kind": "NodeClass", "name": "default"}


def test_a_node_pool_for_self_managed_karpenter_fails_on_auto_mode(repo_copy):
    edit(repo_copy, "infrastructure/configs/eks/node-pools.yaml",
         "        group: eks.amazonaws.com\n        kind: NodeClass\n",
         "        group: karpenter.k8s.aws\n        kind: EC2NodeClass\n")
    assert aws_errors(repo_copy) == [
        "infrastructure/configs/eks/node-pools.yaml: NodePool high-cpu: spec.template.spec.nodeClassRef: "
        "karpenter.k8s.aws/EC2NodeClass is not EKS Auto Mode's node class API (eks.amazonaws.com/NodeClass), and "
        f"{CONFIG} enables Auto Mode: no node would be launched"]


def test_a_node_pool_naming_an_unknown_node_class_fails(repo_copy):
    edit(repo_copy, "infrastructure/configs/eks/node-pools.yaml", "        name: default\n", "        name: fast\n")
    assert aws_errors(repo_copy) == [
        "infrastructure/configs/eks/node-pools.yaml: NodePool high-cpu: spec.template.spec.nodeClassRef.name: "
        "NodeClass 'fast' is neither Auto Mode's `default` nor declared in this cluster"]


def test_flux_must_not_apply_the_aws_folder(repo_copy):
    edit(repo_copy, "clusters/eks/infrastructure.yaml", "path: ./infrastructure/configs/eks", "path: ./infrastructure")
    assert [line for line in aws_errors(repo_copy) if "aws-outside" in line or "covers" in line] == [
        "clusters/eks/infrastructure.yaml: Kustomization flux-system/infra-configs: spec.path: path './infrastructure' "
        "covers infrastructure/aws, which Flux must not apply (eksctl and IAM configuration, not Kubernetes objects)"]


def test_values_derived_accounts_match_the_rendered_chart():
    """Offline (no chart), service accounts are derived from the values by the chart's naming; with the chart,
    from its ServiceAccount objects. Both must give the same accounts and roles."""
    state = render("eks")
    release = next(r for r in state.releases if r.helmrelease.name == "airflow")
    if release.unrendered_reason:
        skip_for("chart", f"derivation not compared: {release.unrendered_reason}")
    rendered = {(o.namespace, o.name): o.obj["metadata"]["annotations"][aws.ROLE_ANNOTATION]
                for o in release.objects if o.kind == "ServiceAccount"
                and aws.ROLE_ANNOTATION in (o.obj["metadata"].get("annotations") or {})}
    derived = {(release.namespace, name): arn for name, arn, _ in aws._values_accounts(release)}
    assert rendered == derived and len(rendered) == 5


def test_validate_names_a_broken_json_template(repo_copy):
    edit(repo_copy, "infrastructure/aws/s3/versioning.json", '"Status": "Enabled"', '"Status": "Enabled",')
    assert aws_errors(repo_copy) == [
        "infrastructure/aws/s3/versioning.json: (JSON): line 3, column 1: broken JSON: Expecting property name "
        "enclosed in double quotes"]


def test_validate_names_a_template_variable_missing_from_cluster_vars(repo_copy):
    edit(repo_copy, "infrastructure/aws/iam/task-logs.json", "${logs_bucket}/task-logs", "${log_bucket}/task-logs")
    assert aws_errors(repo_copy) == [
        "infrastructure/aws/iam/task-logs.json: (template): (file): variable ${log_bucket} has no value in "
        "clusters/eks/cluster-vars.yaml"]


def test_validate_rejects_a_data_action_on_star(repo_copy):
    edit(repo_copy, "infrastructure/aws/iam/db-backups.json", '"arn:aws:s3:::${backups_bucket}/airflow-db/*"', '"*"')
    assert aws_errors(repo_copy) == [
        "infrastructure/aws/iam/db-backups.json: IAM policy db-backups: Statement WriteAndPruneBackupsOfAirflowDb: "
        "grants a data action on a `*` resource: scope it to one bucket, prefix or secret"]


# --- IAM policies --------------------------------------------------------------------------------------

def policy_files() -> list[Path]:
    return sorted((REPO / aws_templates.IAM_DIR).glob("*.json"))


def test_there_is_one_policy_per_identity():
    assert [p.stem for p in policy_files()] == ["db-backups", "external-secrets", "task-logs"]


@pytest.mark.parametrize("path", policy_files(), ids=lambda p: p.name)
def test_parliament_finds_nothing(path):
    policy = json.dumps(aws_templates.render_json_template(path, eks_variables()))
    assert [(f.issue, f.detail) for f in analyze_policy_string(policy).findings] == []


def test_parliament_catches_a_misspelled_action():
    policy = (REPO / aws_templates.IAM_DIR / "task-logs.json").read_text().replace("s3:GetObject", "s3:GetObjects")
    text, _ = aws_templates.fill(policy, eks_variables(), "test")
    assert [f.issue for f in analyze_policy_string(text).findings] == ["UNKNOWN_ACTION"]


@pytest.mark.parametrize("path", policy_files(), ids=lambda p: p.name)
def test_no_data_action_on_a_star_resource(path):
    assert aws.wildcard_data_statements(aws_templates.render_json_template(path, eks_variables())) == []


@pytest.mark.parametrize("resource", ["*", "arn:aws:s3:::*", "arn:aws:secretsmanager:eu-west-1:111122223333:*"])
def test_a_data_action_on_a_star_resource_is_caught(resource):
    policy = {"Statement": [{"Sid": "TooWide", "Effect": "Allow", "Action": ["s3:GetObject",
                                                                              "secretsmanager:GetSecretValue"],
                             "Resource": resource}]}
    assert aws.wildcard_data_statements(policy) == ["TooWide"]


def test_each_policy_names_one_bucket_prefix_or_secret():
    resources = {p.stem: sorted({r for s in aws_templates.render_json_template(p, eks_variables())["Statement"]
                                 for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])})
                 for p in policy_files()}
    logs, backups = eks_variables()["logs_bucket"], eks_variables()["backups_bucket"]
    assert resources == {
        "task-logs": [f"arn:aws:s3:::{logs}", f"arn:aws:s3:::{logs}/task-logs/*"],
        "db-backups": [f"arn:aws:s3:::{backups}", f"arn:aws:s3:::{backups}/airflow-db/*"],
        "external-secrets": ["arn:aws:secretsmanager:eu-west-1:111122223333:secret:airflow-gitops/eks-??????"],
    }


def test_the_prefixes_are_those_the_manifests_write_to():
    values = render("eks")
    airflow = next(r for r in values.releases if r.helmrelease.name == "airflow")
    assert airflow.values["config"]["logging"]["remote_base_log_folder"] == \
        f"s3://{eks_variables()['logs_bucket']}/task-logs"
    store = values.find("ObjectStore", "airflow-db-s3", "airflow")
    assert store.obj["spec"]["configuration"]["destinationPath"] == f"s3://{eks_variables()['backups_bucket']}/airflow-db"


# --- S3 and budget files, against the AWS API's request shapes --------------------------------------------

def request_errors(service: str, operation: str, params: dict) -> str:
    shape = botocore.session.get_session().get_service_model(service).operation_model(operation).input_shape
    report = ParamValidator().validate(params, shape)
    return report.generate_report() if report.has_errors() else ""


S3_OPERATIONS = {
    "put-public-access-block": ("PutPublicAccessBlock", "PublicAccessBlockConfiguration"),
    "put-bucket-encryption": ("PutBucketEncryption", "ServerSideEncryptionConfiguration"),
    "put-bucket-versioning": ("PutBucketVersioning", "VersioningConfiguration"),
    "put-bucket-policy": ("PutBucketPolicy", "Policy"),
}


@pytest.mark.parametrize(("subcommand", "name"), [(s, n) for s, _, n in aws_templates.BUCKET_SETTINGS] +
                         [("put-bucket-lifecycle-configuration", n) for n in aws_templates.LIFECYCLE.values()])
def test_s3_settings_are_valid_requests(subcommand, name):
    data = aws_templates.render_json_template(REPO / aws_templates.S3_DIR / name, eks_variables())
    operation, member = S3_OPERATIONS.get(subcommand, ("PutBucketLifecycleConfiguration", "LifecycleConfiguration"))
    if member == "Policy":
        data = json.dumps(data)
    assert request_errors("s3", operation, {"Bucket": "b", member: data}) == ""


def test_a_broken_s3_setting_is_caught():
    assert "Unknown parameter" in request_errors(
        "s3", "PutBucketLifecycleConfiguration",
        {"Bucket": "b", "LifecycleConfiguration": {"Rules": [{"Status": "Enabled", "Expire": {"Days": 1}}]}})


def test_buckets_are_encrypted_private_versioned_and_tls_only():
    load = lambda name: aws_templates.render_json_template(REPO / aws_templates.S3_DIR / name, eks_variables())  # noqa: E731
    assert load("encryption.json")["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert set(load("public-access-block.json").values()) == {True}
    assert load("versioning.json") == {"Status": "Enabled"}
    deny = load("tls-only-policy.json")["Statement"][0]
    assert (deny["Effect"], deny["Action"], deny["Condition"]) == (
        "Deny", "s3:*", {"Bool": {"aws:SecureTransport": "false"}})
    for name in aws_templates.LIFECYCLE.values():
        rules = load(name)["Rules"]
        assert all(r["Status"] == "Enabled" for r in rules)
        assert any(r.get("NoncurrentVersionExpiration") for r in rules), name


def test_backups_are_not_expired_by_s3_but_by_cloudnative_pg_retention():
    """An S3 expiration could delete a base backup that the WAL chain of a kept one needs: CNPG prunes."""
    lifecycle = REPO / aws_templates.S3_DIR / aws_templates.LIFECYCLE["db-backups"]
    rules = aws_templates.render_json_template(lifecycle, eks_variables())["Rules"]
    assert not any((r.get("Expiration") or {}).get("Days") for r in rules)
    assert render("eks").find("ObjectStore", "airflow-db-s3", "airflow").obj["spec"]["retentionPolicy"] == "30d"


def test_budget_files_are_valid_requests():
    budget = aws_templates.render_json_template(REPO / aws_templates.BUDGET_DIR / "budget.json", eks_variables())
    notifications = aws_templates.render_json_template(REPO / aws_templates.BUDGET_DIR / "notifications.json", eks_variables())
    assert request_errors("budgets", "CreateBudget", {"AccountId": "111122223333", "Budget": budget,
                                                      "NotificationsWithSubscribers": notifications}) == ""
    assert {s["Address"] for n in notifications for s in n["Subscribers"]} == {"ops@example.com"}
