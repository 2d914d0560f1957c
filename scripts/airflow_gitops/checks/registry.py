"""Every check `validate` runs, by name: what it checks, the clusters it applies to, and its function from the
rendered cluster to findings. `validate --list-checks` prints this table.

A check runs on every cluster, unless `clusters_key` names a cluster list of the policy configuration
([tool.airflow-gitops.policies] in pyproject.toml): then it runs on the clusters listed there, and is off for a
cluster only where that cluster is exempted with a written reason, which `validate` prints. Nothing else turns a
check off."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_gitops.checks import (
    aws,
    cluster_scope,
    deprecated_values,
    live_state,
    object_size,
    ownership,
    pod_security,
    policies,
    runtime_contract,
    schema_guard,
    schemas,
    secret_values,
    sops,
    sources,
    storage,
    supply_chain,
    workflow_pins,
)
from airflow_gitops.helm_controller.api import HelmRelease
from airflow_gitops.model import ERROR, ClusterState, Finding, ReleaseRender, Resource
from airflow_gitops.policy_config import PolicyConfig
from airflow_gitops.settings import Settings
from airflow_gitops.source.provenance import SourceIndex
from airflow_gitops.source.repository import cluster_names

ROOT_APPLIER = "Kustomization flux-system/flux-system"


@dataclass
class CheckedCluster:
    """What every check reads: the rendered cluster, and what validate derived from it once."""

    settings: Settings
    state: ClusterState
    index: SourceIndex
    config: PolicyConfig
    schema_folder: Path | None
    kube: schemas.KubernetesSchemas
    crds: schemas.CRDSchemas
    # Git objects, chart objects and the worker pod templates: everything a pod or schema check looks at.
    checked: list[Resource]
    require_charts: bool = False

    @property
    def name(self) -> str:
        return self.state.name

    @property
    def repo(self) -> Path:
        return self.settings.repo

    @property
    def airflow_releases(self) -> list[ReleaseRender]:
        return [r for r in self.state.releases if r.helmrelease.name == self.config.airflow_release]

    def values_file_of(self, release: ReleaseRender, path: Any) -> str:
        return schemas.values_file_of(release, list(path), self.repo)

    def values_file_of_release(self, release: ReleaseRender) -> Callable[[Any], str]:
        return lambda path: self.values_file_of(release, path)


@dataclass(frozen=True)
class Check:
    name: str
    description: str
    run: Callable[[CheckedCluster], list[Finding]]
    # A cluster list of the policy configuration; None: the check runs on every cluster.
    clusters_key: str | None = None


def _per_release(check: Callable[[CheckedCluster, ReleaseRender], list[Finding]]):
    return lambda cluster: [f for release in cluster.state.releases for f in check(cluster, release)]


def _schemas(cluster: CheckedCluster) -> list[Finding]:
    return [f for resource in cluster.checked
            for f in [*schemas.validate_resource(sops.without_sops(resource), cluster.kube, cluster.crds),
                      *schemas.byte_fields(resource)]]


def _pod_security(cluster: CheckedCluster) -> list[Finding]:
    appliers = {f"HelmRelease {r.helmrelease.namespace}/{r.helmrelease.name}" for r in cluster.airflow_releases}
    airflow_workloads = [r for r in cluster.checked if r.applied_by in appliers]
    version = cluster.state.variables.get("kubernetes_version")
    return [*pod_security.pod_security(cluster.checked, airflow_workloads, version, cluster.state.resources),
            *pod_security.namespace_labels(cluster.state.resources, {r.namespace for r in cluster.airflow_releases})]


def _values_secrets(cluster: CheckedCluster, release: ReleaseRender) -> list[Finding]:
    return secret_values.values_secrets(release, cluster.values_file_of_release(release))


def _values_configmaps(cluster: CheckedCluster) -> set[tuple[str, str]]:
    found = set()
    for release in cluster.state.releases:
        for source in HelmRelease.parse(release.helmrelease).values_from:
            if source.kind == "ConfigMap" and source.name is not None:
                found.add((release.helmrelease.namespace, source.name))
    return found


def _airflow_images(cluster: CheckedCluster) -> list[Finding]:
    repositories = list(cluster.config.airflow_image_repositories)
    return [f for release in cluster.airflow_releases
            for f in supply_chain.airflow_images(release, repositories, cluster.config.airflow_version,
                                                 cluster.values_file_of_release(release))]


def _dags_repository(cluster: CheckedCluster) -> list[Finding]:
    repositories = list(cluster.config.dags_repositories)
    return [f for release in cluster.airflow_releases
            for f in supply_chain.dags_repository(release, cluster.state.variables, cluster.state.resources,
                                                  repositories, cluster.values_file_of_release(release))]


def _airflow_contract(cluster: CheckedCluster) -> list[Finding]:
    findings = [f for release in cluster.airflow_releases
                for f in [*policies.airflow_contract(release, cluster.config, cluster.values_file_of_release(release)),
                          *runtime_contract.values_branch(release, cluster.state.variables,
                                                          cluster.values_file_of_release(release))]]
    release = next(iter(cluster.airflow_releases), None)
    contract = runtime_contract.contract_of(release, cluster.state.resources, cluster.state.variables,
                                            list(cluster.config.airflow_image_repositories),
                                            cluster.config.airflow_version, list(cluster.config.dags_repositories))
    findings += runtime_contract.check(release, cluster.checked, contract)
    if not cluster.airflow_releases:
        findings.append(Finding(ERROR, f"clusters/{cluster.name}", f"HelmRelease {cluster.config.airflow_release}",
                                "(root)", "the cluster installs no Airflow release", "airflow-contract"))
    return findings


def _charts_rendered(cluster: CheckedCluster) -> list[Finding]:
    if not cluster.require_charts:
        return []
    return [Finding(ERROR, r.helmrelease.source_file, r.helmrelease.ref, "spec.chart",
                    f"chart not rendered: {r.unrendered_reason}", "chart")
            for r in cluster.state.releases if r.unrendered_reason]


# In the order validate has always run them (findings with the same file, object and field keep this order).
CHECKS: list[Check] = [
    Check("schema", "every object (Git, chart output, worker pod template) against Kubernetes' schemas and the CRDs",
          _schemas),
    Check("cluster-folder", "clusters/<cluster>/ holds only Flux Kustomizations and cluster-vars",
          lambda c: policies.cluster_folder([r for r in c.state.resources if r.applied_by == ROOT_APPLIER])),
    Check("exact-chart-version", "every HelmRelease pins an exact chart version",
          lambda c: policies.exact_chart_versions(c.state.resources)),
    Check("image-tag", "no untagged or :latest image", lambda c: policies.image_tags(c.checked)),
    Check("plaintext-secret", "no plaintext Secret in Git (SOPS-encrypted or ExternalSecret only)",
          lambda c: policies.plaintext_secrets(c.state.resources)),
    Check("pod-security", "Pod Security Standards: baseline everywhere, restricted for Airflow; Namespace labels",
          _pod_security),
    Check("policy-config", "the policy configuration itself: known keys, no empty list, every cluster listed or exempt",
          lambda c: c.config.findings(c.name, cluster_names(c.repo))),
    Check("pinned-actions", "every GitHub Action is pinned to a commit SHA with its version in a comment; containers "
                            "and services by digest; CI's apt, pip and npm installs by version and hash",
          lambda c: [*supply_chain.pinned_actions(c.repo),
                     *workflow_pins.pinned_ci(c.repo, supply_chain.workflow_files(c.repo))]),
    Check("bootstrap-folder", "clusters/<cluster>/flux-system/ holds only what flux bootstrap writes",
          lambda c: supply_chain.bootstrap_folder([r for r in c.state.resources if r.applied_by == ROOT_APPLIER],
                                                  c.name)),
    Check("source-origin", "every source Flux fetches is the cluster's own repository or an allowed URL, without "
                           "credentials; references resolved as Flux resolves them",
          lambda c: sources.sources(c.state.all_resources, c.config, c.name)),
    Check("cluster-scope", "RBAC that grants power, admission control, CRDs/APIServices and Namespaces only from the "
                           "appliers the policy configuration names; every namespace pods run in is in Git",
          lambda c: cluster_scope.cluster_scope(c.state.resources, c.state.all_resources, c.config)),
    Check("chart-pins", "chart references (chartRef, GitRepository/Bucket charts) pin an exact version",
          lambda c: supply_chain.chart_pins(c.state.resources)),
    Check("image-source", "every rendered image has an exact tag or digest from allowed-image-registries",
          lambda c: [*supply_chain.rendered_images(c.checked, list(c.config.allowed_image_registries)),
                     *supply_chain.post_renderer_images(c.state.resources, list(c.config.allowed_image_registries)),
                     *[f for release in c.state.releases
                       for f in supply_chain.values_images(release, list(c.config.allowed_image_registries),
                                                           c.values_file_of_release(release))]]),
    Check("sops", "SOPS-encrypted Secrets carry valid SOPS metadata and a Kustomization that decrypts them",
          lambda c: sops.check(c.state.resources)),
    Check("secret-value", "no secret outside a Secret: by its shape in every string of Git, values and chart output; "
          "by its key in env, config, ConfigMaps, post-build variables, connections and arguments",
          lambda c: [*_per_release(_values_secrets)(c),
                     *secret_values.git_secrets(c.state.resources, _values_configmaps(c)),
                     *secret_values.rendered_secrets(c.state.releases)]),
    Check("airflow-image", "Airflow's own images are the tested Airflow, from airflow-image-repositories",
          _airflow_images),
    Check("dags-source", "git-sync takes DAGs only from dags-repositories and the cluster's git_url",
          _dags_repository),
    Check("storage-class", "every storageClassName used is a StorageClass applied before it, or provided",
          lambda c: storage.storage_classes(c.state.resources, c.state.releases, c.state.variables,
                                            c.values_file_of)),
    Check("aws-config", "the AWS side (eksctl ClusterConfig, IAM, S3, budget) matches the cluster",
          lambda c: aws.validate_aws(c.repo, c.name, c.state, c.schema_folder, c.values_file_of)),
    Check("object-size", "no ConfigMap/Secret data over 1 MiB, no object over etcd's 1.5 MiB",
          lambda c: object_size.object_sizes(c.checked)),
    Check("ownership", "one owner per object: never two Kustomizations, or one and a HelmRelease",
          lambda c: ownership.double_owners(c.state.all_resources)),
    Check("resource-requests", "every container requests CPU and memory",
          lambda c: policies.resource_requests(c.checked), clusters_key="require-resource-requests"),
    Check("secret-source", "every Secret read by name is made by an ExternalSecret",
          lambda c: policies.secrets_have_a_source(c.state.resources, c.state.releases, c.values_file_of),
          clusters_key="secrets-from-external-secrets"),
    Check("drift-jobs", "no chart Job with ttlSecondsAfterFinished under drift detection",
          lambda c: live_state.drift_recreated_jobs(c.state.releases)),
    Check("watch-label", "the watch label on every valuesFrom/substituteFrom object whose content changes in place",
          lambda c: live_state.unwatched_variable_sources(c.state.resources, c.state.releases, c.repo,
                                                          c.index.generator_inputs)),
    Check("readiness", "a healthCheckExprs entry for every custom resource kind a Kustomization waits for",
          lambda c: live_state.unchecked_readiness(c.state.resources)),
    Check("wait-timeout", "a Kustomization waits longer for its HelmReleases than their retries and remediations take",
          lambda c: live_state.short_wait_timeouts(c.state.resources)),
    Check("prune-protection", "kustomize.toolkit.fluxcd.io/prune: disabled on every object that holds data under a "
          "pruning Kustomization (database Clusters, PVCs, their Namespace)",
          lambda c: live_state.unprotected_data(c.state.resources, c.state.releases)),
    Check("values-schema", "composed values against the chart's values schema, and no unknown top-level key",
          _per_release(lambda c, release: schemas.validate_values(release, c.schema_folder, c.repo))),
    Check("values-deprecated", "no value the chart marks deprecated (its values.schema.json, its rendered NOTES.txt)",
          _per_release(lambda c, release: deprecated_values.deprecated_values(release,
                                                                              c.values_file_of_release(release)))),
    Check("values-secret", "no secret in plain chart values (the chart's password fields)",
          _per_release(lambda c, release: policies.values_secrets(release, c.values_file_of_release(release)))),
    Check("airflow-contract", "the Airflow contract (executor, git-sync repository and branch, tested images, secrets "
          "by name) in the values and where every container receives it (env, envFrom, airflow.cfg, flags)",
          _airflow_contract),
    Check("schema-guard", "the Airflow release never runs an older Airflow on a newer schema: schema-version annotation, "
          "the API server's policy before it, the migrate Job's downgrade, forward-only retries after the Jobs' TTL",
          lambda c: [f for release in c.airflow_releases
                     for f in schema_guard.check(release, c.state.resources, c.values_file_of_release(release))]),
    Check("chart", "with --require-charts, every HelmRelease's chart rendered", _charts_rendered),
]


def off_reason(config: PolicyConfig, check: Check, cluster: str) -> str | None:
    """Why `check` does not run on `cluster`, or None when it runs."""
    if check.clusters_key is None:
        return None
    return config.cluster_list(check.clusters_key).off_reason(cluster)


def run_checks(cluster: CheckedCluster) -> tuple[list[Finding], list[tuple[str, str]]]:
    """Every check that applies to the cluster, in order; and (check, why) for each one that is off."""
    findings: list[Finding] = []
    off: list[tuple[str, str]] = []
    for check in CHECKS:
        reason = off_reason(cluster.config, check, cluster.name)
        if reason is not None:
            off.append((check.name, reason))
            continue
        try:
            findings += check.run(cluster)
        except TYPE_ERRORS as error:
            # A check reads typed objects; one that is not is the schema check's finding, which names its file,
            # object and field. Only then is a failed check reported as not run, never as an internal error.
            if not _typed_findings(cluster, findings):
                raise
            findings.append(Finding(ERROR, f"clusters/{cluster.name}", f"check {check.name}",
                                    "(not run)", f"could not judge this cluster: an input has the wrong type "
                                    f"({type(error).__name__}: {str(error)[:120]}); the schema findings name it",
                                    check.name))
    return findings, off


# What reading a field of the wrong type raises.
TYPE_ERRORS: tuple[type[Exception], ...] = (AttributeError, TypeError, KeyError, IndexError, ValueError)
TYPED_CHECKS = ("schema", "values-schema", "yaml", "build", "values", "chart", "substitution")


def _typed_findings(cluster: CheckedCluster, findings: list[Finding]) -> bool:
    """Whether a schema (or YAML, build, values) finding already reports a wrongly typed input of this cluster."""
    if any(f.check in TYPED_CHECKS for f in [*findings, *cluster.state.findings]):
        return True
    return any(schemas.validate_values(release, cluster.schema_folder, cluster.repo)
               for release in cluster.state.releases)


def describe(settings: Settings, config: PolicyConfig) -> list[str]:
    """One line per check for `validate --list-checks`: name, clusters, description."""
    clusters = cluster_names(settings.repo)
    lines = []
    width = max(len(check.name) for check in CHECKS)
    for check in CHECKS:
        cluster_list = config.cluster_list(check.clusters_key) if check.clusters_key else None
        if cluster_list is None:
            applies = "all clusters"
        elif not cluster_list.valid:
            applies = f"all clusters ({check.clusters_key} is wrong: see the policy-config check)"
        else:
            listed, exempt = cluster_list.listed, cluster_list.exempt
            applies = f"{', '.join(listed) or 'no cluster'} ({check.clusters_key})"
            if exempt:
                applies += f"; off for {', '.join(c for c in clusters if c in exempt) or ', '.join(exempt)}"
        lines.append(f"{check.name:<{width}}  {check.description}  [{applies}]")
    return lines
