"""helm-controller's render of each HelmRelease a cluster applies: values, chart, templates, then postRenderers."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml

from airflow_gitops.helm_controller import render_cache
from airflow_gitops.helm_controller.api import HelmRelease
from airflow_gitops.helm_controller.chart import ChartCache, ChartUnavailable
from airflow_gitops.helm_controller.values import compose
from airflow_gitops.krusty import run_kustomize
from airflow_gitops.model import ClusterState, ReleaseRender, RenderError, Resource, load_yaml_all
from airflow_gitops.settings import Settings
from airflow_gitops.source.provenance import SourceIndex

CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass", "CustomResourceDefinition", "StorageClass",
    "PersistentVolume", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "APIService",
    "SecurityContextConstraints", "IngressClass", "RuntimeClass", "CSIDriver",
}

def render_releases(settings: Settings, index: SourceIndex, state: ClusterState, charts: ChartCache) -> list[ReleaseRender]:
    releases = []
    cache = render_cache.RenderCache(settings.cache_dir / "renders") if settings.render_cache else None
    for resource in list(state.resources):
        if not HelmRelease.is_helmrelease(resource):
            continue
        try:
            release = compose(state, index, resource)
        except RenderError as error:
            state.findings.append(error.as_finding("values"))
            continue
        try:
            chart = charts.load(settings, state, resource)
        except ChartUnavailable as reason:
            release.unrendered_reason = str(reason)
            releases.append(release)
            continue
        release.chart_values_keys = set(chart.values)
        release.chart_schema = chart.schema or None
        try:
            release.objects = render_chart(chart, release, cache, charts.digests.get(id(chart)))
        except RenderError as error:
            state.findings.append(error.as_finding("chart"))
        releases.append(release)
    return releases


def render_chart(chart, release: ReleaseRender, cache: render_cache.RenderCache | None = None,
                 chart_digest: str | None = None) -> list[Resource]:
    """The chart's objects for the release; the SDK's output comes from `cache` when the same chart (by
    `chart_digest`), values and identity were rendered before, and goes into it otherwise."""
    import helm_python

    hr = release.helmrelease
    key = None
    if cache is not None and chart_digest:
        key = render_cache.render_key(chart_digest, release.values, release.release_name, release.namespace,
                                      render_cache.sdk_identity())
    manifests = cache.get(key) if key else None
    try:
        if manifests is None:
            manifests = chart.render(release.values, name=release.release_name, namespace=release.namespace,
                                     is_install=True)
            if key:
                cache.put(key, manifests)
    except helm_python.HelmError as error:
        files = ", ".join(release.values_files) or hr.source_file
        raise RenderError(f"chart {chart.name} {chart.version} refused the values: {str(error).strip()}",
                          files, hr.ref, "spec.valuesFrom") from error
    objects: list[Resource] = []
    for template, text in sorted(manifests.items()):
        if template.endswith("NOTES.txt") or not text.strip():
            continue
        try:
            docs = load_yaml_all(text, template, kubernetes=True)
        except yaml.YAMLError as error:
            files = ", ".join(release.values_files) or hr.source_file
            raise RenderError(f"chart {chart.name} rendered YAML that is refused: {error}", files, hr.ref,
                              "spec.valuesFrom") from None
        for doc in docs:
            if not doc:
                continue
            meta = doc.setdefault("metadata", {})
            if doc.get("kind") not in CLUSTER_SCOPED and not meta.get("namespace"):
                meta["namespace"] = release.namespace
            objects.append(Resource(doc, hr.source_file, f"HelmRelease {hr.namespace}/{hr.name}", template))
    patches = post_render_patches(hr)
    if patches:
        objects = _post_render(objects, patches, hr)
    return objects


def post_render_patches(hr: Resource) -> list[dict[str, Any]]:
    """The kustomize patches of spec.postRenderers. Flux's patch type has only `patch` (inline) and `target`:
    anything else, such as a `path` that would make kustomize read a file of the host, is refused."""
    patches = []
    for where, patch in HelmRelease.parse(hr).post_renderer_patches:
        extra = sorted(set(patch) - {"patch", "target"}) if isinstance(patch, dict) else ["(not a mapping)"]
        if extra:
            raise RenderError(f"unknown field(s) {', '.join(extra)}: a Flux patch has only `patch` and `target`",
                              hr.source_file, hr.ref, where)
        patches.append(patch)
    return patches


def _post_render(objects: list[Resource], patches: list[dict[str, Any]], hr: Resource) -> list[Resource]:
    templates = {(o.kind, o.namespace, o.name): o.template for o in objects}
    with tempfile.TemporaryDirectory(prefix="airflow-gitops-post-") as tmp:
        Path(tmp, "rendered.yaml").write_text(yaml.safe_dump_all([o.obj for o in objects], sort_keys=False))
        Path(tmp, "kustomization.yaml").write_text(
            yaml.safe_dump({"resources": ["rendered.yaml"], "patches": patches}, sort_keys=False))
        try:
            patched = run_kustomize(Path(tmp), f"postRenderers of {hr.ref}")
        except RenderError as error:
            raise RenderError(f"postRenderers kustomize patches failed: {error}", hr.source_file, hr.ref,
                              "spec.postRenderers") from error
    return [Resource(doc, hr.source_file, f"HelmRelease {hr.namespace}/{hr.name}",
                     templates.get((doc.get("kind"), (doc.get("metadata") or {}).get("namespace", ""),
                                    (doc.get("metadata") or {}).get("name")))) for doc in patched]
