"""`eks up` / `eks down` (make eks-up, make eks-down): their plans, command by command.

The dry runs are compared with the exact command lists and must call nothing. The real runs cannot reach
AWS here, so they run against a MOCK: fake `aws`, `eksctl`, `flux`, `kubectl` and `ssh-keygen` executables
first on PATH, which log each call and answer the probes as if everything (or nothing) existed. What is
tested is the tool's behaviour: what it calls, in which order, what it skips when a resource exists, and
that the secret's values never reach the output."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import pytest
from airflow_gitops.cli import main

from tests.helpers import REPO

FAKE = r"""#!/usr/bin/env bash
# MOCK of the AWS/eksctl/flux/kubectl/ssh-keygen CLIs for tests: logs the call, answers probes.
name=$(basename "$0")
printf '%s' "$name" >> "$FAKE_LOG"; for a in "$@"; do printf ' %q' "$a" >> "$FAKE_LOG"; done; echo >> "$FAKE_LOG"
exists() { [ "$FAKE_EXISTING" = all ]; }
case "$name $1 $2" in
  "aws sts get-caller-identity") echo "$FAKE_ACCOUNT" ;;
  "aws iam get-policy") exists && echo v1 ;;
  "aws s3api head-bucket"|"aws budgets describe-budget"|"eksctl get cluster") exists ;;
  "aws secretsmanager describe-secret") exists && echo None ;;
  "aws secretsmanager create-secret")
    file=${8#file://}; stat -c %a "$file" > "$FAKE_LOG.secret-mode"; cp "$file" "$FAKE_LOG.secret" ;;
  "aws s3api list-object-versions") echo '{"Objects": null}' ;;
  "aws iam list-policy-versions") echo "${FAKE_OLD_VERSIONS:-[]}" ;;
  "aws iam get-policy-version")
    name=${4##*:policy/airflow-gitops-eks-}
    if [ "$name" = "$FAKE_CHANGED_POLICY" ]; then echo '{"Version": "2012-10-17", "Statement": []}'
    else cat "$FAKE_WORK/iam/$name.json"; fi ;;
  "kubectl get pv") echo vol-0aaa; echo vol-0bbb ;;
  ssh-keygen*)
    while [ $# -gt 1 ]; do [ "$1" = -f ] && { echo PRIVATE-KEY > "$2"; echo ssh-ed25519 PUB > "$2.pub"; }; shift; done ;;
esac
"""
ACCOUNT = "111122223333"
LOGS = f"airflow-gitops-eks-{ACCOUNT}-eu-west-1-task-logs"
BACKUPS = f"airflow-gitops-eks-{ACCOUNT}-eu-west-1-db-backups"
POLICY = f"arn:aws:iam::{ACCOUNT}:policy/airflow-gitops-eks"
SECRET_KEYS = ["admin_password", "api_secret_key", "db_password", "fernet_key", "flux_webhook_token",
               "git_ssh_key", "github_status_token", "jwt_secret", "partner_airflow_uri", "pipelines_db_password",
               "slack_webhook_url"]
# Given by their owner (options or environment), else placeholders: not random.
PROVIDED_KEYS = ("partner_airflow_uri", "slack_webhook_url", "github_status_token")


def bucket_settings(bucket: str) -> list[str]:
    folder = f"file://WORK/s3/{bucket}"
    return [
        f"aws s3api put-public-access-block --bucket {bucket} --public-access-block-configuration "
        f"{folder}/public-access-block.json",
        f"aws s3api put-bucket-encryption --bucket {bucket} --server-side-encryption-configuration "
        f"{folder}/encryption.json",
        f"aws s3api put-bucket-versioning --bucket {bucket} --versioning-configuration {folder}/versioning.json",
        f"aws s3api put-bucket-policy --bucket {bucket} --policy {folder}/tls-only-policy.json",
        f"aws s3api put-bucket-lifecycle-configuration --bucket {bucket} --lifecycle-configuration {folder}/lifecycle.json",
    ]


def policy_comparison(name: str) -> list[str]:
    return [f"aws iam get-policy --policy-arn {POLICY}-{name} --query Policy.DefaultVersionId --output text",
            f"aws iam get-policy-version --policy-arn {POLICY}-{name} --version-id v1 "
            "--query PolicyVersion.Document --output json"]


def old_versions(name: str) -> str:
    return (f"aws iam list-policy-versions --policy-arn {POLICY}-{name} "
            "--query 'Versions[?!IsDefaultVersion].VersionId' --output json")


def up_commands(existing: bool) -> list[str]:
    """Every command of `eks up` after the identity check, probes included, when all or nothing exists."""
    commands = []
    for bucket in (LOGS, BACKUPS):
        commands.append(f"aws s3api head-bucket --bucket {bucket}")
        if not existing:
            commands.append(f"aws s3api create-bucket --bucket {bucket} --region eu-west-1 "
                            "--create-bucket-configuration LocationConstraint=eu-west-1")
        commands += bucket_settings(bucket)
    for name in ("db-backups", "external-secrets", "task-logs"):
        commands.append(f"aws iam get-policy --policy-arn {POLICY}-{name}")
        if not existing:
            commands.append(f"aws iam create-policy --policy-name airflow-gitops-eks-{name} "
                            f"--policy-document file://WORK/iam/{name}.json")
        else:
            commands += policy_comparison(name)
    commands.append("aws secretsmanager describe-secret --secret-id airflow-gitops/eks --region eu-west-1")
    if not existing:
        commands += ["ssh-keygen -q -t ed25519 -N '' -C git-sync@airflow-gitops-eks -f WORK/git-sync-key",
                     "aws secretsmanager create-secret --name airflow-gitops/eks --region eu-west-1 "
                     "--secret-string file://WORK/secret.json"]
    commands.append("eksctl get cluster --name airflow-gitops-eks --region eu-west-1")
    commands += (["eksctl upgrade cluster -f WORK/cluster.yaml --approve",
                  "eksctl create iamserviceaccount -f WORK/cluster.yaml --approve",
                  "aws eks update-kubeconfig --name airflow-gitops-eks --region eu-west-1"] if existing else
                 ["eksctl create cluster -f WORK/cluster.yaml"])
    commands.append(f"aws budgets describe-budget --account-id {ACCOUNT} --budget-name airflow-gitops-eks-monthly")
    if not existing:
        commands.append(f"aws budgets create-budget --account-id {ACCOUNT} --budget file://WORK/budget/budget.json "
                        "--notifications-with-subscribers file://WORK/budget/notifications.json")
    commands.append("flux bootstrap github --owner=airflow-gitops --repository=airflow-gitops --branch=main "
                    "--path=clusters/eks")
    return commands


def down_commands(delete_backups: bool = False) -> list[str]:
    commands = [
        "eksctl get cluster --name airflow-gitops-eks --region eu-west-1",
        "aws eks update-kubeconfig --name airflow-gitops-eks --region eu-west-1",
        "flux suspend kustomization --all --namespace flux-system",
        "kubectl delete service webhook-receiver --namespace flux-system --wait --ignore-not-found",
        shlex.join(["kubectl", "get", "pv", "-o", "jsonpath={range .items[*]}{.spec.csi.volumeHandle}{\"\\n\"}{end}"]),
        "eksctl delete cluster -f WORK/cluster.yaml --wait",
        "aws ec2 wait volume-available --region eu-west-1 --volume-ids vol-0aaa vol-0bbb",
        "aws ec2 delete-volume --region eu-west-1 --volume-id vol-0aaa",
        "aws ec2 delete-volume --region eu-west-1 --volume-id vol-0bbb",
    ]
    for name in ("db-backups", "external-secrets", "task-logs"):
        commands += [f"aws iam get-policy --policy-arn {POLICY}-{name}", old_versions(name),
                     f"aws iam delete-policy --policy-arn {POLICY}-{name}"]
    commands += ["aws secretsmanager describe-secret --secret-id airflow-gitops/eks --region eu-west-1 "
                 "--query DeletedDate --output text",
                 "aws secretsmanager delete-secret --secret-id airflow-gitops/eks --region eu-west-1 "
                 "--recovery-window-in-days 7"]
    for bucket in (LOGS, *([BACKUPS] if delete_backups else [])):
        commands += [f"aws s3api head-bucket --bucket {bucket}",
                     f"aws s3api list-object-versions --bucket {bucket} --max-items 1000 --query "
                     "'{Objects: [Versions, DeleteMarkers][][].{Key: Key, VersionId: VersionId}}' --output json",
                     f"aws s3api delete-bucket --bucket {bucket} --region eu-west-1"]
    commands += [f"aws budgets describe-budget --account-id {ACCOUNT} --budget-name airflow-gitops-eks-monthly",
                 f"aws budgets delete-budget --account-id {ACCOUNT} --budget-name airflow-gitops-eks-monthly"]
    return commands


@pytest.fixture
def fake_cli(tmp_path, monkeypatch):
    """A MOCK of the cloud CLIs on PATH (AWS cannot be reached here); returns the log reader."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    for tool in ("aws", "eksctl", "flux", "kubectl", "ssh-keygen"):
        (bin_dir / tool).write_text(FAKE)
        (bin_dir / tool).chmod(0o755)
    log = tmp_path / "calls.log"
    log.write_text("")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.setenv("FAKE_ACCOUNT", ACCOUNT)
    monkeypatch.setenv("FAKE_EXISTING", "none")
    monkeypatch.setenv("FAKE_WORK", str(tmp_path / "work"))
    monkeypatch.setenv("GITHUB_TOKEN", "test-token")
    monkeypatch.delenv("BUDGET_EMAIL", raising=False)
    return log


def calls(log: Path, workdir: Path) -> list[str]:
    lines = log.read_text().replace(str(workdir), "WORK").splitlines()
    # `%q` and shlex quote differently; compare both as argument lists.
    return [shlex.join(shlex.split(line)) for line in lines]


def planned(output: str, workdir: Path) -> list[str]:
    """The commands a dry run prints (`$ ...` lines), whatever their indentation."""
    return [line.strip()[2:].replace(str(workdir), "WORK") for line in output.splitlines()
            if line.strip().startswith("$ ")]


def run(args: list[str], workdir: Path, repo: Path = REPO) -> int:
    return main(["eks", *args, "--workdir", str(workdir), "--repo", str(repo)])


IDENTITY = "aws sts get-caller-identity --query Account --output text"


def test_up_dry_run_prints_every_command_and_calls_nothing(fake_cli, tmp_path, capsys):
    workdir = tmp_path / "work"
    assert run(["up", "--dry-run", "--budget-email", "ops@example.com"], workdir) == 0
    # In the dry run, each probe is followed by both branches (create when absent, update when present).
    expected = [IDENTITY]
    for command in up_commands(existing=False):
        expected.append(command)
        if command.startswith("eksctl create cluster"):
            expected += up_commands(existing=True)[-5:-2]
    assert planned(capsys.readouterr().out, workdir) == expected
    assert fake_cli.read_text() == ""


def test_up_dry_run_fills_in_the_templates_without_secrets(fake_cli, tmp_path):
    workdir = tmp_path / "work"
    run(["up", "--dry-run", "--budget-email", "ops@example.com"], workdir)
    assert "${" not in (workdir / "cluster.yaml").read_text()
    assert json.loads((workdir / "iam/task-logs.json").read_text())["Statement"][1]["Resource"] == \
        f"arn:aws:s3:::{LOGS}/task-logs/*"
    assert not (workdir / "secret.json").exists()


def test_up_on_an_empty_account_creates_everything(fake_cli, tmp_path, capsys, repo_copy):
    workdir = tmp_path / "work"
    assert run(["up", "--budget-email", "ops@example.com"], workdir, repo_copy) == 0
    assert calls(fake_cli, workdir) == ["aws sts get-caller-identity", IDENTITY, *up_commands(existing=False)]
    assert not (workdir / "secret.json").exists() and not (workdir / "git-sync-key").exists()


def test_up_again_skips_what_exists(fake_cli, tmp_path, monkeypatch, repo_copy):
    monkeypatch.setenv("FAKE_EXISTING", "all")
    workdir = tmp_path / "work"
    assert run(["up", "--budget-email", "ops@example.com"], workdir, repo_copy) == 0
    made = calls(fake_cli, workdir)
    assert made == ["aws sts get-caller-identity", IDENTITY, *up_commands(existing=True)]
    assert not [c for c in made if " create-" in c or c.startswith(("eksctl create cluster", "ssh-keygen"))]


def test_the_secret_has_every_key_the_external_secrets_read_and_is_never_printed(fake_cli, tmp_path, capsys,
                                                                                repo_copy):
    workdir = tmp_path / "work"
    run(["up", "--budget-email", "ops@example.com"], workdir, repo_copy)
    output = capsys.readouterr()
    secret = json.loads(Path(f"{fake_cli}.secret").read_text())
    assert sorted(secret) == SECRET_KEYS
    assert Path(f"{fake_cli}.secret-mode").read_text().strip() == "600"
    assert secret["git_ssh_key"] == "PRIVATE-KEY\n"
    generated = [v for k, v in secret.items() if k not in ("git_ssh_key", *PROVIDED_KEYS)]
    assert len(set(generated)) == len(generated) and all(len(v) >= 32 for v in generated)
    assert not [v for v in generated if v in output.out or v in output.err]


def test_up_in_another_account_writes_cluster_vars_and_stops_before_bootstrap(fake_cli, tmp_path, monkeypatch,
                                                                             repo_copy, capsys):
    monkeypatch.setenv("FAKE_ACCOUNT", "444455556666")
    workdir = tmp_path / "work"
    assert run(["up", "--budget-email", "ops@example.com"], workdir, repo_copy) == 3
    text = (repo_copy / "clusters/eks/cluster-vars.yaml").read_text()
    assert '  aws_account_id: "444455556666"\n' in text
    assert "  logs_bucket: airflow-gitops-eks-444455556666-eu-west-1-task-logs\n" in text
    assert "  backups_bucket: airflow-gitops-eks-444455556666-eu-west-1-db-backups\n" in text
    assert "# Written by `make eks-up`" in text
    assert not [c for c in calls(fake_cli, workdir) if c.startswith("flux bootstrap")]
    assert "commit and push it, then run `make eks-up` again" in capsys.readouterr().out


def test_up_names_each_missing_prerequisite(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    assert run(["up", "--budget-email", "ops@example.com"], tmp_path / "work") == 2
    err = capsys.readouterr().err
    for tool in ("aws", "eksctl", "flux", "kubectl", "ssh-keygen", "GITHUB_TOKEN"):
        assert f"missing {tool}:" in err


def test_up_needs_a_budget_address(fake_cli, tmp_path, capsys):
    assert run(["up", "--dry-run"], tmp_path / "work") == 2
    assert "the budget needs an alert address: --budget-email or BUDGET_EMAIL" in capsys.readouterr().err


def test_down_dry_run_lists_everything_keeps_backups_and_calls_nothing(fake_cli, tmp_path, capsys):
    workdir = tmp_path / "work"
    assert run(["down", "--dry-run"], workdir) == 0
    out = capsys.readouterr().out
    assert f"  kept: S3 bucket {BACKUPS} (the database backups; --delete-backups deletes it)" in out
    listed = out.split("eks down deletes, in this order:\n")[1].split("\n  kept:")[0].splitlines()
    assert listed == [
        "  - EKS cluster airflow-gitops-eks (with its IRSA roles, OIDC provider, VPC, NAT gateway and load balancers)",
        "  - IAM policy airflow-gitops-eks-db-backups", "  - IAM policy airflow-gitops-eks-external-secrets",
        "  - IAM policy airflow-gitops-eks-task-logs",
        "  - Secrets Manager secret airflow-gitops/eks (recoverable for 7 days)",
        f"  - S3 bucket {LOGS} (every object version)", "  - AWS budget airflow-gitops-eks-monthly"]
    # The volume and version steps run inside local steps, shown as comments in a dry run.
    expected = [IDENTITY, *(c for c in down_commands() if "aws ec2 " not in c and "list-object-versions" not in c
                            and "list-policy-versions" not in c)]
    assert planned(out, workdir) == expected
    assert fake_cli.read_text() == ""


def test_down_with_delete_backups_deletes_the_backups_bucket_too(fake_cli, tmp_path, capsys):
    workdir = tmp_path / "work"
    run(["down", "--dry-run", "--delete-backups"], workdir)
    out = capsys.readouterr().out
    assert f"aws s3api delete-bucket --bucket {BACKUPS} --region eu-west-1" in planned(out, workdir)
    assert "kept:" not in out


def test_down_without_yes_asks_and_deletes_nothing(fake_cli, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_EXISTING", "all")
    workdir = tmp_path / "work"
    assert run(["down"], workdir) == 1
    assert calls(fake_cli, workdir) == ["aws sts get-caller-identity", IDENTITY]
    assert "Nothing deleted (answer 'yes', or pass --yes)." in capsys.readouterr().out


def test_down_with_yes_deletes_in_order(fake_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_EXISTING", "all")
    workdir = tmp_path / "work"
    assert run(["down", "--yes"], workdir) == 0
    assert calls(fake_cli, workdir) == ["aws sts get-caller-identity", IDENTITY, *down_commands()]


def test_down_again_deletes_nothing(fake_cli, tmp_path):
    workdir = tmp_path / "work"
    assert run(["down", "--yes"], workdir) == 0
    probes = [c for c in down_commands() if any(probe in c for probe in (
        "eksctl get cluster", "get-policy", "describe-secret", "head-bucket", "describe-budget"))]
    assert calls(fake_cli, workdir) == ["aws sts get-caller-identity", IDENTITY, *probes]


def test_up_makes_a_changed_policy_the_default_version(fake_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_EXISTING", "all")
    monkeypatch.setenv("FAKE_CHANGED_POLICY", "task-logs")
    workdir = tmp_path / "work"
    assert run(["up", "--budget-email", "ops@example.com"], workdir) == 0
    made = calls(fake_cli, workdir)
    start = made.index(policy_comparison("task-logs")[1]) + 1
    assert made[start:start + 2] == [
        old_versions("task-logs"),
        f"aws iam create-policy-version --policy-arn {POLICY}-task-logs --policy-document "
        "file://WORK/iam/task-logs.json --set-as-default"]
    assert len([c for c in made if "create-policy-version" in c]) == 1


def test_up_deletes_the_oldest_policy_version_when_iam_holds_five(fake_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_EXISTING", "all")
    monkeypatch.setenv("FAKE_CHANGED_POLICY", "task-logs")
    monkeypatch.setenv("FAKE_OLD_VERSIONS", '["v12", "v9", "v10", "v11"]')
    workdir = tmp_path / "work"
    assert run(["up", "--budget-email", "ops@example.com"], workdir) == 0
    made = calls(fake_cli, workdir)
    start = made.index(old_versions("task-logs")) + 1
    assert made[start:start + 2] == [
        f"aws iam delete-policy-version --policy-arn {POLICY}-task-logs --version-id v9",
        f"aws iam create-policy-version --policy-arn {POLICY}-task-logs --policy-document "
        "file://WORK/iam/task-logs.json --set-as-default"]


def test_down_deletes_old_policy_versions_before_the_policy(fake_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_EXISTING", "all")
    monkeypatch.setenv("FAKE_OLD_VERSIONS", '["v2", "v1"]')
    workdir = tmp_path / "work"
    assert run(["down", "--yes"], workdir) == 0
    made = calls(fake_cli, workdir)
    start = made.index(old_versions("task-logs")) + 1
    assert made[start:start + 3] == [
        f"aws iam delete-policy-version --policy-arn {POLICY}-task-logs --version-id v1",
        f"aws iam delete-policy-version --policy-arn {POLICY}-task-logs --version-id v2",
        f"aws iam delete-policy --policy-arn {POLICY}-task-logs"]


def test_values_only_their_owner_has_come_from_the_environment_and_are_never_printed(fake_cli, tmp_path, capsys,
                                                                                      repo_copy, monkeypatch):
    webhook = "https://hooks.slack.com/services/T000/B000/" + "x" * 24
    monkeypatch.setenv("SLACK_WEBHOOK_URL", webhook)
    run(["up", "--budget-email", "ops@example.com"], tmp_path / "work", repo_copy)
    output = capsys.readouterr()
    secret = json.loads(Path(f"{fake_cli}.secret").read_text())
    assert secret["slack_webhook_url"] == webhook
    assert webhook not in output.out + output.err
    assert "github_status_token is a placeholder (--github-status-token or GITHUB_STATUS_TOKEN gives it)" in output.out
