"""`rollback [COMMIT]`: undo a deploy commit on the live cluster, by revert; an Airflow downgrade in two steps.
The plan (what to revert, in one step or two) is operate/rollback.py's; this command prints it (--dry-run) or runs it.
"""

from __future__ import annotations

from airflow_gitops.commands._common import warn
from airflow_gitops.model import RenderError
from airflow_gitops.operate.plans import add_dry_run, run_or_print
from airflow_gitops.operate.rollback import Refused, current_branch, git, last_deploy_commit, plan
from airflow_gitops.settings import Settings, add_common_options


def configure(parser) -> None:
    parser.add_argument("commit", nargs="?", help="deploy commit to roll back (default: the last one that changed "
                                                  "what a cluster renders)")
    add_common_options(parser)
    parser.add_argument("--cluster", help="the live cluster kubectl/flux talk to (default: the only one the commit "
                                          "changes, else required)")
    parser.add_argument("--remote", default="origin")
    parser.add_argument("--branch", help="branch Flux follows (default: the current branch)")
    parser.add_argument("--namespace", default="airflow")
    parser.add_argument("--release", default="airflow")
    add_dry_run(parser)


def run(args) -> int:
    settings = Settings.from_args(args)
    repo = settings.repo
    try:
        dirty = git(repo, "status", "--porcelain")
        if dirty:
            raise Refused("the working tree has changes; commit or stash them first:\n" + dirty)
        commit = args.commit or last_deploy_commit(settings)
        branch = args.branch or current_branch(settings, args.cluster)
        summary, actions = plan(settings, commit, args.cluster, args.remote, branch, args.namespace, args.release)
    except (Refused, RenderError) as error:
        warn(f"error: {error}")
        return 2
    for line in summary:
        print(f"# {line}")
    return run_or_print(actions, repo, args.dry_run)
