"""Every source Flux would fetch is judged (issue 16, class 1).

The rule: Flux fetches only from the cluster's own repository and from URLs the policy configuration allows.

- Each source object that reaches the cluster (from Git or from a chart's output) is judged by its URL:
  a GitRepository by `allowed-git-sources`, a HelmRepository by `allowed-helm-repositories` (`allowed-oci-repositories`
  when `type: oci`), an OCIRepository by `allowed-oci-repositories`. A Bucket or an ExternalArtifact has no allowlist:
  it is an error. A URL with credentials in it is an error whatever the list says.
- Each reference to a source (a Kustomization's `spec.sourceRef`, a HelmRelease's `spec.chart.spec.sourceRef` and
  `spec.chartRef`, a HelmChart's `spec.sourceRef`, a GitRepository's `spec.include`) is resolved as Flux resolves it
  (source/api.py `source_references`: the namespace defaults to the referring object's), and must name a kind that
  field may name and either the cluster's own repository or a source object in Git, which the first rule judges. A
  source of the same name in another namespace is another source.
- The cluster's own repository is the GitRepository `flux-system/flux-system` that bootstrap writes, and with it the
  Kustomization `flux-system/flux-system`: both may come only from `clusters/<cluster>/flux-system/gotk-sync.yaml`. A
  look-alike elsewhere would redirect every Kustomization that names the cluster's own repository, or pass its objects
  off as bootstrap's.

The tool itself never fetches from a URL these rules refuse (helm_controller/chart.py asks the same PolicyConfig
before it pulls a chart)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from airflow_gitops.model import ERROR, Finding, Resource, mapping, string
from airflow_gitops.policy_config import SCP_LIKE, SOURCE_ALLOWLISTS, PolicyConfig, url_credentials
from airflow_gitops.source.api import BOOTSTRAP_SOURCE, SOURCE_API, source_references

CHECK = "source-origin"
# Kinds of source.toolkit.fluxcd.io whose content Flux fetches from outside the cluster, with the allowlist of each
# (None: no allowlist, never allowed). HelmChart fetches through its own sourceRef, judged as a reference.
FETCHING_KINDS = {"GitRepository": "git", "HelmRepository": "helm", "OCIRepository": "oci", "Bucket": None,
                  "ExternalArtifact": None}
BOOTSTRAP_KINDS = ("GitRepository", "Kustomization")


def _finding(resource: Resource, where: str, message: str) -> Finding:
    return Finding(ERROR, resource.location, resource.ref, where, message, CHECK)


def shown_url(url: str) -> str:
    """A URL as a finding may print it: its credentials replaced, so that the finding does not leak them."""
    if SCP_LIKE.match(url):
        return url
    try:
        parts = urlsplit(url)
        if parts.username is None and parts.password is None:
            return url
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return urlunsplit((parts.scheme, f"***@{host}{port}", parts.path, parts.query, parts.fragment))
    except ValueError:
        return "(an unparsable URL)"


def sources(resources: list[Resource], policies: PolicyConfig, cluster: str) -> list[Finding]:
    """Every finding of the rule above on a cluster's objects (Git objects and chart output)."""
    findings: list[Finding] = []
    in_cluster: dict[tuple[str, str, str], Resource] = {}
    for r in resources:
        if r.api_version.split("/", 1)[0] == SOURCE_API:
            in_cluster.setdefault((r.kind, r.namespace, r.name), r)
            findings += _source_object(r, policies)
        findings += _bootstrap_look_alike(r, cluster)
    for r in resources:
        for ref in source_references(r):
            findings += _reference(r, ref, in_cluster)
    return findings


def _source_object(r: Resource, policies: PolicyConfig) -> list[Finding]:
    if r.kind not in FETCHING_KINDS:
        return []
    spec = mapping(r.obj.get("spec"))
    kind = FETCHING_KINDS[r.kind]
    if kind is None:  # Bucket, ExternalArtifact
        where = "spec.endpoint" if r.kind == "Bucket" else "kind"
        return [_finding(r, where, f"a {r.kind} source has no allowlist in the policy configuration (only Git, Helm "
                                   f"and OCI sources can be allowed): Flux would fetch from a place nobody approved")]
    url = string(spec.get("url"))
    if not url:
        return []  # required by Flux's schema: the schema check reports it
    if r.kind == "HelmRepository" and string(spec.get("type")) == "oci":
        kind = "oci"
    credentials = url_credentials(url)
    if credentials is not None:
        return [_finding(r, "spec.url", f"{shown_url(url)!r} holds {credentials}: a credential in a URL is in Git for "
                                        "anyone to read; use spec.secretRef")]
    if not policies.source_url_allowed(kind, url):
        allowlist = {"git": policies.allowed_git_sources, "helm": policies.allowed_helm_repositories,
                     "oci": policies.allowed_oci_repositories}[kind]
        return [_finding(r, "spec.url", f"{url!r} is not in {SOURCE_ALLOWLISTS[kind]} in pyproject.toml "
                                        f"({', '.join(allowlist) or 'empty: none allowed'}): Flux would fetch from a "
                                        "place nobody approved")]
    return []


def _bootstrap_look_alike(r: Resource, cluster: str) -> list[Finding]:
    if r.kind not in BOOTSTRAP_KINDS or (r.namespace, r.name) != BOOTSTRAP_SOURCE[1:]:
        return []
    if not r.api_version.split("/", 1)[0].endswith(".toolkit.fluxcd.io"):
        return []
    bootstrap_file = f"clusters/{cluster}/flux-system/gotk-sync.yaml"
    if r.source_file == bootstrap_file and r.applied_by == "Kustomization flux-system/flux-system":
        return []
    return [_finding(r, "metadata.name", f"only flux bootstrap ({bootstrap_file}) may define {r.kind} "
                                         "flux-system/flux-system, the cluster's own repository and what applies it: "
                                         "one defined anywhere else redirects the cluster")]


def _reference(r: Resource, ref, in_cluster: dict[tuple[str, str, str], Resource]) -> list[Finding]:
    if ref.kind not in ref.kinds:
        return [_finding(r, f"{ref.where}.kind", f"{ref.kind!r} is not a source {ref.where} can name "
                                                 f"({', '.join(ref.kinds)})")]
    if ref.is_bootstrap or (ref.kind, ref.namespace, ref.name) in in_cluster:
        return []  # the cluster's own repository, or a source object judged above
    elsewhere = sorted(f"{namespace}/{name}" for kind, namespace, name in in_cluster
                       if kind == ref.kind and name == ref.name)
    hint = (f"; {ref.kind} {', '.join(elsewhere)} is another source (Flux looks in the referring object's namespace "
            "unless the reference names one)") if elsewhere else ""
    if ref.kind == "GitRepository" and ref.name == BOOTSTRAP_SOURCE[2] and not elsewhere:
        hint = ("; the cluster's own repository is GitRepository flux-system/flux-system, and Flux looks in the "
                "referring object's namespace unless the reference names one")
    return [_finding(r, ref.where, f"{ref} is not in this cluster's Git state: Flux would fetch from a source nobody "
                                   f"reviewed{hint}")]
