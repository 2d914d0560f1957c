"""`rollback [COMMIT]`: undo a deploy commit on the live clusters, by revert; an Airflow downgrade in two steps.
The plan is operate/rollback.py's, computed from where Git and the clusters stand, so a second run resumes; this
command prints it (--dry-run) or runs it.
"""

from __future__ import annotations

import subprocess
import sys

from airflow_gitops.commands._common import warn
from airflow_gitops.model import RenderError
from airflow_gitops.operate.plans import PlanFailed, add_dry_run, show
from airflow_gitops.operate.rollback import (
    Options,
    Refused,
    check_clean,
    execute,
    git,
    last_deploy_commit,
    plan,
    targets_from,
)
from airflow_gitops.settings import Settings, add_common_options


def configure(parser) -> None:
    parser.add_argument("commit", nargs="?", help="deploy commit to roll back (default: the last one that changed "
                                                  "what a cluster renders)")
    add_common_options(parser)
    parser.add_argument("--cluster", action="append", metavar="NAME[=KUBE_CONTEXT]",
                        help="a live cluster to supervise: its folder in clusters/, and the kubectl context that "
                             "reaches it (default: the current context); repeat for every cluster you watch")
    parser.add_argument("--via", choices=["pull-request", "push"], default="pull-request",
                        help="how each step reaches the branch: a pull request that the run waits to be merged "
                             "(default), or a direct push (only where nothing protects the branch)")
    parser.add_argument("--abort", action="store_true",
                        help="undo step 1 of this rollback (its downgrade failed): Airflow's newer release comes back")
    parser.add_argument("--remote", default="origin")
    parser.add_argument("--branch", help="branch Flux follows (default: the current branch)")
    parser.add_argument("--namespace", default="airflow")
    parser.add_argument("--release", default="airflow")
    parser.add_argument("--timeout", type=float, default=4 * 3600, metavar="SECONDS",
                        help="longest wait for a merge or a Ready release (default: 4 h)")
    add_dry_run(parser)


def run(args) -> int:
    settings = Settings.from_args(args)
    repo = settings.repo
    try:
        check_clean(repo)
        commit = args.commit or last_deploy_commit(settings)
        branch = args.branch or git(repo, "rev-parse", "--abbrev-ref", "HEAD")
        options = Options(remote=args.remote, branch=branch, namespace=args.namespace, release=args.release,
                          via=args.via, targets=targets_from(args.cluster), abort=args.abort,
                          timeout_s=args.timeout, live=not args.dry_run)
        summary, actions = plan(settings, commit, options)
    except (Refused, RenderError) as error:
        warn(f"error: {error}")
        return 2
    for line in summary:
        print(f"# {line}")
    if args.dry_run:
        print(show(actions))  # type: ignore[arg-type]
        return 0
    try:
        execute(actions, repo)
    except (PlanFailed, Refused, FileNotFoundError, subprocess.TimeoutExpired) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
