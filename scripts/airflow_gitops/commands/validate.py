"""`validate <cluster|all>`: schemas and policies on the Flux objects and every rendered chart object."""

from __future__ import annotations

import dataclasses
import functools

from airflow_gitops.checks import schemas, transitions
from airflow_gitops.checks.registry import describe
from airflow_gitops.checks.validation import validate_clusters
from airflow_gitops.commands._common import clusters_of
from airflow_gitops.model import WARNING, Finding, Resource
from airflow_gitops.operate.version_change import version_findings
from airflow_gitops.pipeline import render_cluster
from airflow_gitops.policy_config import PolicyConfig, changes
from airflow_gitops.settings import Settings, add_common_options
from airflow_gitops.source.git import base_tree


def configure(parser) -> None:
    parser.add_argument("cluster", nargs="?", help="cluster folder under clusters/, or `all`")
    add_common_options(parser)
    parser.add_argument("--list-checks", action="store_true",
                        help="print every check: its name, the clusters it applies to, what it checks")
    parser.add_argument("--require-charts", action="store_true",
                        help="a HelmRelease whose chart cannot be had is an error (use where the network is)")
    parser.add_argument("--base", metavar="REF",
                        help="also check the change from REF (e.g. origin/main): Airflow version, schema, backup, and updates of "
                             "existing objects that the cluster refuses")


def policy_changes(settings: Settings, policies: PolicyConfig, ref: str) -> list[Finding]:
    """Every change of the policy table since `ref`, for the reviewer. Warnings, not errors: the table's owners
    approve it (.github/CODEOWNERS), and the strict loader already refuses a table that turns checks off silently."""
    with base_tree(settings, ref) as base:
        return [dataclasses.replace(f, severity=WARNING) for f in changes(PolicyConfig.load(base.repo), policies)]


def run(args) -> int:
    settings = Settings.from_args(args)
    policies = PolicyConfig.load(settings.repo)  # the one parse of the policy table; every cluster is handed it
    if args.list_checks:
        print("\n".join(describe(settings, policies)))
        return 0
    if args.cluster is None:
        raise SystemExit("give a cluster (a folder under clusters/) or `all`, or --list-checks")
    clusters = clusters_of(settings, args.cluster, allow_all=True)
    if args.base:
        for finding in policy_changes(settings, policies, args.base):
            print(f"policy: {finding}")
    extra = functools.partial(change_findings, ref=args.base) if args.base else None
    return validate_clusters(settings, clusters, args.require_charts, extra, policies)


def applied_objects(settings: Settings, cluster: str) -> list[Resource]:
    """Every object the cluster applies: from Git, and rendered from its charts (where a chart is at hand)."""
    state = render_cluster(settings, cluster, charts=True)
    return [*state.resources, *(o for release in state.releases for o in release.objects)]


def change_findings(settings: Settings, cluster: str, ref: str) -> list[Finding]:
    """Everything `validate --base` finds in the change from `ref`: the Airflow version change
    (operate/version_change.py), and every update of an existing object that the API server or an operator refuses
    (checks/transitions.py). A module-level function: validate's workers receive it pickled."""
    with base_tree(settings, ref) as base:
        findings = version_findings(base, settings, cluster, ref)
        if not (base.repo / "clusters" / cluster).is_dir():
            return findings
        old = applied_objects(base, cluster)
    return findings + transitions.refused_changes(old, applied_objects(settings, cluster),
                                                  schemas.schemas_dir(settings))
