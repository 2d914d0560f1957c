"""The Flux source fields source-controller reads (source.toolkit.fluxcd.io/v1: GitRepository, HelmRepository,
OCIRepository, HelmChart), parsed once from the object in Git, with its provenance (`resource`: file and applying
Kustomization). Offline nothing is fetched from them; the checks read their URLs, refs and intervals. A field of
the wrong type reads as absent here; the schema check reports it, naming the file, the object and the field."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from airflow_gitops.model import Resource, mapping, sequence, string

SOURCE_API = "source.toolkit.fluxcd.io"


@dataclass(frozen=True)
class GitRepositoryRef:
    """spec.ref; all None: source-controller checks out the `master` branch."""

    branch: str | None
    tag: str | None
    semver: str | None
    name: str | None
    commit: str | None


@dataclass(frozen=True)
class GitRepository:
    resource: Resource
    name: str
    namespace: str
    # Required by Flux; "" when absent.
    url: str
    # Required by Flux; None when absent.
    interval: str | None
    ref: GitRepositoryRef

    @classmethod
    def parse(cls, resource: Resource) -> GitRepository:
        spec = mapping(resource.obj.get("spec"))
        ref = mapping(spec.get("ref"))
        return cls(resource, resource.name, resource.namespace, string(spec.get("url")) or "",
                   string(spec.get("interval")),
                   GitRepositoryRef(*(string(ref.get(key)) for key in ("branch", "tag", "semver", "name", "commit"))))


@dataclass(frozen=True)
class HelmRepository:
    resource: Resource
    name: str
    namespace: str
    url: str
    # "default" (an HTTP/S Helm repository index) or "oci".
    type: str
    # Optional for a HelmRepository; None when absent.
    interval: str | None

    @classmethod
    def parse(cls, resource: Resource) -> HelmRepository:
        spec = mapping(resource.obj.get("spec"))
        return cls(resource, resource.name, resource.namespace, string(spec.get("url")) or "",
                   string(spec.get("type")) or "default", string(spec.get("interval")))


@dataclass(frozen=True)
class OCIRepositoryRef:
    """spec.ref; all None: source-controller pulls the `latest` tag. Precedence: digest, semver, tag."""

    digest: str | None
    semver: str | None
    semver_filter: str | None
    tag: str | None


@dataclass(frozen=True)
class OCIRepository:
    resource: Resource
    name: str
    namespace: str
    url: str
    interval: str | None
    ref: OCIRepositoryRef

    @classmethod
    def parse(cls, resource: Resource) -> OCIRepository:
        spec = mapping(resource.obj.get("spec"))
        ref = mapping(spec.get("ref"))
        return cls(resource, resource.name, resource.namespace, string(spec.get("url")) or "",
                   string(spec.get("interval")),
                   OCIRepositoryRef(*(string(ref.get(key)) for key in ("digest", "semver", "semverFilter", "tag"))))


@dataclass(frozen=True)
class HelmChart:
    """A chart a HelmRelease's spec.chartRef names directly."""

    resource: Resource
    name: str
    namespace: str
    chart: str
    # As written, "" when absent: source-controller then defaults it to "*" (the newest version).
    version: str
    source_kind: str | None
    source_name: str | None
    interval: str | None

    @classmethod
    def parse(cls, resource: Resource) -> HelmChart:
        spec = mapping(resource.obj.get("spec"))
        source = mapping(spec.get("sourceRef"))
        return cls(resource, resource.name, resource.namespace, string(spec.get("chart")) or "",
                   string(spec.get("version")) or "", string(source.get("kind")), string(source.get("name")),
                   string(spec.get("interval")))


Source = GitRepository | HelmRepository | OCIRepository | HelmChart
_PARSERS: dict[str, Callable[[Resource], Source]] = {"GitRepository": GitRepository.parse, "HelmRepository": HelmRepository.parse,
            "OCIRepository": OCIRepository.parse, "HelmChart": HelmChart.parse}


def parse_source(resource: Resource) -> Source | None:
    """The typed source of a GitRepository, HelmRepository, OCIRepository or HelmChart; None for any other kind
    (a Bucket has no URL or ref the tool reads)."""
    parser = _PARSERS.get(resource.kind)
    return parser(resource) if parser else None


def url_of(source: Source | None) -> str:
    """The URL of a Git, Helm or OCI repository; "" for anything else."""
    return source.url if isinstance(source, GitRepository | HelmRepository | OCIRepository) else ""


# --- references to sources, resolved as Flux resolves them ---------------------------------------------------------

# The cluster's own repository: the GitRepository `flux bootstrap` writes in gotk-sync.yaml (on kind, `flux create
# source git flux-system` makes it on the cluster). (kind, namespace, name).
BOOTSTRAP_SOURCE = ("GitRepository", "flux-system", "flux-system")
# The kinds each reference may name (kustomize-controller api/v1 CrossNamespaceSourceReference; helm-controller
# api/v2 HelmChartTemplateSpec.SourceRef and HelmRelease.Spec.ChartRef; source-controller api/v1 HelmChart
# LocalHelmChartSourceReference).
KUSTOMIZATION_SOURCE_KINDS = ("GitRepository", "OCIRepository", "Bucket", "ExternalArtifact")
CHART_SOURCE_KINDS = ("HelmRepository", "GitRepository", "Bucket")
CHART_REF_KINDS = ("OCIRepository", "HelmChart", "ExternalArtifact")


@dataclass(frozen=True)
class SourceRef:
    """A reference from a Flux object to a source, with the namespace Flux resolves: the one written, else the
    referring object's own. kustomize-controller getSource (kustomization_controller.go): `sourceNamespace :=
    obj.GetNamespace(); if obj.Spec.SourceRef.Namespace != "" {...}`; helm-controller HelmChartTemplate.GetNamespace
    (api/v2) and getSource/getSourceFromOCIRef for spec.chartRef, the same. So a source of the same name in another
    namespace is another source."""

    kind: str | None
    namespace: str
    name: str | None
    # The field that names it, for findings, and the kinds that field may name.
    where: str
    kinds: tuple[str, ...]

    @property
    def key(self) -> tuple[str | None, str, str | None]:
        return self.kind, self.namespace, self.name

    @property
    def is_bootstrap(self) -> bool:
        return self.key == BOOTSTRAP_SOURCE

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def source_references(resource: Resource) -> list[SourceRef]:
    """Every source a Flux object makes Flux fetch: a Kustomization's spec.sourceRef, a HelmRelease's
    spec.chart.spec.sourceRef or spec.chartRef, a HelmChart's spec.sourceRef, a GitRepository's spec.include[]."""
    group = resource.api_version.split("/", 1)[0]
    spec = mapping(resource.obj.get("spec"))
    # A Kustomization without a namespace is read as in flux-system, as kustomize_controller/api.py reads it.
    own = resource.namespace or ("flux-system" if resource.kind == "Kustomization" else "default")

    def ref(raw: object, where: str, kinds: tuple[str, ...], local: bool = False) -> SourceRef:
        node = mapping(raw)
        namespace = own if local else (string(node.get("namespace")) or own)
        return SourceRef(string(node.get("kind")), namespace, string(node.get("name")), where, kinds)

    if resource.kind == "Kustomization" and group == "kustomize.toolkit.fluxcd.io":
        return [ref(spec.get("sourceRef"), "spec.sourceRef", KUSTOMIZATION_SOURCE_KINDS)]
    if resource.kind == "HelmRelease" and group == "helm.toolkit.fluxcd.io":
        found = []
        chart = mapping(mapping(spec.get("chart")).get("spec"))
        if chart:
            found.append(ref(chart.get("sourceRef"), "spec.chart.spec.sourceRef", CHART_SOURCE_KINDS))
        if spec.get("chartRef") is not None:
            found.append(ref(spec.get("chartRef"), "spec.chartRef", CHART_REF_KINDS))
        return found
    if group != SOURCE_API:
        return []
    if resource.kind == "HelmChart":
        return [ref(spec.get("sourceRef"), "spec.sourceRef", CHART_SOURCE_KINDS, local=True)]
    if resource.kind == "GitRepository":
        return [SourceRef("GitRepository", own, string(mapping(mapping(include).get("repository")).get("name")),
                          f"spec.include[{position}].repository", ("GitRepository",))
                for position, include in enumerate(sequence(spec.get("include")))]
    return []
