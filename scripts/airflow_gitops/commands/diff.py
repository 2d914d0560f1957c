"""`diff <cluster> --base <ref>`: what a change does to the rendered cluster; exit 1 when anything differs."""

from __future__ import annotations

import sys

from airflow_gitops.commands._common import add_cluster_argument, warn
from airflow_gitops.model import Finding, RenderError
from airflow_gitops.operate.version_change import version_report
from airflow_gitops.policy_config import policy_config_changes
from airflow_gitops.rendered_diff import differing, rendered_objects, unified
from airflow_gitops.settings import Settings
from airflow_gitops.source.containment import check_cluster_name
from airflow_gitops.source.git import base_tree
from airflow_gitops.source.repository import cluster_names


def configure(parser) -> None:
    add_cluster_argument(parser)
    parser.add_argument("--base", required=True, help="git ref to compare the working tree with, e.g. origin/main")


def run(args) -> int:
    settings = Settings.from_args(args)
    refused: list[Finding] = []
    try:
        with base_tree(settings, args.base) as base_settings:
            # A cluster added (or removed) by the change exists on one side only: all added (or all removed).
            known = sorted(set(cluster_names(settings.repo)) | set(cluster_names(base_settings.repo)))
            check_cluster_name(args.cluster, known)
            head = rendered_objects(settings, args.cluster, refused)
            base = rendered_objects(base_settings, args.cluster, side=args.base)
            # A weakened policy changes no rendered object: say it first, where the reviewer reads.
            changes = [f"{finding}\n" for finding in policy_config_changes(base_settings.repo, settings.repo)]
            for line in version_report(base_settings, settings, args.cluster, args.base):
                warn(line)
    except RenderError as error:
        warn(f"error: {error}")
        return 2
    if refused:
        warn(f"{args.cluster}: error: the working tree holds input the tool refuses ({len(refused)} finding(s) "
             "above); no diff is shown")
        return 2
    lines = [*changes, *unified(base, head, args.base)]
    sys.stdout.writelines(lines)
    # Counted on the objects, not on `+++ ` lines, which a text could imitate.
    changed = differing(base, head)
    warn(f"{args.cluster}: {changed} object(s) differ from {args.base}"
         + (f"; {len(changes)} POLICY CHANGE(s) in pyproject.toml [tool.airflow-gitops.policies]" if changes else ""))
    return 1 if lines else 0
