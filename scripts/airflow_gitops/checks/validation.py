"""Everything `validate` checks on one cluster: YAML, builds, schemas, values, policies. All errors at once."""

from __future__ import annotations

from dataclasses import dataclass, field

from airflow_gitops.checks import policies, schemas
from airflow_gitops.checks.registry import CheckedCluster, run_checks
from airflow_gitops.model import ERROR, UNVALIDATED, ClusterState, Finding
from airflow_gitops.pipeline import render_cluster
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
