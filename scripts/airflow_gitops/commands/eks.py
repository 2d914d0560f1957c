"""`eks up|down [--dry-run]`: stand up, or tear down, the AWS side of clusters/eks and bootstrap Flux on it.

`up` is idempotent: each resource is probed first and made only when absent (the cluster is upgraded when
present). `down` lists everything it will delete and asks, unless --yes; it keeps the database-backups
bucket unless --delete-backups. `--dry-run` prints every command and calls nothing."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from airflow_gitops import aws_templates
from airflow_gitops.checks import aws
from airflow_gitops.model import RenderError
from airflow_gitops.operate import eks_plan
from airflow_gitops.operate.eks_plan import Cmd, Context, Local, Step
from airflow_gitops.pipeline import render_cluster
from airflow_gitops.settings import Settings, add_common_options

TOOLS = {
    "aws": "the AWS CLI v2 (https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html)",
    "eksctl": "eksctl (https://eksctl.io/installation/)",
    "flux": "the Flux CLI 2.9 (https://fluxcd.io/flux/installation/#install-the-flux-cli)",
    "kubectl": "kubectl (https://kubernetes.io/docs/tasks/tools/)",
    "ssh-keygen": "the OpenSSH client (ssh-keygen makes git-sync's deploy key)",
}
# Random values of the Secrets Manager secret, by JSON key; the keys are those the ExternalSecrets read.
GENERATED = {
    "db_password": lambda: secrets.token_hex(24),
    "pipelines_db_password": lambda: secrets.token_hex(24),
    "fernet_key": lambda: base64.urlsafe_b64encode(os.urandom(32)).decode(),
    "api_secret_key": lambda: secrets.token_hex(32),
    "jwt_secret": lambda: secrets.token_hex(32),
    "admin_password": lambda: secrets.token_hex(16),
    "flux_webhook_token": lambda: secrets.token_hex(32),
}
FROM_FILES = {"git_ssh_key": "git-sync-key"}


@dataclass(frozen=True)
class Provided:
    """A value only its owner can give: from an option or its environment variable, else a placeholder to replace
    in Secrets Manager (the ExternalSecret still syncs, so infra-configs becomes Ready)."""

    env: str
    help: str
    placeholder: str

    @property
    def option(self) -> str:
        return "--" + self.env.lower().replace("_", "-")


PROVIDED = {
    "partner_airflow_uri": Provided("PARTNER_AIRFLOW_URI", "connection airflow_remote, https://user:password@host",
                                    "https://partner-airflow.invalid"),
    "slack_webhook_url": Provided("SLACK_WEBHOOK_URL", "Slack incoming-webhook URL of the Flux alerts",
                                  "https://hooks.slack.invalid/services/replace-me"),
    "github_status_token": Provided("GITHUB_STATUS_TOKEN", "GitHub token allowed to set commit statuses on the "
                                    "repository, for Flux's github Provider", "replace-me"),
}
TEMPLATE_KEY = re.compile(r"{{\s*\.([A-Za-z_][A-Za-z0-9_]*)")


class Stop(Exception):
    """eks up/down cannot go on; the message says what to do."""


def configure(parser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = actions.add_parser("up", help="Create or update the cluster, buckets, IAM, secret and budget; bootstrap Flux.")
    down = actions.add_parser("down", help="Delete what `up` made (the backups bucket only with --delete-backups).")
    for sub in (up, down):
        sub.add_argument("cluster", nargs="?", default="eks", help="cluster folder under clusters/ (default: eks)")
        sub.add_argument("--dry-run", action="store_true", help="print every command; call nothing")
        sub.add_argument("--workdir", help="folder for the filled-in templates (default: a new temporary folder)")
        sub.add_argument("--account-id", help="dry run: the AWS account (default: aws_account_id in cluster-vars)")
        add_common_options(sub)
    up.add_argument("--budget-email", default=os.environ.get("BUDGET_EMAIL", ""),
                    help="address of the budget alerts (env BUDGET_EMAIL)")
    up.add_argument("--budget-usd", default=os.environ.get("BUDGET_USD", "500"),
                    help="monthly budget in USD (env BUDGET_USD, default %(default)s)")
    for key, provided in PROVIDED.items():
        up.add_argument(provided.option, dest=key, default=os.environ.get(provided.env, ""),
                        help=f"{provided.help} (env {provided.env}; default: a placeholder)")
    down.add_argument("--yes", action="store_true", help="delete without asking")
    down.add_argument("--delete-backups", action="store_true", help="delete the database-backups bucket too")


def run(args) -> int:
    started = time.monotonic()
    try:
        return _run(args, started)
    except (Stop, RenderError) as error:
        print(f"eks {args.action}: {error}", file=sys.stderr)
        return 2


def _run(args, started: float) -> int:
    settings = Settings.from_args(args)
    variables = eks_plan.cluster_vars(settings.repo, args.cluster)
    secret_name, secret_keys = secret_of(settings, args.cluster)
    if args.action == "up" and not args.budget_email:
        raise Stop("the budget needs an alert address: --budget-email or BUDGET_EMAIL")
    if not args.dry_run:
        check_prerequisites(args)
    print(f"[{_elapsed(started)}] AWS identity")
    identity = eks_plan.identity_command()
    print(f"  $ {shlex.join(identity.argv)}")
    if args.dry_run:
        account = args.account_id or variables.get("aws_account_id", "")
        print(f"  # dry run: account {account} (--account-id, or aws_account_id in cluster-vars)")
    else:
        account = _call(identity.argv, started).strip()
    if not re.fullmatch(r"\d{12}", account):
        raise Stop(f"no 12-digit AWS account id (got {account!r})")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix=f"eks-{args.action}-")).resolve()
    ctx = Context(settings.repo, args.cluster, workdir, variables, account, secret_name,
                  budget_email=getattr(args, "budget_email", ""), budget_usd=getattr(args, "budget_usd", "500"),
                  provided={key: getattr(args, key, "") for key in PROVIDED})
    eks_plan.render_templates(ctx, cluster_only=args.action == "down")
    print(f"  # templates of {aws_templates.AWS_DIR} filled in under {workdir}")
    if args.action == "up":
        changed: list[str] = []
        plan = eks_plan.up_plan(ctx, lambda _: write_secret(ctx, secret_keys),
                               lambda _: changed.extend(write_cluster_vars(ctx)),
                               lambda name: lambda _: update_policy(ctx, name, started))
        return execute(plan, args.dry_run, started, stop_before="Flux",
                       must_stop=lambda: _push_first(ctx, changed) if changed else None)
    captured: dict[str, str] = {}
    plan = eks_plan.down_plan(ctx, args.delete_backups, lambda out: delete_volumes(ctx, out, started),
                             lambda bucket: lambda _: empty_bucket(ctx, bucket, started),
                             lambda arn: lambda _: delete_old_versions(arn, started))
    print("eks down deletes, in this order:")
    for step in plan:
        print(f"  - {step.title}")
    if not args.delete_backups:
        print(f"  kept: S3 bucket {ctx.backups_bucket} (the database backups; --delete-backups deletes it)")
    if not args.dry_run and not args.yes:
        answer = input("Delete all of the above? Type 'yes': ") if sys.stdin.isatty() else ""
        if answer.strip() != "yes":
            print("Nothing deleted (answer 'yes', or pass --yes).")
            return 1
    return execute(plan, args.dry_run, started, captured=captured)


def secret_of(settings: Settings, cluster: str) -> tuple[str, list[str]]:
    """The one Secrets Manager secret the cluster's ExternalSecrets read, and the JSON keys their templates use."""
    state = render_cluster(settings, cluster, charts=False)
    names, keys = aws.secret_names(state), []
    for r in state.resources:
        if r.kind == "ExternalSecret":
            template = (((r.obj.get("spec") or {}).get("target") or {}).get("template") or {}).get("data") or {}
            keys += TEMPLATE_KEY.findall(json.dumps(template))
    if len(names) != 1:
        raise Stop(f"the ExternalSecrets of clusters/{cluster} read {sorted(names) or 'no secret'}; eks up makes "
                   "exactly one Secrets Manager secret")
    unknown = sorted(set(keys) - set(GENERATED) - set(FROM_FILES) - set(PROVIDED))
    if unknown:
        raise Stop(f"ExternalSecrets read keys {unknown} that eks up does not know how to make "
                   "(scripts/airflow_gitops/commands/eks.py GENERATED or PROVIDED)")
    return names.pop(), sorted(set(keys))


def check_prerequisites(args) -> None:
    missing = [f"missing {tool}: install {how}" for tool, how in TOOLS.items() if shutil.which(tool) is None]
    if args.action == "up" and not os.environ.get("GITHUB_TOKEN"):
        missing.append("missing GITHUB_TOKEN: `flux bootstrap github` needs a token with repo rights "
                       "(https://fluxcd.io/flux/installation/bootstrap/github/)")
    if not missing and subprocess.run(["aws", "sts", "get-caller-identity"], capture_output=True).returncode != 0:
        missing.append("no AWS identity: `aws sts get-caller-identity` fails; run `aws configure` or "
                       "`aws sso login`, or set AWS_PROFILE")
    if missing:
        raise Stop("prerequisites missing:\n  " + "\n  ".join(missing))


def execute(plan: list[Step], dry_run: bool, started: float, stop_before: str | None = None,
            must_stop=None, captured: dict[str, str] | None = None) -> int:
    captured = {} if captured is None else captured
    for step in plan:
        if step.title == stop_before and must_stop and not dry_run:
            message = must_stop()
            if message:
                print(message)
                return 3
        print(f"[{_elapsed(started)}] {step.title}")
        commands: list[Cmd | Local] = []
        if step.probe is None:
            commands = [*step.always]
        elif dry_run:
            print(f"  $ {shlex.join(step.probe.argv)}")
            if step.if_absent:
                print("  # when absent:")
                _show(step.if_absent, "    ")
            if step.if_present:
                print("  # when present:")
                _show(step.if_present, "    ")
            _show(step.always, "  ")
            continue
        else:
            print(f"  $ {shlex.join(step.probe.argv)}")
            result = subprocess.run(step.probe.argv, capture_output=True, text=True)
            present = result.returncode == 0 and step.present_if(result.stdout)
            print(f"  # {'present' if present else 'absent'}")
            commands = [*(step.if_present if present else step.if_absent), *step.always]
        if dry_run:
            _show(commands, "  ")
            continue
        for command in commands:
            if isinstance(command, Local):
                print(f"  # {command.description}")
                command.action(captured)
            else:
                print(f"  $ {shlex.join(command.argv)}")
                output = _call(command.argv, started, capture=command.capture is not None)
                if command.capture:
                    captured[command.capture] = output
    print(f"[{_elapsed(started)}] done")
    return 0


def _show(commands: list[Cmd | Local], indent: str) -> None:
    for command in commands:
        print(f"{indent}# {command.description}" if isinstance(command, Local) else f"{indent}$ {shlex.join(command.argv)}")


def _call(argv: list[str], started: float, capture: bool = True) -> str:
    result = subprocess.run(argv, capture_output=capture, text=True)
    if result.returncode != 0:
        detail = (result.stderr or "").strip().splitlines()[-5:] if capture else []
        raise Stop(f"[{_elapsed(started)}] `{shlex.join(argv)}` failed (exit {result.returncode})"
                   + ("".join(f"\n  {line}" for line in detail)) + "\nFix it and run again: finished steps are skipped.")
    return result.stdout or ""


def _elapsed(started: float) -> str:
    seconds = int(time.monotonic() - started)
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def write_secret(ctx: Context, keys: list[str]) -> None:
    values = {}
    for key in keys:
        if key in GENERATED:
            values[key] = GENERATED[key]()
        elif key in FROM_FILES:
            values[key] = (ctx.workdir / FROM_FILES[key]).read_text()
        else:
            values[key] = ctx.provided.get(key) or PROVIDED[key].placeholder
    path = ctx.workdir / "secret.json"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(values, file)
    print(f"  # git-sync's public key: add {ctx.workdir / 'git-sync-key.pub'} to the repository as a read-only "
          "deploy key (GitHub: Settings > Deploy keys)")
    for key in keys:
        if key in PROVIDED and not ctx.provided.get(key):
            print(f"  # {key} is a placeholder ({PROVIDED[key].option} or {PROVIDED[key].env} gives it): "
                  "replace it in Secrets Manager")


def write_cluster_vars(ctx: Context) -> list[str]:
    """Set the account and bucket names in cluster-vars, keeping its comments; returns the keys it changed."""
    path = ctx.repo / "clusters" / ctx.cluster / "cluster-vars.yaml"
    text = path.read_text()
    changed = []
    for key, value in (("aws_account_id", ctx.account), ("logs_bucket", ctx.logs_bucket),
                       ("backups_bucket", ctx.backups_bucket)):
        line = f'  {key}: "{value}"' if key == "aws_account_id" else f"  {key}: {value}"
        pattern = re.compile(rf"^  {key}:.*$", re.M)
        new = pattern.sub(line, text, count=1) if pattern.search(text) else text.rstrip("\n") + "\n" + line + "\n"
        if new != text:
            changed.append(key)
            text = new
    path.write_text(text)
    return changed


def _push_first(ctx: Context, changed: list[str]) -> str:
    return (f"clusters/{ctx.cluster}/cluster-vars.yaml now has this account's {', '.join(changed)}. Flux reads it "
            "from Git: commit and push it, then run `make eks-up` again (it skips what exists and bootstraps Flux).")


def delete_volumes(ctx: Context, captured: dict[str, str], started: float) -> None:
    volumes = captured.get("volumes", "").split()
    if not volumes:
        return
    # Auto Mode terminates the nodes after the cluster is gone; a volume detaches only then.
    _run_shown(["aws", "ec2", "wait", "volume-available", "--region", ctx.region, "--volume-ids", *volumes], started)
    for volume in volumes:
        _run_shown(["aws", "ec2", "delete-volume", "--region", ctx.region, "--volume-id", volume], started)


def empty_bucket(ctx: Context, bucket: str, started: float) -> None:
    query = "{Objects: [Versions, DeleteMarkers][][].{Key: Key, VersionId: VersionId}}"
    while True:
        listing = json.loads(_call(["aws", "s3api", "list-object-versions", "--bucket", bucket, "--max-items", "1000",
                                    "--query", query, "--output", "json"], started) or "{}")
        objects = [o for o in (listing or {}).get("Objects") or [] if o]
        if not objects:
            return
        batch = ctx.workdir / "batch.json"
        batch.write_text(json.dumps({"Objects": objects, "Quiet": True}))
        print(f"  $ aws s3api delete-objects --bucket {bucket} --delete file://{batch}  # {len(objects)} versions")
        _call(["aws", "s3api", "delete-objects", "--bucket", bucket, "--delete", f"file://{batch}"], started)


def _old_versions(arn: str, started: float) -> list[str]:
    """Non-default versions of a managed policy, oldest first (IAM numbers them v1, v2, ...)."""
    listed = _run_shown(["aws", "iam", "list-policy-versions", "--policy-arn", arn, "--query",
                         "Versions[?!IsDefaultVersion].VersionId", "--output", "json"], started)
    return sorted(json.loads(listed or "[]") or [], key=lambda v: int(v.lstrip("v") or 0))


def delete_old_versions(arn: str, started: float) -> None:
    for version in _old_versions(arn, started):
        _run_shown(["aws", "iam", "delete-policy-version", "--policy-arn", arn, "--version-id", version], started)


def update_policy(ctx: Context, name: str, started: float) -> None:
    """Make the file in Git the policy's default version, when it is not already."""
    arn = ctx.policy_arn(name)
    document = ctx.workdir / "iam" / f"{name}.json"
    default = _run_shown(["aws", "iam", "get-policy", "--policy-arn", arn, "--query", "Policy.DefaultVersionId",
                          "--output", "text"], started).strip()
    current = _run_shown(["aws", "iam", "get-policy-version", "--policy-arn", arn, "--version-id", default,
                          "--query", "PolicyVersion.Document", "--output", "json"], started)
    if current.strip() and json.loads(current) == json.loads(document.read_text()):
        print("  # unchanged")
        return
    old = _old_versions(arn, started)
    if len(old) >= 4:
        _run_shown(["aws", "iam", "delete-policy-version", "--policy-arn", arn, "--version-id", old[0]], started)
    _run_shown(["aws", "iam", "create-policy-version", "--policy-arn", arn, "--policy-document", f"file://{document}",
                "--set-as-default"], started)


def _run_shown(argv: list[str], started: float) -> str:
    print(f"  $ {shlex.join(argv)}")
    return _call(argv, started)
