"""The Flux Kustomization fields kustomize-controller reads (kustomize.toolkit.fluxcd.io/v1), parsed once from the
object in Git, with its provenance (`resource`: file and applying Kustomization). A field of the wrong type reads as
absent here; the schema check reports it, naming the file, the object and the field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow_gitops.model import Resource, mapping, sequence

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
        return cls(resource, resource.name, namespace, source.get("kind"), source.get("name"),
                   str(spec.get("path") or "./"), depends_on, PostBuild.parse(spec.get("postBuild")),
                   CommonMetadata.parse(spec.get("commonMetadata")), spec)

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def applier(self) -> str:
        """How the objects it applies name their applier."""
        return f"Kustomization {self.id}"
