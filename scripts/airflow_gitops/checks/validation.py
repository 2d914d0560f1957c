"""Everything `validate` checks on one cluster: YAML, builds, schemas, values, policies. All errors at once; and the
report of every cluster, validated one per core and printed in cluster order."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from airflow_gitops.checks import policies, schemas
from airflow_gitops.checks.registry import CheckedCluster, run_checks
from airflow_gitops.model import ERROR, UNVALIDATED, ClusterState, Finding, RenderError, escaped
from airflow_gitops.parallel import WorkerCrashed, run_in_order
from airflow_gitops.pipeline import render_cluster
from airflow_gitops.policy_config import PolicyConfig
from airflow_gitops.settings import Settings
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
    folder = schemas.schemas_dir(settings)
    chart_objects = [o for release in state.releases for o in release.objects]
    checked = [*state.resources, *chart_objects, *policies.pod_template_resources(chart_objects)]
    report.objects_checked = len(checked)
    subject = CheckedCluster(
        settings, state, index, index.policies, folder,
        schemas.kubernetes_schemas(state.variables.get("kubernetes_version") or DEFAULT_KUBERNETES_VERSION),
        schemas.crd_schemas(folder), checked, require_charts)
    findings, report.checks_off = run_checks(subject)
    report.findings = list(dict.fromkeys([*report.findings, *findings]))
    return report


# More findings for a cluster, from outside the checks (`validate --base`: the Airflow version change, which
# operate/version_change.py reports). A module-level function, or a partial of one: workers receive it pickled.
ExtraFindings = Callable[[Settings, str], list[Finding]]


def validate_clusters(settings: Settings, clusters: list[str], require_charts: bool = False,
                      extra: ExtraFindings | None = None, policies: PolicyConfig | None = None) -> int:
    """Each cluster validated in a worker process (one per core), its output printed in cluster order exactly as
    a serial run prints it; the exit code: 2 if a cluster could not be rendered, 1 on errors, else 0. The policy
    configuration is parsed once, here or by the caller, and handed to every cluster."""
    failed = broken = False
    policies = policies if policies is not None else PolicyConfig.load(settings.repo)
    tasks = [(settings, cluster, require_charts, extra, policies) for cluster in clusters]
    for cluster, (outcome, error) in zip(clusters, run_in_order(report_cluster, tasks), strict=True):
        if error is not None:
            if not isinstance(error, WorkerCrashed):
                raise error
            print(f"{cluster}: error: {error}")
            outcome = "broken"
        failed |= outcome == "failed"
        broken |= outcome == "broken"
    return 2 if broken else 1 if failed else 0


def report_cluster(settings: Settings, cluster: str, require_charts: bool, extra: ExtraFindings | None,
                   policies: PolicyConfig | None = None, index: SourceIndex | None = None) -> str:
    """Validate one cluster and print its report: "broken" (not rendered), "failed" (errors) or "ok"."""
    try:
        report = validate_cluster(settings, cluster, index=index or SourceIndex(settings.repo, policies),
                                  require_charts=require_charts)
        if extra is not None:
            report.findings += extra(settings, cluster)
    except RenderError as error:
        print(f"{cluster}: error: {error}")
        return "broken"
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
    return "failed" if errors > 0 else "ok"
