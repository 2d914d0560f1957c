"""The Flux source fields source-controller reads (source.toolkit.fluxcd.io/v1: GitRepository, HelmRepository,
OCIRepository, HelmChart), parsed once from the object in Git, with its provenance (`resource`: file and applying
Kustomization). Offline nothing is fetched from them; the checks read their URLs, refs and intervals. A field of
the wrong type reads as absent here; the schema check reports it, naming the file, the object and the field."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from airflow_gitops.model import Resource, mapping, string

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
