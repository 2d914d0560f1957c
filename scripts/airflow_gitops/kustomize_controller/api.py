"""The Flux Kustomization fields kustomize-controller reads (kustomize.toolkit.fluxcd.io/v1), parsed once from the
object in Git, with its provenance (`resource`: file and applying Kustomization). A field of the wrong type reads as
absent here; the schema check reports it, naming the file, the object and the field."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from airflow_gitops.model import Resource, mapping, sequence, string

KUSTOMIZATION_API = "kustomize.toolkit.fluxcd.io"
# The namespace Flux gives a Kustomization, or a reference, that names none.
DEFAULT_NAMESPACE = "flux-system"



@dataclass(frozen=True)
class SubstituteReference:
    """One entry of spec.postBuild.substituteFrom."""

    kind: str | None
    name: str | None
    optional: bool
    where: str


@dataclass(frozen=True)
class PostBuild:
    substitute: dict[str, Any]
    substitute_from: list[SubstituteReference]
    strategy: str | None

    @classmethod
    def parse(cls, raw: Any) -> PostBuild | None:
        post_build = mapping(raw)
        if not post_build:
            return None
        references = [SubstituteReference(mapping(ref).get("kind"), mapping(ref).get("name"),
                                          bool(mapping(ref).get("optional")),
                                          f"spec.postBuild.substituteFrom[{position}]")
                      for position, ref in enumerate(sequence(post_build.get("substituteFrom")))]
        return cls(mapping(post_build.get("substitute")), references, post_build.get("substituteStrategy"))


@dataclass(frozen=True)
class HealthCheck:
    """One entry of spec.healthChecks (fluxcd/pkg apis/meta NamespacedObjectKindReference): an object to wait for."""

    api_version: str
    kind: str | None
    name: str | None
    namespace: str | None
    where: str

    @classmethod
    def parse(cls, raw: Any, position: int) -> HealthCheck:
        check = mapping(raw)
        return cls(string(check.get("apiVersion")) or "", string(check.get("kind")), string(check.get("name")),
                   string(check.get("namespace")), f"spec.healthChecks[{position}]")


@dataclass(frozen=True)
class HealthCheckExpr:
    """One entry of spec.healthCheckExprs (fluxcd/pkg apis/kustomize CustomHealthCheck): CEL expressions over the
    status of every object of apiVersion/kind, evaluated instead of kstatus."""

    api_version: str
    kind: str
    current: str | None
    in_progress: str | None
    failed: str | None
    where: str

    @classmethod
    def parse(cls, raw: Any, position: int) -> HealthCheckExpr:
        expr = mapping(raw)
        return cls(string(expr.get("apiVersion")) or "", string(expr.get("kind")) or "", string(expr.get("current")),
                   string(expr.get("inProgress")), string(expr.get("failed")), f"spec.healthCheckExprs[{position}]")


@dataclass(frozen=True)
class CommonMetadata:
    """spec.commonMetadata: labels and annotations set on every object the Kustomization applies."""

    labels: dict[str, str]
    annotations: dict[str, str]

    @classmethod
    def parse(cls, raw: Any) -> CommonMetadata | None:
        common = mapping(raw)
        if not common:
            return None
        return cls({str(k): str(v) for k, v in mapping(common.get("labels")).items()},
                   {str(k): str(v) for k, v in mapping(common.get("annotations")).items()})


@dataclass(frozen=True)
class Kustomization:
    resource: Resource
    name: str
    namespace: str
    source_kind: str | None
    source_name: str | None
    path: str
    # "namespace/name" of each Kustomization it waits for.
    depends_on: list[str]
    post_build: PostBuild | None
    common_metadata: CommonMetadata | None
    # Required by Flux; None when absent.
    interval: str | None
    # As written, else the interval, as api/v1 KustomizationSpec documents it (its GetTimeout then takes 30s off the
    # interval, at least 30s).
    timeout: str | None
    # Wait for every object applied (then healthChecks are ignored); false by default. Only `true` counts.
    wait: bool
    prune: bool
    target_namespace: str | None
    health_checks: list[HealthCheck]
    health_check_exprs: list[HealthCheckExpr]
    components: list[str]
    # spec.decryption.provider: "sops", the only one kustomize-controller knows, or None.
    decryption_provider: str | None
    # The whole spec, for the build's overlay fields and the containment check, which read it field by field.
    spec: dict[str, Any]

    @staticmethod
    def is_kustomization(resource: Resource) -> bool:
        return resource.kind == "Kustomization" and resource.api_version.startswith(KUSTOMIZATION_API)

    @classmethod
    def parse(cls, resource: Resource) -> Kustomization:
        spec = mapping(resource.obj.get("spec"))
        namespace = resource.namespace or DEFAULT_NAMESPACE
        source = mapping(spec.get("sourceRef"))
        depends_on = [f"{mapping(d).get('namespace') or namespace}/{mapping(d).get('name')}"
                      for d in sequence(spec.get("dependsOn"))]
        interval = string(spec.get("interval"))
        return cls(
            resource=resource, name=resource.name, namespace=namespace, source_kind=source.get("kind"),
            source_name=source.get("name"), path=str(spec.get("path") or "./"), depends_on=depends_on,
            post_build=PostBuild.parse(spec.get("postBuild")),
            common_metadata=CommonMetadata.parse(spec.get("commonMetadata")),
            interval=interval,
            timeout=string(spec.get("timeout")) or interval,
            wait=spec.get("wait") is True,
            prune=spec.get("prune") is True,
            target_namespace=string(spec.get("targetNamespace")) or None,
            health_checks=[HealthCheck.parse(check, position)
                           for position, check in enumerate(sequence(spec.get("healthChecks")))
                           if isinstance(check, dict)],
            health_check_exprs=[HealthCheckExpr.parse(expr, position)
                                for position, expr in enumerate(sequence(spec.get("healthCheckExprs")))
                                if isinstance(expr, dict)],
            components=[c for c in sequence(spec.get("components")) if isinstance(c, str)],
            decryption_provider=string(mapping(spec.get("decryption")).get("provider")),
            spec=spec)

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def applier(self) -> str:
        """How the objects it applies name their applier."""
        return f"Kustomization {self.id}"


def kustomizations(resources: Iterable[Resource]) -> list[Kustomization]:
    """Every Flux Kustomization among `resources`, parsed, in their order."""
    return [Kustomization.parse(r) for r in resources if Kustomization.is_kustomization(r)]
