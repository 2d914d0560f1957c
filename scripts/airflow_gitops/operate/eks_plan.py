"""The plans of `eks up` and `eks down`: every AWS, eksctl, kubectl and flux command, in order, as data.

A plan is a list of steps. A step may have a probe (a read-only command): `up` runs its `if_absent`
commands only when the probe fails (the resource does not exist yet), `down` its `if_present` commands
only when it succeeds, so a second run skips what the first one made (or deleted). The dry run prints
the plan without running anything, probes included."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from airflow_gitops import aws_templates
from airflow_gitops.model import RenderError

SECRET_KEYS_HINT = "infrastructure/configs/eks/external-secrets.yaml"


@dataclass
class Cmd:
    argv: list[str]
    # Name under which the command's stdout is kept for later steps (e.g. the volumes a cluster leaves).
    capture: str | None = None


@dataclass
class Local:
    """A step done on this machine (writing a file), shown as a comment in the plan."""

    description: str
    action: Callable[[dict[str, str]], None]


@dataclass
class Step:
    title: str
    probe: Cmd | None = None
    # The probe says "present" when it exits 0 and this accepts its stdout.
    present_if: Callable[[str], bool] = field(default=lambda out: True)
    if_absent: list[Cmd | Local] = field(default_factory=list)
    if_present: list[Cmd | Local] = field(default_factory=list)
    always: list[Cmd | Local] = field(default_factory=list)


@dataclass
class Context:
    """Everything a plan needs, read from the repository (cluster-vars, the manifests) and the options."""

    repo: Path
    cluster: str
    workdir: Path
    variables: dict[str, str]
    account: str
    secret_name: str
    budget_email: str = ""
    budget_usd: str = "500"
    # Values of the Secrets Manager secret that only their owner can give (commands/eks.py PROVIDED).
    provided: dict[str, str] = field(default_factory=dict)

    @property
    def region(self) -> str:
        return self.variables["aws_region"]

    @property
    def name(self) -> str:
        return self.variables["cluster_name"]

    def bucket(self, purpose: str) -> str:
        # Bucket names are global: the account and region make them unique without asking the user.
        return f"{self.name}-{self.account}-{self.region}-{purpose}"

    @property
    def logs_bucket(self) -> str:
        return self.bucket("task-logs")

    @property
    def backups_bucket(self) -> str:
        return self.bucket("db-backups")

    @property
    def template_variables(self) -> dict[str, str]:
        return {**self.variables, "aws_account_id": self.account, "logs_bucket": self.logs_bucket,
                "backups_bucket": self.backups_bucket, "secret_name": self.secret_name,
                "budget_email": self.budget_email, "budget_usd": self.budget_usd}

    def policy_arn(self, name: str) -> str:
        return f"arn:aws:iam::{self.account}:policy/{self.name}-{name}"

    @property
    def budget_name(self) -> str:
        return f"{self.name}-monthly"


def cluster_vars(repo: Path, cluster: str) -> dict[str, str]:
    path = repo / "clusters" / cluster / "cluster-vars.yaml"
    try:
        data = (yaml.safe_load(path.read_text()) or {}).get("data") or {}
    except (OSError, yaml.YAMLError) as error:
        raise RenderError(f"cannot read cluster-vars: {error}", file=f"clusters/{cluster}/cluster-vars.yaml") from error
    missing = [key for key in ("cluster_name", "aws_region", "git_url", "git_branch") if not data.get(key)]
    if missing:
        raise RenderError(f"missing {', '.join(missing)}", file=f"clusters/{cluster}/cluster-vars.yaml",
                          object="ConfigMap flux-system/cluster-vars")
    return {str(k): str(v) for k, v in data.items()}


def github_repository(git_url: str) -> tuple[str, str]:
    """(owner, repository) of a GitHub URL, SSH or HTTPS."""
    match = re.match(r"^(?:git@github\.com:|ssh://git@github\.com/|https://github\.com/)([^/]+)/(.+?)(?:\.git)?/?$",
                     git_url)
    if not match:
        raise RenderError(f"git_url {git_url!r} is not a GitHub repository: `flux bootstrap github` needs one",
                          file="cluster-vars", field="data.git_url")
    return match.group(1), match.group(2)


def render_templates(ctx: Context, cluster_only: bool = False) -> None:
    """infrastructure/aws/* with cluster-vars filled in, into the work folder (local files only).
    `down` needs only the cluster's config (eksctl delete cluster -f)."""
    values = ctx.template_variables
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    config_file = aws_templates.cluster_config_file(ctx.cluster)
    text, missing = aws_templates.fill((ctx.repo / config_file).read_text(), values, "(file)")
    if missing:
        raise RenderError(f"variable ${{{missing[0]}}} has no value", file=config_file)
    (ctx.workdir / "cluster.yaml").write_text(text)
    if cluster_only:
        return
    for folder in ("iam", "budget"):
        (ctx.workdir / folder).mkdir(exist_ok=True)
        for template in sorted((ctx.repo / aws_templates.AWS_DIR / folder).glob("*.json")):
            _write_json(ctx.workdir / folder / template.name, aws_templates.render_json_template(template, values))
    s3 = ctx.repo / aws_templates.S3_DIR
    for purpose, bucket in (("task-logs", ctx.logs_bucket), ("db-backups", ctx.backups_bucket)):
        (ctx.workdir / "s3" / bucket).mkdir(parents=True, exist_ok=True)
        for _, _, name in aws_templates.BUCKET_SETTINGS:
            _write_json(ctx.workdir / "s3" / bucket / name,
                        aws_templates.render_json_template(s3 / name, {**values, "bucket": bucket}))
        _write_json(ctx.workdir / "s3" / bucket / "lifecycle.json",
                    aws_templates.render_json_template(s3 / aws_templates.LIFECYCLE[purpose], values))


def _delete(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def iam_policy_names(repo: Path) -> list[str]:
    return [p.stem for p in sorted((repo / aws_templates.IAM_DIR).glob("*.json"))]


def identity_command() -> Cmd:
    return Cmd(["aws", "sts", "get-caller-identity", "--query", "Account", "--output", "text"], capture="account")


def up_plan(ctx: Context, write_secret: Callable[[dict[str, str]], None],
            write_cluster_vars: Callable[[dict[str, str]], None],
            update_policy: Callable[[str], Callable[[dict[str, str]], None]]) -> list[Step]:
    work, region = ctx.workdir, ctx.region
    steps = []
    for bucket in (ctx.logs_bucket, ctx.backups_bucket):
        create = ["aws", "s3api", "create-bucket", "--bucket", bucket, "--region", region]
        if region != "us-east-1":  # the one region that rejects a LocationConstraint
            create += ["--create-bucket-configuration", f"LocationConstraint={region}"]
        settings: list[Cmd | Local] = [Cmd(["aws", "s3api", sub, "--bucket", bucket, option, f"file://{work}/s3/{bucket}/{name}"])
                    for sub, option, name in aws_templates.BUCKET_SETTINGS]
        settings.append(Cmd(["aws", "s3api", "put-bucket-lifecycle-configuration", "--bucket", bucket,
                             "--lifecycle-configuration", f"file://{work}/s3/{bucket}/lifecycle.json"]))
        steps.append(Step(f"S3 bucket {bucket}", probe=Cmd(["aws", "s3api", "head-bucket", "--bucket", bucket]),
                          if_absent=[Cmd(create)], always=settings))
    for name in iam_policy_names(ctx.repo):
        steps.append(Step(
            f"IAM policy {ctx.name}-{name}", probe=Cmd(["aws", "iam", "get-policy", "--policy-arn", ctx.policy_arn(name)]),
            if_absent=[Cmd(["aws", "iam", "create-policy", "--policy-name", f"{ctx.name}-{name}",
                            "--policy-document", f"file://{work}/iam/{name}.json"])],
            # Git is the truth for an existing policy too; IAM keeps at most 5 versions of one.
            if_present=[Local(f"when its default version differs from {work}/iam/{name}.json: aws iam "
                              f"create-policy-version --policy-arn {ctx.policy_arn(name)} --policy-document "
                              f"file://{work}/iam/{name}.json --set-as-default (deleting the oldest version first "
                              "when there are 5)", update_policy(name))]))
    steps.append(Step(
        f"Secrets Manager secret {ctx.secret_name}",
        probe=Cmd(["aws", "secretsmanager", "describe-secret", "--secret-id", ctx.secret_name, "--region", region]),
        if_absent=[
            Cmd(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"git-sync@{ctx.name}",
                 "-f", f"{work}/git-sync-key"]),
            Local(f"write random values and the git-sync key to {work}/secret.json (mode 0600, never printed)",
                  write_secret),
            Cmd(["aws", "secretsmanager", "create-secret", "--name", ctx.secret_name, "--region", region,
                 "--secret-string", f"file://{work}/secret.json"]),
            Local(f"delete {work}/secret.json and {work}/git-sync-key (the private key now lives only in AWS)",
                  lambda _: _delete(work / "secret.json", work / "git-sync-key")),
        ]))
    steps.append(Step(
        f"EKS cluster {ctx.name}",
        probe=Cmd(["eksctl", "get", "cluster", "--name", ctx.name, "--region", region]),
        if_absent=[Cmd(["eksctl", "create", "cluster", "-f", f"{work}/cluster.yaml"])],
        if_present=[Cmd(["eksctl", "upgrade", "cluster", "-f", f"{work}/cluster.yaml", "--approve"]),
                    Cmd(["eksctl", "create", "iamserviceaccount", "-f", f"{work}/cluster.yaml", "--approve"]),
                    Cmd(["aws", "eks", "update-kubeconfig", "--name", ctx.name, "--region", region])]))
    steps.append(Step(
        f"AWS budget {ctx.budget_name}",
        probe=Cmd(["aws", "budgets", "describe-budget", "--account-id", ctx.account, "--budget-name", ctx.budget_name]),
        if_absent=[Cmd(["aws", "budgets", "create-budget", "--account-id", ctx.account,
                        "--budget", f"file://{work}/budget/budget.json",
                        "--notifications-with-subscribers", f"file://{work}/budget/notifications.json"])]))
    steps.append(Step(f"clusters/{ctx.cluster}/cluster-vars.yaml", always=[Local(
        f"set aws_account_id={ctx.account}, logs_bucket={ctx.logs_bucket}, backups_bucket={ctx.backups_bucket}",
        write_cluster_vars)]))
    owner, repository = github_repository(ctx.variables["git_url"])
    steps.append(Step("Flux", always=[Cmd(["flux", "bootstrap", "github", f"--owner={owner}",
                                           f"--repository={repository}", f"--branch={ctx.variables['git_branch']}",
                                           f"--path=clusters/{ctx.cluster}"])]))
    return steps


def down_plan(ctx: Context, delete_backups: bool, delete_volumes: Callable[[dict[str, str]], None],
              empty_bucket: Callable[[str], Callable[[dict[str, str]], None]],
              delete_old_versions: Callable[[str], Callable[[dict[str, str]], None]]) -> list[Step]:
    work, region = ctx.workdir, ctx.region
    steps = [Step(
        f"EKS cluster {ctx.name} (with its IRSA roles, OIDC provider, VPC, NAT gateway and load balancers)",
        probe=Cmd(["eksctl", "get", "cluster", "--name", ctx.name, "--region", region]),
        if_present=[
            Cmd(["aws", "eks", "update-kubeconfig", "--name", ctx.name, "--region", region]),
            # Flux would recreate what eksctl deletes (the webhook load balancer) while it runs.
            Cmd(["flux", "suspend", "kustomization", "--all", "--namespace", "flux-system"]),
            # eksctl deletes LoadBalancer Services before the cluster, but has left NLBs behind
            # (eksctl-io/eksctl#5468): delete the webhook's own and wait for its load balancer to go.
            Cmd(["kubectl", "delete", "service", "webhook-receiver", "--namespace", "flux-system", "--wait",
                 "--ignore-not-found"]),
            # The gp3 class retains volumes; note them before their PersistentVolumes go with the cluster.
            Cmd(["kubectl", "get", "pv", "-o", "jsonpath={range .items[*]}{.spec.csi.volumeHandle}{\"\\n\"}{end}"],
                capture="volumes"),
            Cmd(["eksctl", "delete", "cluster", "-f", f"{work}/cluster.yaml", "--wait"]),
            Local(f"wait until the volumes listed above are detached (aws ec2 wait volume-available --region {region} "
                  f"--volume-ids <ids>), then delete each (aws ec2 delete-volume --region {region} --volume-id <id>)",
                  delete_volumes),
        ])]
    for name in iam_policy_names(ctx.repo):
        arn = ctx.policy_arn(name)
        steps.append(Step(f"IAM policy {ctx.name}-{name}", probe=Cmd(["aws", "iam", "get-policy", "--policy-arn", arn]),
                          if_present=[Local(f"delete its non-default versions (aws iam delete-policy-version "
                                            f"--policy-arn {arn} --version-id <id>): a policy with versions "
                                            "cannot be deleted", delete_old_versions(arn)),
                                      Cmd(["aws", "iam", "delete-policy", "--policy-arn", arn])]))
    steps.append(Step(
        f"Secrets Manager secret {ctx.secret_name} (recoverable for 7 days)",
        probe=Cmd(["aws", "secretsmanager", "describe-secret", "--secret-id", ctx.secret_name, "--region", region,
                   "--query", "DeletedDate", "--output", "text"]),
        # A secret already scheduled for deletion still describes, with its deletion date.
        present_if=lambda out: out.strip() in ("", "None"),
        if_present=[Cmd(["aws", "secretsmanager", "delete-secret", "--secret-id", ctx.secret_name, "--region", region,
                         "--recovery-window-in-days", "7"])]))
    buckets = [ctx.logs_bucket, *([ctx.backups_bucket] if delete_backups else [])]
    for bucket in buckets:
        steps.append(Step(
            f"S3 bucket {bucket} (every object version)",
            probe=Cmd(["aws", "s3api", "head-bucket", "--bucket", bucket]),
            if_present=[
                Local(f"repeat until empty: aws s3api list-object-versions --bucket {bucket} --max-items 1000, "
                      f"then aws s3api delete-objects --bucket {bucket} --delete file://{work}/batch.json",
                      empty_bucket(bucket)),
                Cmd(["aws", "s3api", "delete-bucket", "--bucket", bucket, "--region", region])]))
    steps.append(Step(
        f"AWS budget {ctx.budget_name}",
        probe=Cmd(["aws", "budgets", "describe-budget", "--account-id", ctx.account, "--budget-name", ctx.budget_name]),
        if_present=[Cmd(["aws", "budgets", "delete-budget", "--account-id", ctx.account,
                         "--budget-name", ctx.budget_name])]))
    return steps
