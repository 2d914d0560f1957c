"""Checks of the AWS side of a cluster, kept in Git but never applied by Flux: eksctl's ClusterConfig, IAM policies,
S3 bucket settings and the budget under infrastructure/aws/, filled with the cluster's cluster-vars as `eks up`
fills them (aws_templates.py).

Checks (all findings, none stops at the first): the ClusterConfig against eksctl's JSON schema; its name,
region and Kubernetes version equal cluster-vars; its IRSA service accounts are exactly those the rendered
state annotates with `eks.amazonaws.com/role-arn`, with the same role ARN; every policy it attaches is a file
in infrastructure/aws/iam; no Flux Kustomization path covers infrastructure/aws."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from airflow_gitops.aws_templates import AWS_DIR, IAM_DIR, cluster_config_file, fill
from airflow_gitops.kustomize_controller.api import kustomizations
from airflow_gitops.model import ERROR, UNVALIDATED, ClusterState, Finding, ReleaseRender, Resource, field_path, mapping, sequence
from airflow_gitops.settings import SCHEMAS_ENV

ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
EKSCTL_SCHEMA_GLOB = "eksctl-*/clusterconfig.schema.json"
CLUSTER_OBJECT = "ClusterConfig"

# Chart value section -> the service account the official Airflow chart names `<release>-<suffix>`.
AIRFLOW_CHART_ACCOUNTS = {"scheduler": "scheduler", "dagProcessor": "dag-processor", "apiServer": "api-server",
                          "triggerer": "triggerer", "workers": "worker"}


def load_cluster_config(repo: Path, cluster: str, variables: dict[str, str]) -> tuple[dict[str, Any] | None,
                                                                                          list[Finding]]:
    file = cluster_config_file(cluster)
    path = repo / file
    if not path.is_file():
        return None, []
    text, missing = fill(path.read_text(), variables, "(file)")
    findings = [Finding(ERROR, file, CLUSTER_OBJECT, "(file)",
                        f"variable ${{{name}}} has no value in clusters/{cluster}/cluster-vars.yaml", "aws-config")
                for name in dict.fromkeys(missing)]
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        return None, [*findings, Finding(ERROR, file, "(YAML)", where, f"broken YAML: {error}", "aws-config")]
    if not isinstance(config, dict):
        return None, [*findings, Finding(ERROR, file, CLUSTER_OBJECT, "(root)", "not a mapping", "aws-config")]
    return config, findings


def eksctl_schema(folder: Path | None) -> tuple[dict[str, Any] | None, str]:
    files = sorted(folder.glob(EKSCTL_SCHEMA_GLOB)) if folder is not None else []
    if folder is None or not files:
        return None, ""
    return json.loads(files[-1].read_text()), str(files[-1].relative_to(folder))


def schema_findings(config: dict[str, Any], file: str, folder: Path | None) -> list[Finding]:
    schema, label = eksctl_schema(folder)
    ref = _config_ref(config)
    if schema is None:
        return [Finding(UNVALIDATED, file, ref, "apiVersion",
                        f"not validated: no eksctl schema ({EKSCTL_SCHEMA_GLOB}) "
                        + (f"in the schema folder {folder}" if folder else
                           f"without a schema folder (--schemas or {SCHEMAS_ENV}) or the network"),
                        "aws-config")]
    return [Finding(ERROR, file, ref, field_path(list(e.absolute_path)), f"{e.message[:300]} (schema: {label})",
                    "aws-config")
            for e in sorted(jsonschema.Draft7Validator(schema).iter_errors(config), key=lambda e: list(map(str, e.path)))]


def metadata_findings(config: dict[str, Any], file: str, variables: dict[str, str], cluster: str) -> list[Finding]:
    meta = mapping(config.get("metadata"))
    findings = []
    for key, variable in (("name", "cluster_name"), ("region", "aws_region"), ("version", "kubernetes_version")):
        if str(meta.get(key, "")) != variables.get(variable, ""):
            findings.append(Finding(ERROR, file, _config_ref(config), f"metadata.{key}",
                                    f"{meta.get(key)!r} differs from {variable} {variables.get(variable)!r} in "
                                    f"clusters/{cluster}/cluster-vars.yaml: both must name the same cluster",
                                    "aws-config"))
    return findings


def annotated_accounts(state: ClusterState, values_file_of=None) -> dict[tuple[str, str], tuple[str, str, str, str]]:
    """(namespace, service account) -> (role ARN, file, object, field) for every service account that asks for an IRSA
    role: ServiceAccounts (Git or rendered charts), CloudNativePG Clusters' serviceAccountTemplate, and the
    values of charts that are not rendered (their service account named by the chart's convention)."""
    found: dict[tuple[str, str], tuple[str, str, str, str]] = {}
    for r in state.all_resources:
        annotations = mapping(r.obj.get("metadata")).get("annotations") or {}
        if r.kind == "ServiceAccount" and ROLE_ANNOTATION in annotations:
            found[(r.namespace, r.name)] = (annotations[ROLE_ANNOTATION], r.location, r.ref,
                                            f"metadata.annotations.{ROLE_ANNOTATION}")
        template = mapping(mapping(r.obj.get("spec")).get("serviceAccountTemplate")).get("metadata") or {}
        if r.kind == "Cluster" and ROLE_ANNOTATION in mapping(template.get("annotations")):
            found[(r.namespace, r.name)] = (template["annotations"][ROLE_ANNOTATION], r.location, r.ref,
                                            f"spec.serviceAccountTemplate.metadata.annotations.{ROLE_ANNOTATION}")
    for release in state.releases:
        if release.objects:
            continue
        for name, arn, path in _values_accounts(release):
            where = values_file_of(release, path) if values_file_of else release.helmrelease.location
            found.setdefault((release.namespace, name), (arn, where, f"values of {release.helmrelease.ref}",
                                                         field_path(path)))
    return found


def _values_accounts(release: ReleaseRender) -> list[tuple[str, str, list[str]]]:
    values = release.values or {}
    sections: list[tuple[list[str], str]] = [([], release.release_name)]
    if release.chart_name == "airflow":
        sections += [([key], f"{release.release_name}-{suffix}") for key, suffix in AIRFLOW_CHART_ACCOUNTS.items()]
    accounts = []
    for keys, default_name in sections:
        section: Any = values
        for key in [*keys, "serviceAccount"]:
            section = section.get(key) if isinstance(section, dict) else None
        arn = mapping(section.get("annotations")).get(ROLE_ANNOTATION) if isinstance(section, dict) else None
        if arn:
            accounts.append((str(section.get("name") or default_name), str(arn),
                             [*keys, "serviceAccount", "annotations", ROLE_ANNOTATION]))
    return accounts


def token_users(state: ClusterState) -> list[tuple[Resource, list[Any], tuple[str, str]]]:
    """Secret stores that authenticate to AWS with a service account's token: that account needs an IRSA role."""
    found = []
    for r in state.resources:
        if r.kind in ("ClusterSecretStore", "SecretStore"):
            ref = ((mapping(mapping(r.obj.get("spec")).get("provider")).get("aws") or {}).get("auth") or {})
            account = mapping(ref.get("jwt")).get("serviceAccountRef") or {}
            if account.get("name"):
                found.append((r, ["spec", "provider", "aws", "auth", "jwt", "serviceAccountRef"],
                              (str(account.get("namespace") or r.namespace), str(account["name"]))))
    return found


def identity_findings(config: dict[str, Any], file: str, state: ClusterState, variables: dict[str, str],
                      values_file_of=None) -> list[Finding]:
    account = variables.get("aws_account_id", "")
    declared: dict[tuple[str, str], tuple[str, int]] = {}
    for index, entry in enumerate((mapping(config.get("iam")).get("serviceAccounts")) or []):
        meta = mapping(entry.get("metadata"))
        role = f"arn:aws:iam::{account}:role/{entry.get('roleName', '')}" if entry.get("roleName") else ""
        declared[(str(meta.get("namespace") or "default"), str(meta.get("name")))] = (role, index)
    used = annotated_accounts(state, values_file_of)
    findings = []
    for r, path, key in token_users(state):
        if key not in declared:
            findings.append(Finding(ERROR, r.location, r.ref, field_path(path),
                                    f"service account {key[0]}/{key[1]} has no iam.serviceAccounts entry in {file}: "
                                    "its token gets no AWS role", "aws-identity"))
    for key, (arn, where, ref, at) in sorted(used.items()):
        if key not in declared:
            findings.append(Finding(ERROR, where, ref, at,
                                    f"service account {key[0]}/{key[1]} asks for role {arn}, but {file} has no "
                                    "iam.serviceAccounts entry for it: the role would not trust this account",
                                    "aws-identity"))
        elif declared[key][0] != arn:
            findings.append(Finding(ERROR, where, ref, at,
                                    f"role {arn} differs from the role {declared[key][0] or '(no roleName)'} that "
                                    f"{file} iam.serviceAccounts[{declared[key][1]}] creates for {key[0]}/{key[1]}",
                                    "aws-identity"))
    for key, (_, index) in sorted(declared.items()):
        if key not in used:
            findings.append(Finding(ERROR, file, _config_ref(config), f"iam.serviceAccounts[{index}].metadata",
                                    f"no service account {key[0]}/{key[1]} in the rendered cluster asks for this role "
                                    "(renamed, or not annotated with eks.amazonaws.com/role-arn?)", "aws-identity"))
    return findings


def policy_file_findings(config: dict[str, Any], file: str, repo: Path, variables: dict[str, str]) -> list[Finding]:
    """Each attached customer policy `arn:aws:iam::<account>:policy/<cluster_name>-<x>` is infrastructure/aws/iam/<x>.json."""
    prefix = f"arn:aws:iam::{variables.get('aws_account_id', '')}:policy/{variables.get('cluster_name', '')}-"
    findings = []
    for index, entry in enumerate((mapping(config.get("iam")).get("serviceAccounts")) or []):
        for position, arn in enumerate(entry.get("attachPolicyARNs") or []):
            if str(arn).startswith("arn:aws:iam::aws:policy/"):
                continue
            name = str(arn)[len(prefix):] if str(arn).startswith(prefix) else ""
            if not name or not (repo / IAM_DIR / f"{name}.json").is_file():
                findings.append(Finding(ERROR, file, _config_ref(config),
                                        f"iam.serviceAccounts[{index}].attachPolicyARNs[{position}]",
                                        f"{arn} is not {prefix}<name> with a policy file {IAM_DIR}/<name>.json: "
                                        "eks-up creates only the policies in that folder", "aws-identity"))
    return findings


def node_pool_findings(config: dict[str, Any], file: str, state: ClusterState) -> list[Finding]:
    """On Auto Mode, a Karpenter NodePool must use Auto Mode's NodeClass API (eks.amazonaws.com): there is
    no self-managed Karpenter to read an EC2NodeClass. Its name is Auto Mode's `default` or a NodeClass in Git."""
    if not mapping(config.get("autoModeConfig")).get("enabled"):
        return []
    declared = {"default"} | {r.name for r in state.resources if r.kind == "NodeClass"
                              and r.api_version.startswith("eks.amazonaws.com/")}
    findings = []
    for r in state.resources:
        if r.kind != "NodePool" or not r.api_version.startswith("karpenter.sh/"):
            continue
        ref = ((mapping(mapping(r.obj.get("spec")).get("template")).get("spec") or {}).get("nodeClassRef")) or {}
        where = "spec.template.spec.nodeClassRef"
        if (ref.get("group"), ref.get("kind")) != ("eks.amazonaws.com", "NodeClass"):
            findings.append(Finding(ERROR, r.location, r.ref, where,
                                    f"{ref.get('group')}/{ref.get('kind')} is not EKS Auto Mode's node class API "
                                    f"(eks.amazonaws.com/NodeClass), and {file} enables Auto Mode: no node would "
                                    "be launched", "aws-config"))
        elif ref.get("name") not in declared:
            findings.append(Finding(ERROR, r.location, r.ref, f"{where}.name",
                                    f"NodeClass {ref.get('name')!r} is neither Auto Mode's `default` nor declared "
                                    "in this cluster", "aws-config"))
    return findings


def outside_flux_findings(git_resources: list[Resource], repo: Path) -> list[Finding]:
    """Flux must never apply the AWS configuration: a Kustomization whose path holds infrastructure/aws would
    (a folder without kustomization.yaml gets every YAML file below it)."""
    aws = (repo / AWS_DIR).resolve()
    findings = []
    for ks in kustomizations(git_resources):
        path = (repo / ks.path).resolve()
        if path == aws or path in aws.parents or aws in path.parents:
            findings.append(Finding(ERROR, ks.resource.location, ks.resource.ref, "spec.path",
                                    f"path {ks.path!r} covers {AWS_DIR}, which Flux must not "
                                    "apply (eksctl and IAM configuration, not Kubernetes objects)", "aws-outside-flux"))
    return findings


def secret_names(state: ClusterState) -> set[str]:
    """The Secrets Manager secrets the cluster's ExternalSecrets read."""
    names = set()
    for r in state.resources:
        if r.kind == "ExternalSecret":
            spec = mapping(r.obj.get("spec"))
            names |= {str(mapping(mapping(e).get("extract")).get("key")) for e in sequence(spec.get("dataFrom"))
                      if mapping(mapping(e).get("extract"))}
            names |= {str(mapping(mapping(e).get("remoteRef")).get("key")) for e in sequence(spec.get("data"))}
    return names


def template_findings(repo: Path, state: ClusterState) -> list[Finding]:
    """The JSON templates eks-up applies: complete (every variable has a value), valid JSON, and no IAM policy
    that grants a data action on `*`. Values only eks-up knows get stand-ins here."""
    names = sorted(secret_names(state))
    variables = {**state.variables, "secret_name": names[0] if names else "secret",
                 "bucket": state.variables.get("logs_bucket", "bucket"), "budget_email": "budget@example.com",
                 "budget_usd": "1"}
    findings = []
    for path in sorted((repo / AWS_DIR).glob("*/*.json")):
        rel = str(path.relative_to(repo))
        text, missing = fill(path.read_text(), variables, "(file)")
        findings += [Finding(ERROR, rel, "(template)", "(file)", f"variable ${{{name}}} has no value in "
                             f"clusters/{state.name}/cluster-vars.yaml", "aws-config") for name in dict.fromkeys(missing)]
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            findings.append(Finding(ERROR, rel, "(JSON)", f"line {error.lineno}, column {error.colno}",
                                    f"broken JSON: {error.msg}", "aws-config"))
            continue
        if path.parent.name == "iam" and isinstance(document, dict):
            findings += [Finding(ERROR, rel, f"IAM policy {path.stem}", f"Statement {sid}",
                                 "grants a data action on a `*` resource: scope it to one bucket, prefix or secret",
                                 "aws-iam") for sid in wildcard_data_statements(document)]
    return findings


def validate_aws(repo: Path, cluster: str, state: ClusterState, schema_folder: Path | None,
                 values_file_of=None) -> list[Finding]:
    findings = outside_flux_findings(state.resources, repo)
    config, problems = load_cluster_config(repo, cluster, state.variables)
    findings += problems
    if config is None:
        return findings
    findings += template_findings(repo, state)
    file = cluster_config_file(cluster)
    findings += schema_findings(config, file, schema_folder)
    findings += metadata_findings(config, file, state.variables, cluster)
    findings += identity_findings(config, file, state, state.variables, values_file_of)
    findings += policy_file_findings(config, file, repo, state.variables)
    findings += node_pool_findings(config, file, state)
    return findings


def _config_ref(config: dict[str, Any]) -> str:
    return f"{CLUSTER_OBJECT} {(config.get('metadata') or {}).get('name', '?')}"


DATA_ACTION = re.compile(r"^(s3:(Get|Put|Delete|Abort|Restore|Replicate)Object|secretsmanager:GetSecretValue|"
                         r"s3:\*|secretsmanager:\*|\*)", re.I)


def wildcard_data_statements(policy: dict[str, Any]) -> list[str]:
    """Sids of Allow statements that grant a data action on `*` (or an ARN that is only a wildcard)."""
    bad = []
    statements = policy.get("Statement") or []
    for index, statement in enumerate(statements if isinstance(statements, list) else [statements]):
        if statement.get("Effect") != "Allow":
            continue
        actions = statement.get("Action") or []
        resources = statement.get("Resource") or []
        actions = [actions] if isinstance(actions, str) else actions
        resources = [resources] if isinstance(resources, str) else resources
        if "NotResource" in statement or "NotAction" in statement:
            bad.append(str(statement.get("Sid") or f"Statement[{index}]"))
            continue
        if any(DATA_ACTION.match(a) for a in actions) and any(r == "*" or r.endswith(":*") for r in resources):
            bad.append(str(statement.get("Sid") or f"Statement[{index}]"))
    return bad
