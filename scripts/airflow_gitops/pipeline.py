"""One cluster through Flux's controllers, offline: the repository (source), kustomize-controller (build,
post-build, dependsOn order), then helm-controller (values, chart, render) on the HelmReleases it applied."""

from __future__ import annotations

from airflow_gitops.helm_controller import chart
from airflow_gitops.helm_controller.render import prefetch_releases, render_releases
from airflow_gitops.kustomize_controller.reconcile import apply_kustomizations
from airflow_gitops.model import ClusterState
from airflow_gitops.settings import Settings
from airflow_gitops.source import containment
from airflow_gitops.source.provenance import SourceIndex
from airflow_gitops.source.repository import cluster_names


def render_cluster(settings: Settings, cluster: str, charts: bool = True, index: SourceIndex | None = None,
                   chart_cache: chart.ChartCache | None = None) -> ClusterState:
    """Every object Flux applies for clusters/<cluster>; with `charts`, each HelmRelease's chart objects too
    (from `chart_cache`, by default the process's)."""
    repo = settings.repo
    containment.check_cluster_name(cluster, cluster_names(repo))
    index = index or SourceIndex(repo)
    state = ClusterState(cluster)
    state.findings.extend(index.yaml_errors)
    charts_cache = chart_cache or chart.PROCESS

    def prefetch(scratch: ClusterState, added: list) -> None:
        # helm-controller starts on a HelmRelease while kustomize-controller still builds what it depends on.
        prefetch_releases(settings, index, scratch, added, charts_cache)

    apply_kustomizations(settings, index, state, index.sandbox(), prefetch if charts else None)
    if charts:
        state.releases = render_releases(settings, index, state, charts_cache)
    return state
