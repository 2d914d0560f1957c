"""The HelmRelease fields helm-controller reads (helm.toolkit.fluxcd.io/v2), parsed once from the object in Git,
with its provenance (`resource`: file and applying Kustomization). A field of the wrong type reads as absent here;
the schema check reports it, naming the file, the object and the field."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from airflow_gitops.model import Resource, mapping, sequence

HELM_API = "helm.toolkit.fluxcd.io"
DEFAULT_VALUES_KEY = "values.yaml"
# helm-controller shortens release names longer than Helm's limit: a prefix and a hash of the full name.
MAX_RELEASE_NAME = 53



@dataclass(frozen=True)
class ValuesReference:
    """One entry of spec.valuesFrom."""

    kind: str | None
    name: str | None
    values_key: str
    target_path: str | None
    optional: bool
    # The field it came from, for findings: spec.valuesFrom[<position>].
    where: str

    @classmethod
    def parse(cls, raw: Any, position: int) -> ValuesReference:
        ref = mapping(raw)
        return cls(ref.get("kind"), ref.get("name"), ref.get("valuesKey") or DEFAULT_VALUES_KEY,
                   str(ref["targetPath"]) if ref.get("targetPath") else None, bool(ref.get("optional")),
                   f"spec.valuesFrom[{position}]")


@dataclass(frozen=True)
class ChartReference:
    """spec.chart.spec: a chart by name and version from a HelmRepository (or GitRepository/Bucket)."""

    chart: str
    version: str
    source_kind: str | None
    source_name: str | None
    source_namespace: str | None

    @classmethod
    def parse(cls, raw: Any) -> ChartReference | None:
        spec = mapping(mapping(raw).get("spec"))
        if not spec:
            return None
        source = mapping(spec.get("sourceRef"))
        return cls(str(spec.get("chart", "")), str(spec.get("version", "")), source.get("kind"), source.get("name"),
                   source.get("namespace"))


@dataclass(frozen=True)
class HelmRelease:
    resource: Resource
    name: str
    namespace: str
    target_namespace: str | None
    release_name_override: str | None
    values_from: list[ValuesReference]
    values: dict[str, Any]
    chart: ChartReference | None
    # spec.chartRef (OCIRepository or HelmChart), kept raw: it is not rendered offline.
    chart_ref: dict[str, Any] = field(default_factory=dict)
    # (field, patch) of each spec.postRenderers[].kustomize.patches[] entry, the patch as written.
    post_renderer_patches: list[tuple[str, Any]] = field(default_factory=list)

    @staticmethod
    def is_helmrelease(resource: Resource) -> bool:
        return resource.kind == "HelmRelease" and resource.api_version.startswith(HELM_API)

    @classmethod
    def parse(cls, resource: Resource) -> HelmRelease:
        spec = mapping(resource.obj.get("spec"))
        meta = mapping(resource.obj.get("metadata"))
        return cls(
            resource=resource,
            name=str(meta.get("name", "")),
            namespace=str(meta.get("namespace") or ""),
            target_namespace=spec.get("targetNamespace") or None,
            release_name_override=spec.get("releaseName") or None,
            values_from=[ValuesReference.parse(ref, position)
                         for position, ref in enumerate(sequence(spec.get("valuesFrom")))],
            values=mapping(spec.get("values")),
            chart=ChartReference.parse(spec.get("chart")),
            chart_ref=mapping(spec.get("chartRef")),
            post_renderer_patches=[
                (f"spec.postRenderers[{position}].kustomize.patches[{index}]", patch)
                for position, renderer in enumerate(sequence(spec.get("postRenderers")))
                for index, patch in enumerate(sequence(mapping(mapping(renderer).get("kustomize")).get("patches")))],
        )

    @property
    def release_name(self) -> str:
        """As helm-controller derives it: releaseName, or <targetNamespace>-<name>, shortened past 53 characters."""
        name = self.release_name_override or (
            f"{self.target_namespace}-{self.name}" if self.target_namespace else self.name)
        if len(name) > MAX_RELEASE_NAME:
            digest = hashlib.sha256(name.encode()).hexdigest()[:12]
            name = f"{name[:40]}-{digest}"
        return name

    @property
    def release_namespace(self) -> str:
        return self.target_namespace or self.namespace or "default"
