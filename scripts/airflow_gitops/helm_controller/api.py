"""The HelmRelease fields helm-controller reads (helm.toolkit.fluxcd.io/v2), parsed once from the object in Git,
with its provenance (`resource`: file and applying Kustomization). A field of the wrong type reads as absent here;
the schema check reports it, naming the file, the object and the field."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from airflow_gitops.model import Resource, mapping, sequence, string

HELM_API = "helm.toolkit.fluxcd.io"
DEFAULT_VALUES_KEY = "values.yaml"
# helm-controller shortens release names longer than Helm's limit: a prefix and a hash of the full name.
MAX_RELEASE_NAME = 53
# api/v2 HelmRelease.GetTimeout: the timeout of each Helm action when spec.timeout is absent.
DEFAULT_TIMEOUT = "5m0s"
# api/v2 DriftDetection.GetMode: no mode is "disabled"; "enabled" corrects drift, "warn" only reports it.
DRIFT_DISABLED = "disabled"
DRIFT_DETECTING = ("enabled", "warn")



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
        # An empty version is "" (helm-controller then asks for "*", the newest): the exact-version policy says so.
        return cls(str(spec.get("chart", "")), str(spec.get("version") or ""), source.get("kind"), source.get("name"),
                   source.get("namespace"))


@dataclass(frozen=True)
class SourceReference:
    """spec.chartRef (api/v2 CrossNamespaceSourceReference): an OCIRepository or HelmChart holding the chart."""

    api_version: str | None
    kind: str | None
    name: str | None
    # None: the HelmRelease's own namespace.
    namespace: str | None

    @classmethod
    def parse(cls, raw: Any) -> SourceReference | None:
        if not isinstance(raw, dict):
            return None
        return cls(string(raw.get("apiVersion")), string(raw.get("kind")), string(raw.get("name")),
                   string(raw.get("namespace")))


@dataclass(frozen=True)
class Selector:
    """The target of a drift ignore rule (fluxcd/pkg apis/kustomize Selector): each field a regular expression
    (jsondiff anchors it), the two selectors Kubernetes label selectors; None matches anything."""

    group: str | None
    version: str | None
    kind: str | None
    name: str | None
    namespace: str | None
    label_selector: str | None
    annotation_selector: str | None

    @classmethod
    def parse(cls, raw: Any) -> Selector | None:
        if not isinstance(raw, dict):
            return None
        return cls(*(string(raw.get(key)) for key in ("group", "version", "kind", "name", "namespace",
                                                     "labelSelector", "annotationSelector")))


@dataclass(frozen=True)
class IgnoreRule:
    """One entry of spec.driftDetection.ignore: JSON pointers not compared, on the objects `target` selects (all
    objects of the release when it is None)."""

    paths: list[str]
    target: Selector | None
    where: str


@dataclass(frozen=True)
class DriftDetection:
    mode: str
    ignore: list[IgnoreRule]

    @classmethod
    def parse(cls, raw: Any) -> DriftDetection:
        drift = mapping(raw)
        rules = [IgnoreRule([p for p in sequence(mapping(rule).get("paths")) if isinstance(p, str)],
                            Selector.parse(mapping(rule).get("target")), f"spec.driftDetection.ignore[{position}]")
                 for position, rule in enumerate(sequence(drift.get("ignore")))]
        return cls(string(drift.get("mode")) or DRIFT_DISABLED, rules)

    @property
    def detects(self) -> bool:
        """api/v2 DriftDetection.MustDetectChanges."""
        return self.mode in DRIFT_DETECTING


@dataclass(frozen=True)
class Remediation:
    """spec.install.remediation or spec.upgrade.remediation, with helm-controller's defaults (api/v2
    InstallRemediation, UpgradeRemediation: GetRetries, MustRemediateLastFailure, GetStrategy)."""

    # 0: no retry; a negative number retries forever.
    retries: int
    remediate_last_failure: bool
    # "uninstall" for a failed install (always), "rollback" (default) or "uninstall" for a failed upgrade.
    strategy: str
    # spec.<action>.strategy `RetryOnFailure`: no remediation; the failed action is retried after this interval
    # (default 5m), for ever (internal/reconcile/atomic_release.go: GetActiveRetry before GetActiveRemediation).
    retry_interval: str | None = None

    @classmethod
    def parse_install(cls, raw: Any) -> Remediation:
        remediation = mapping(mapping(raw).get("remediation"))
        last = remediation.get("remediateLastFailure")
        return cls(_integer(remediation.get("retries")), last if isinstance(last, bool) else False, "uninstall",
                   _retry_interval(raw))

    @classmethod
    def parse_upgrade(cls, raw: Any) -> Remediation:
        remediation = mapping(mapping(raw).get("remediation"))
        retries, last = _integer(remediation.get("retries")), remediation.get("remediateLastFailure")
        return cls(retries, last if isinstance(last, bool) else retries > 0,
                   string(remediation.get("strategy")) or "rollback", _retry_interval(raw))


def _retry_interval(raw: Any) -> str | None:
    strategy = mapping(mapping(raw).get("strategy"))
    if strategy.get("name") != "RetryOnFailure":
        return None
    return string(strategy.get("retryInterval")) or "5m"


def _integer(node: Any) -> int:
    return node if isinstance(node, int) and not isinstance(node, bool) else 0


@dataclass(frozen=True)
class ImageOverride:
    """One entry of spec.postRenderers[].kustomize.images (kustomize Image): rewrites the chart's image `name`."""

    name: str | None
    new_name: str | None
    new_tag: str | None
    digest: str | None
    where: str

    @property
    def image(self) -> str:
        """The image the chart's containers end up with: newName (else name), then @digest or :newTag."""
        name = self.new_name or self.name or ""
        return f"{name}@{self.digest}" if self.digest else f"{name}:{self.new_tag}" if self.new_tag else name


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
    # spec.chartRef (OCIRepository or HelmChart); it is not rendered offline.
    chart_ref: SourceReference | None
    # (field, patch) of each spec.postRenderers[].kustomize.patches[] entry, the patch as written.
    post_renderer_patches: list[tuple[str, Any]]
    post_renderer_images: list[ImageOverride]
    # Required by Flux; None when absent.
    interval: str | None
    timeout: str
    # "namespace/name" of each HelmRelease it waits for (the namespace defaults to its own).
    depends_on: list[str]
    drift_detection: DriftDetection
    install_remediation: Remediation
    upgrade_remediation: Remediation
    # spec.rollback.timeout and spec.uninstall.timeout: each defaults to spec.timeout (api/v2 Rollback/Uninstall
    # GetTimeout), the time a remediation of a failed upgrade or install may take.
    rollback_timeout: str
    uninstall_timeout: str

    @staticmethod
    def is_helmrelease(resource: Resource) -> bool:
        return resource.kind == "HelmRelease" and resource.api_version.startswith(HELM_API)

    @classmethod
    def parse(cls, resource: Resource) -> HelmRelease:
        spec = mapping(resource.obj.get("spec"))
        meta = mapping(resource.obj.get("metadata"))
        namespace = str(meta.get("namespace") or "")
        return cls(
            resource=resource,
            name=str(meta.get("name", "")),
            namespace=namespace,
            target_namespace=spec.get("targetNamespace") or None,
            release_name_override=spec.get("releaseName") or None,
            values_from=[ValuesReference.parse(ref, position)
                         for position, ref in enumerate(sequence(spec.get("valuesFrom")))],
            values=mapping(spec.get("values")),
            chart=ChartReference.parse(spec.get("chart")),
            chart_ref=SourceReference.parse(spec.get("chartRef")),
            post_renderer_patches=[
                (f"spec.postRenderers[{position}].kustomize.patches[{index}]", patch)
                for position, renderer in enumerate(sequence(spec.get("postRenderers")))
                for index, patch in enumerate(sequence(mapping(mapping(renderer).get("kustomize")).get("patches")))],
            post_renderer_images=[
                ImageOverride(string(mapping(image).get("name")), string(mapping(image).get("newName")),
                              string(mapping(image).get("newTag")), string(mapping(image).get("digest")),
                              f"spec.postRenderers[{position}].kustomize.images[{index}]")
                for position, renderer in enumerate(sequence(spec.get("postRenderers")))
                for index, image in enumerate(sequence(mapping(mapping(renderer).get("kustomize")).get("images")))],
            interval=string(spec.get("interval")),
            timeout=string(spec.get("timeout")) or DEFAULT_TIMEOUT,
            depends_on=[f"{string(mapping(d).get('namespace')) or namespace}/{mapping(d).get('name')}"
                        for d in sequence(spec.get("dependsOn"))],
            drift_detection=DriftDetection.parse(spec.get("driftDetection")),
            install_remediation=Remediation.parse_install(spec.get("install")),
            upgrade_remediation=Remediation.parse_upgrade(spec.get("upgrade")),
            rollback_timeout=string(mapping(spec.get("rollback")).get("timeout"))
            or string(spec.get("timeout")) or DEFAULT_TIMEOUT,
            uninstall_timeout=string(mapping(spec.get("uninstall")).get("timeout"))
            or string(spec.get("timeout")) or DEFAULT_TIMEOUT,
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
