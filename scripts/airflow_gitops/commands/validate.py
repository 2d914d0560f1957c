"""`validate <cluster|all>`: schemas and policies on the Flux objects and every rendered chart object."""

from __future__ import annotations

import dataclasses
import sys

from airflow_gitops import policy_config
from airflow_gitops.checks.registry import describe
from airflow_gitops.checks.validation import validate_cluster
from airflow_gitops.commands._common import clusters_of
from airflow_gitops.model import WARNING, Finding, RenderError
from airflow_gitops.policy_config import PolicyConfig
from airflow_gitops.settings import Settings, add_common_options
from airflow_gitops.source.provenance import SourceIndex


def configure(parser) -> None:
    parser.add_argument("cluster", nargs="?", help="cluster folder under clusters/, or `all`")
    add_common_options(parser)
    parser.add_argument("--list-checks", action="store_true",
                        help="print every check: its name, the clusters it applies to, what it checks")
    parser.add_argument("--require-charts", action="store_true",
                        help="a HelmRelease whose chart cannot be had is an error (use where the network is)")
    parser.add_argument("--base", metavar="REF",
                        help="also check the change from REF (e.g. origin/main): Airflow version, schema, backup")


def version_change(settings: Settings, cluster: str, ref: str):
    """Findings of the Airflow version change from `ref`; its summary goes to stdout with the rest."""
    from airflow_gitops.commands.diff import base_tree
    from airflow_gitops.operate.downgrade import NoAirflowRelease, analyse

    with base_tree(settings, ref) as base:
        if not (base.repo / "clusters" / cluster).is_dir():
            print(f"{cluster}: a new cluster (not in {ref}): no Airflow version change to check")
            return []
        try:
            change = analyse(base, settings, cluster, ref)
        except NoAirflowRelease as missing:
            # The airflow-contract check already reports a cluster without the release.
            print(f"{cluster}: no Airflow version to compare ({missing.message} on one side)")
            return []
    print(f"{cluster}: {change.describe('<this commit>')}")
    return change.findings


def policy_changes(settings: Settings, policies: PolicyConfig, ref: str) -> list[Finding]:
    """Every change of the policy table since `ref`, for the reviewer. Warnings, not errors: the table's owners
    approve it (.github/CODEOWNERS), and the strict loader already refuses a table that turns checks off silently."""
    from airflow_gitops.commands.diff import base_tree

    with base_tree(settings, ref) as base:
        return [dataclasses.replace(f, severity=WARNING)
                for f in policy_config.changes(PolicyConfig.load(base.repo), policies)]


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
    return validate_clusters(settings, clusters, args.require_charts, args.base, policies)


def validate_clusters(settings: Settings, clusters: list[str], require_charts: bool = False,
                      base: str | None = None, policies: PolicyConfig | None = None) -> int:
    """Each cluster validated in a worker process (one per core), its output printed in cluster order exactly as
    a serial run prints it; the exit code: 2 if a cluster could not be rendered, 1 on errors, else 0."""
    from airflow_gitops.parallel import WorkerCrashed, run_in_order

    failed = broken = False
    policies = policies if policies is not None else PolicyConfig.load(settings.repo)
    tasks = [(settings, cluster, require_charts, base, policies) for cluster in clusters]
    for cluster, (outcome, error) in zip(clusters, run_in_order(report_cluster, tasks), strict=True):
        if error is not None:
            if not isinstance(error, WorkerCrashed):
                raise error
            print(f"{cluster}: error: {error}")
            outcome = "broken"
        failed |= outcome == "failed"
        broken |= outcome == "broken"
    return 2 if broken else 1 if failed else 0


def report_cluster(settings: Settings, cluster: str, require_charts: bool, base: str | None,
                   policies: PolicyConfig | None = None, index: SourceIndex | None = None) -> str:
    """Validate one cluster and print its report: "broken" (not rendered), "failed" (errors) or "ok"."""
    try:
        report = validate_cluster(settings, cluster, index=index or SourceIndex(settings.repo, policies),
                                  require_charts=require_charts)
        if base:
            report.findings += version_change(settings, cluster, base)
    except RenderError as error:
        print(f"{cluster}: error: {error}")
        return "broken"
    for finding in sorted(report.findings, key=lambda f: (f.severity != "error", f.file, f.object, f.field)):
        print(f"{cluster}: {finding}")
    for note in report.state.notes:
        print(f"{cluster}: note: {note}", file=sys.stderr)
    for line in report.unrendered:
        print(f"{cluster}: NOT RENDERED (its objects are not validated): {line}")
    for check, why in report.checks_off:
        print(f"{cluster}: check {check} is off: {why}")
    errors, unvalidated = len(report.errors), len(report.unvalidated)
    print(f"{cluster}: {report.objects_checked} objects checked, {errors} error(s), "
          f"{unvalidated} unvalidated, {len(report.unrendered)} release(s) not rendered")
    return "failed" if errors > 0 else "ok"
