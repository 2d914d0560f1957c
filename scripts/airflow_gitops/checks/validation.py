"""Everything `validate` checks on one cluster: YAML, builds, schemas, values, policies. All errors at once."""

from __future__ import annotations

from dataclasses import dataclass, field

from airflow_gitops.checks import aws, bypass_policies, live_state, ownership, pod_security, policies, schemas, sops, storage
from airflow_gitops.model import ERROR, UNVALIDATED, ClusterState, Finding
from airflow_gitops.pipeline import render_cluster
from airflow_gitops.settings import Settings
from airflow_gitops.source import bounds
from airflow_gitops.source.provenance import SourceIndex

DEFAULT_KUBERNETES_VERSION = "1.35"


@dataclass
class Report:
    cluster: str
    state: ClusterState
    findings: list[Finding] = field(default_factory=list)
    objects_checked: int = 0

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
    index = index or SourceIndex(settings.repo)
    state = render_cluster(settings, cluster, charts=True, index=index)
    report = Report(cluster, state, list(dict.fromkeys(state.findings)))
    config = policies.PolicyConfig.load(settings.repo)
    folder = schemas.schemas_dir(settings)
    kube = schemas.kubernetes_schemas(state.variables.get("kubernetes_version") or DEFAULT_KUBERNETES_VERSION)
    crds = schemas.crd_schemas(folder)

    chart_objects = [o for release in state.releases for o in release.objects]
    pod_templates = policies.pod_template_resources(chart_objects)
    checked = [*state.resources, *chart_objects, *pod_templates]
    report.objects_checked = len(checked)
    for resource in checked:
        report.findings.extend(schemas.validate_resource(sops.without_sops(resource), kube, crds))

    root_applier = "Kustomization flux-system/flux-system"
    report.findings += policies.cluster_folder([r for r in state.resources if r.applied_by == root_applier])
    report.findings += policies.exact_chart_versions(state.resources)
    report.findings += policies.image_tags(checked)
    report.findings += policies.plaintext_secrets(state.resources)
    airflow_appliers = {f"HelmRelease {r.helmrelease.namespace}/{r.helmrelease.name}" for r in state.releases
                        if r.helmrelease.name == config.airflow_release}
    report.findings += pod_security.pod_security(checked, [r for r in checked if r.applied_by in airflow_appliers],
                                                 state.variables.get("kubernetes_version"), state.resources)
    report.findings += pod_security.namespace_labels(
        state.resources, {r.namespace for r in state.releases if r.helmrelease.name == config.airflow_release})
    report.findings += bypass_policies.check_cluster(settings, cluster, state, checked, config)
    report.findings += storage.storage_classes(state.resources, state.releases, state.variables,
                                               lambda release, path: schemas.values_file_of(release, path, settings.repo))
    report.findings += aws.validate_aws(settings.repo, cluster, state, folder,
                                        lambda release, path: schemas.values_file_of(release, path, settings.repo))
    report.findings += bounds.object_sizes(checked) + ownership.double_owners(state.all_resources)
    if cluster in config.require_resource_requests:
        report.findings += policies.resource_requests(checked)
    if cluster in config.secrets_from_external_secrets:
        report.findings += policies.secrets_have_a_source(
            state.resources, state.releases, lambda release, path: schemas.values_file_of(release, path, settings.repo))

    releases = state.releases
    report.findings += live_state.drift_recreated_jobs(releases)
    report.findings += live_state.unwatched_variable_sources(state.resources, releases, settings.repo, index.generator_inputs)
    report.findings += live_state.unchecked_readiness(state.resources)
    for release in releases:
        def values_file_of(path, release=release):
            return schemas.values_file_of(release, path, settings.repo)

        report.findings += schemas.validate_values(release, folder, settings.repo)
        report.findings += policies.values_secrets(release, values_file_of)
        if release.helmrelease.name == config.airflow_release:
            report.findings += policies.airflow_contract(release, config, values_file_of)
        if release.unrendered_reason and require_charts:
            report.findings.append(Finding(ERROR, release.helmrelease.source_file, release.helmrelease.ref,
                                           "spec.chart", f"chart not rendered: {release.unrendered_reason}",
                                           "chart"))
    if not any(r.helmrelease.name == config.airflow_release for r in releases):
        report.findings.append(Finding(ERROR, f"clusters/{cluster}", f"HelmRelease {config.airflow_release}", "(root)",
                                       "the cluster installs no Airflow release", "airflow-contract"))
    report.findings = list(dict.fromkeys(report.findings))
    return report
