"""The policies that close the ways around the older ones (issue 8): secret values outside Secrets, where code and
images come from, pinned workflows, the flux-system folder, the policy configuration itself, chart references, SOPS.
One entry point, so that validation.validate_cluster calls them in one line."""

from __future__ import annotations

from airflow_gitops.checks import policy_config, schemas, secret_values, sops, supply_chain
from airflow_gitops.checks.policies import PolicyConfig
from airflow_gitops.model import ClusterState, Finding, Resource
from airflow_gitops.settings import Settings
from airflow_gitops.source.repository import cluster_names

ROOT_APPLIER = "Kustomization flux-system/flux-system"


def check_cluster(settings: Settings, cluster: str, state: ClusterState, checked: list[Resource],
                  config: PolicyConfig) -> list[Finding]:
    repo = settings.repo
    findings = policy_config.check(repo, cluster, cluster_names(repo))
    registries = list(policy_config.value(repo, "allowed-image-registries", []) or [])
    airflow_repositories = list(policy_config.value(repo, "airflow-image-repositories", []) or [])
    dags_repositories = list(policy_config.value(repo, "dags-repositories", []) or [])

    findings += supply_chain.pinned_actions(repo)
    findings += supply_chain.bootstrap_folder([r for r in state.resources if r.applied_by == ROOT_APPLIER], cluster)
    findings += supply_chain.chart_pins(state.resources)
    findings += supply_chain.rendered_images(checked, registries)
    findings += supply_chain.post_renderer_images(state.resources, registries)
    findings += sops.check(state.resources)

    values_configmaps = set()
    for release in state.releases:
        def values_file_of(path, release=release):
            return schemas.values_file_of(release, list(path), repo)

        for source in supply_chain.sequence(supply_chain.mapping(release.helmrelease.obj.get("spec")).get("valuesFrom")):
            if supply_chain.mapping(source).get("kind") == "ConfigMap":
                values_configmaps.add((release.helmrelease.namespace, source.get("name")))
        findings += secret_values.values_secrets(release, values_file_of)
        findings += supply_chain.values_images(release, registries, values_file_of)
        if release.helmrelease.name == config.airflow_release:
            findings += supply_chain.airflow_images(release, airflow_repositories, config.airflow_version, values_file_of)
            findings += supply_chain.dags_repository(release, state.variables, state.resources, dags_repositories,
                                                     values_file_of)
    findings += secret_values.git_secrets(state.resources, values_configmaps)
    return findings
