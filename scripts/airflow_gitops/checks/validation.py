"""Everything `validate` checks on one cluster: YAML, builds, schemas, values, policies. All errors at once; and the
report of every cluster, validated one per core and printed in cluster order."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from airflow_gitops.checks import policies, schemas
from airflow_gitops.checks.registry import CheckedCluster, run_checks
from airflow_gitops.model import ERROR, UNVALIDATED, ClusterState, Finding, RenderError, escaped
from airflow_gitops.parallel import WorkerCrashed, run_in_order
from airflow_gitops.pipeline import render_cluster
from airflow_gitops.policy_config import PolicyConfig
from airflow_gitops.settings import CHARTS_ENV, SCHEMAS_ENV, Settings
from airflow_gitops.source.provenance import SourceIndex

DEFAULT_KUBERNETES_VERSION = "1.35"


@dataclass
class Report:
    cluster: str
    state: ClusterState
    findings: list[Finding] = field(default_factory=list)
    objects_checked: int = 0
    # (check, why) for each registered check that the policy configuration turns off for this cluster.
    checks_off: list[tuple[str, str]] = field(default_factory=list)
    # Where the schemas came from: the cluster's own CRDs, the schema folder, the network.
    schema_sources: schemas.SchemaSources | None = None

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def unvalidated(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == UNVALIDATED]

    @property
    def unrendered(self) -> list[str]:
        return [f"{r.helmrelease.ref}: {r.unrendered_reason}" for r in self.state.releases if r.unrendered_reason]


def validate_cluster(settings: Settings, cluster: str, index: SourceIndex | None = None,
                     require_charts: bool = False) -> Report:
    """Render the cluster and run every check on it, each handed the policy configuration the index parsed."""
    index = index or SourceIndex(settings.repo)
    state = render_cluster(settings, cluster, charts=True, index=index)
    report = Report(cluster, state, list(dict.fromkeys(state.findings)))
    sources = schemas.schema_sources(settings, state)
    report.schema_sources = sources
    chart_objects = [o for release in state.releases for o in release.objects]
    checked = [*state.resources, *chart_objects, *policies.pod_template_resources(chart_objects)]
    report.objects_checked = len(checked)
    subject = CheckedCluster(
        settings, state, index, index.policies, sources.folder,
        schemas.kubernetes_schemas(state.variables.get("kubernetes_version") or DEFAULT_KUBERNETES_VERSION),
        sources.crds, checked, require_charts)
    findings, report.checks_off = run_checks(subject)
    report.findings = list(dict.fromkeys([*report.findings, *findings]))
    return report


# More findings for a cluster, from outside the checks (`validate --base`: the Airflow version change, which
# operate/version_change.py reports). A module-level function, or a partial of one: workers receive it pickled.
ExtraFindings = Callable[[Settings, str], list[Finding]]


@dataclass
class Outcome:
    """What report_cluster tells validate_clusters: "broken" (not rendered), "failed" (errors) or "ok", and what
    could not be checked, for the closing line."""

    status: str
    unrendered: list[str] = field(default_factory=list)
    unvalidated: list[str] = field(default_factory=list)
    not_fetched: str | None = None


def validate_clusters(settings: Settings, clusters: list[str], require_charts: bool = False,
                      extra: ExtraFindings | None = None, policies: PolicyConfig | None = None) -> int:
    """Each cluster validated in a worker process (one per core), its output printed in cluster order exactly as
    a serial run prints it, then one closing line on what no cluster could check; the exit code: 2 if a cluster
    could not be rendered, 1 on errors, else 0. The policy configuration is parsed once, here or by the caller,
    and handed to every cluster."""
    policies = policies if policies is not None else PolicyConfig.load(settings.repo)
    tasks = [(settings, cluster, require_charts, extra, policies) for cluster in clusters]
    outcomes: list[Outcome] = []
    for cluster, (outcome, error) in zip(clusters, run_in_order(report_cluster, tasks), strict=True):
        if error is not None:
            if not isinstance(error, WorkerCrashed):
                raise error
            print(f"{cluster}: error: {error}")
            outcome = Outcome("broken")
        outcomes.append(outcome)
    print(closing_line(outcomes))
    statuses = {outcome.status for outcome in outcomes}
    return 2 if "broken" in statuses else 1 if "failed" in statuses else 0


def closing_line(outcomes: list[Outcome]) -> str:
    """One line: what no cluster could check (charts not rendered, objects without a schema) and how to give it."""
    unrendered = sorted({name for o in outcomes for name in o.unrendered})
    unvalidated = sorted({kind for o in outcomes for kind in o.unvalidated})
    if not unrendered and not unvalidated:
        return "checked: every chart rendered, every object validated against its schema"
    parts = []
    if unrendered:
        parts.append(f"{sum(len(o.unrendered) for o in outcomes)} chart release(s) not rendered "
                     f"({', '.join(unrendered)})")
    if unvalidated:
        parts.append(f"{sum(len(o.unvalidated) for o in outcomes)} object(s) without a schema "
                     f"({', '.join(unvalidated)})")
    offline = next((o.not_fetched for o in outcomes if o.not_fetched), None)
    return (f"NOT CHECKED: {' and '.join(parts)}. Give the charts with {CHARTS_ENV}=NAME=PATH,... (or --chart) and "
            f"the schemas with {SCHEMAS_ENV}=DIR (or --schemas), or run where the network reaches the chart "
            "repositories and GitHub" + (f" (here it did not: {offline})" if offline else "") + ".")


def report_cluster(settings: Settings, cluster: str, require_charts: bool, extra: ExtraFindings | None,
                   policies: PolicyConfig | None = None, index: SourceIndex | None = None) -> Outcome:
    """Validate one cluster and print its report."""
    try:
        report = validate_cluster(settings, cluster, index=index or SourceIndex(settings.repo, policies),
                                  require_charts=require_charts)
        if extra is not None:
            report.findings += extra(settings, cluster)
    except RenderError as error:
        print(f"{cluster}: error: {error}")
        return Outcome("broken")
    for finding in sorted(report.findings, key=lambda f: (f.severity != "error", f.file, f.object, f.field)):
        print(f"{cluster}: {finding}")
    for note in report.state.notes:
        print(f"{cluster}: note: {escaped(note)}", file=sys.stderr)
    for line in report.unrendered:
        print(f"{cluster}: NOT RENDERED (its objects are not validated): {escaped(line)}")
    for check, why in report.checks_off:
        print(f"{cluster}: check {check} is off: {escaped(why)}")
    errors, unvalidated = len(report.errors), len(report.unvalidated)
    print(f"{cluster}: {report.objects_checked} objects checked, {errors} error(s), "
          f"{unvalidated} unvalidated, {len(report.unrendered)} release(s) not rendered")
    return Outcome("failed" if errors > 0 else "ok",
                   [r.helmrelease.name for r in report.state.releases if r.unrendered_reason],
                   [_unvalidated_kind(f) for f in report.unvalidated],
                   report.schema_sources.not_fetched if report.schema_sources else None)


def _unvalidated_kind(finding: Finding) -> str:
    """What an unvalidated finding is about: `ExternalSecret.external-secrets.io`, `values of airflow`."""
    if finding.object.startswith("values of "):
        return f"values of {finding.object.rsplit('/', 1)[-1]}"
    match = re.search(r"no schema for CRD (\S+)", finding.message)
    return match[1] if match else finding.object.split(" ", 1)[0]
