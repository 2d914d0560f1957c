"""helm-controller's render of each HelmRelease a cluster applies: values, chart, templates, then postRenderers."""

from __future__ import annotations

import contextlib
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml

from airflow_gitops.helm_controller import render_cache, render_process
from airflow_gitops.helm_controller.api import HelmRelease
from airflow_gitops.helm_controller.chart import ChartBroken, ChartCache, ChartUnavailable
from airflow_gitops.helm_controller.values import compose
from airflow_gitops.krusty import run_kustomize
from airflow_gitops.model import (
    ClusterState,
    ReleaseRender,
    RenderError,
    Resource,
    envelope_problems,
    mapping,
    sequence,
)
from airflow_gitops.settings import RENDER_MEMORY_ENV, RENDER_TIMEOUT_ENV, Settings
from airflow_gitops.source import bounds
from airflow_gitops.source.provenance import SourceIndex

CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass", "CustomResourceDefinition", "StorageClass",
    "PersistentVolume", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "APIService",
    "SecurityContextConstraints", "IngressClass", "RuntimeClass", "CSIDriver",
}

# How to raise a limit, for the finding that reports it; the output bound is fixed, as kustomize's is.
_RAISE = {
    "time": "a loop in a template, or in a value the chart runs through `tpl`? If the chart really needs longer: "
            f"--render-timeout SECONDS or {RENDER_TIMEOUT_ENV}",
    "memory": "a template, or a value the chart runs through `tpl`, that grows without end? If the chart really needs "
              f"more: --render-memory MIB or {RENDER_MEMORY_ENV}",
    "output": "",
}


# Helm's own split of a template's output into manifests (helm.sh/helm/v4 v4.2.4 pkg/release/v1/util/manifest.go,
# `SplitManifests`): a line that *starts* with `---` ends a manifest, whatever follows on that line. So `---# comment`
# and `---apiVersion: v1` split there, where YAML (and PyYAML) sees no document marker at all (cert-manager v1.19.1's
# rbac.yaml writes `---# Permission to approve ...`). helm-controller installs what this split gives.
_HELM_MANIFEST_SEPARATOR = re.compile(r"^---[ \t]*", re.MULTILINE)


def split_manifests(text: str) -> list[str]:
    """A template's output as Helm splits it: the manifests in order, each without leading whitespace, blank ones
    dropped (Helm's `SplitManifests`)."""
    pieces = _HELM_MANIFEST_SEPARATOR.split(text.lstrip())
    return [piece.lstrip() for piece in pieces if piece.strip()]


class RenderLimitError(RenderError):
    """A render stopped at one of its bounds (time, memory, output): input the tool refuses, as over a YAML bound."""


def render_releases(settings: Settings, index: SourceIndex, state: ClusterState, charts: ChartCache) -> list[ReleaseRender]:
    releases = []
    cache = render_cache.RenderCache(settings.cache_dir / "renders") if settings.render_cache else None
    composed: list[tuple[ReleaseRender | None, RenderError | None]] = []
    for resource in state.resources:
        if HelmRelease.is_helmrelease(resource):
            try:
                composed.append((compose(state, index, resource), None))
            except RenderError as error:
                composed.append((None, error))
    local_charts = [_local_chart_to_render(settings, release, cache) for release, _ in composed if release]
    if any(local_charts):
        # Started now, it starts while this process loads the charts below.
        render_process.RENDERER.start([chart for chart in local_charts if chart])
    for release, failure in composed:
        if release is None:
            state.findings.append(failure.as_finding("values"))  # type: ignore[union-attr]  # (None, error) pairs
            continue
        resource = release.helmrelease
        try:
            chart = charts.load(settings, state, resource, index.policies)
        except ChartUnavailable as reason:
            release.unrendered_reason = str(reason)
            releases.append(release)
            continue
        except ChartBroken as broken:
            release.unrendered_reason = str(broken)
            state.findings.append(RenderError(str(broken), resource.source_file, resource.ref, "spec.chart").as_finding(
                "chart"))
            releases.append(release)
            continue
        # A chart without values.yaml has no default values (Helm reads it as empty).
        release.chart_values_keys = set(chart.values or {})
        release.chart_schema = chart.schema or None
        chart_path = charts.path_of(chart)
        try:
            release.objects = render_chart(chart, chart_path, release, render_limits(settings), cache,
                                           charts.digests.get(id(chart)))
        except RenderLimitError as error:
            state.findings.append(error.as_finding("render-bounds"))
        except RenderError as error:
            state.findings.append(error.as_finding("chart"))
        releases.append(release)
    return releases


def prefetch_releases(settings: Settings, index: SourceIndex, scratch: ClusterState, added: list[Resource],
                      charts: ChartCache) -> None:
    """Start rendering, in the render process, a HelmRelease that a Kustomization applies as soon as that
    Kustomization's build is done, while the Kustomizations it depends on still build (`scratch`: the state with it
    applied out of order, kustomize_controller.reconcile). The render process answers `render_chart` from it only
    for the very same request (chart digest, values, release name and namespace), so a wrong guess costs time,
    never a wrong render. The first release that needs a render is sent; the render process takes one at a time."""
    cache = render_cache.RenderCache(settings.cache_dir / "renders") if settings.render_cache else None
    for resource in added:
        if not HelmRelease.is_helmrelease(resource):
            continue
        try:
            release = compose(scratch, index, resource)
            chart = charts.load(settings, scratch, resource, index.policies)
        except Exception:  # a guess never fails the run: the real render reports what is wrong, in order
            continue
        digest = charts.digests.get(id(chart))
        if not digest or cache is not None and cache.holds(render_cache.render_key(
                digest, release.values, release.release_name, release.namespace, render_cache.sdk_identity())):
            continue
        chart_path = charts.path_of(chart)
        with contextlib.suppress(Exception):  # the same: values the SDK cannot take fail the real render, not this
            render_process.RENDERER.prefetch(chart_path, digest, release.values, release.release_name,
                                             release.namespace, render_limits(settings))
        return


def _local_chart_to_render(settings: Settings, release: ReleaseRender,
                           cache: render_cache.RenderCache | None) -> Path | None:
    """The release's chart when it is a local one (--chart) and the render cache holds no render of it: the render
    process then starts at once, loading it. A chart from the cache folder or a repository starts it when needed."""
    chart = HelmRelease.parse(release.helmrelease).chart
    local = settings.local_charts.get(chart.chart) if chart else None
    if local is None or cache is not None and cache.holds(render_cache.render_key(
            render_cache.chart_digest(local), release.values, release.release_name, release.namespace,
            render_cache.sdk_identity())):
        return None
    return local


def render_limits(settings: Settings) -> render_process.RenderLimits:
    return render_process.RenderLimits(settings.render_timeout_s, settings.render_memory_mib * 1024 * 1024,
                                       bounds.MAX_OUTPUT_BYTES)


def render_chart(chart, chart_path: Path, release: ReleaseRender, limits: render_process.RenderLimits,
                 cache: render_cache.RenderCache | None = None, chart_digest: str | None = None) -> list[Resource]:
    """The chart's objects for the release, rendered by the Helm SDK in the render process within `limits`; the
    SDK's output comes from `cache` when the same chart (by `chart_digest`), values and identity were rendered
    before, and goes into it otherwise."""
    hr = release.helmrelease
    key = None
    if cache is not None and chart_digest:
        key = render_cache.render_key(chart_digest, release.values, release.release_name, release.namespace,
                                      render_cache.sdk_identity())
    manifests = cache.get(key) if cache is not None and key else None
    if manifests is None:
        manifests = _render(chart, chart_path, chart_digest or render_cache.chart_digest(chart_path), release, limits)
        if cache is not None and key:
            cache.put(key, manifests)
    objects: list[Resource] = []
    for template, text in sorted(manifests.items()):
        if template == f"{chart.name}/templates/NOTES.txt":  # the chart's own; Helm prints no subchart's
            release.notes = text
        if template.endswith("NOTES.txt") or not text.strip():
            continue
        try:
            docs = [doc for manifest in split_manifests(text)
                    for doc in bounds.load_yaml_all(manifest, template, kubernetes=True)]
        except yaml.YAMLError as error:
            files = ", ".join(release.values_files) or hr.source_file
            raise RenderError(f"chart {chart.name} rendered YAML that is refused: {error}", files, hr.ref,
                              "spec.valuesFrom") from None
        for doc in docs:
            if not doc:
                continue
            problems = envelope_problems({**doc, "metadata": doc.get("metadata") or {"name": "?"}}
                                         if isinstance(doc, dict) else doc)
            if problems:
                files = ", ".join(release.values_files) or hr.source_file
                field, why = problems[0]
                raise RenderError(f"chart {chart.name} rendered an object Kubernetes cannot decode ({template}: "
                                  f"{field}: {why})", files, hr.ref, "spec.valuesFrom")
            meta = doc.setdefault("metadata", {})
            if doc.get("kind") not in CLUSTER_SCOPED and not meta.get("namespace"):
                meta["namespace"] = release.namespace
            objects.append(Resource(doc, hr.source_file, f"HelmRelease {hr.namespace}/{hr.name}", template))
    post_render_patches(hr)  # refuses what Flux's API has not, before any kustomize run
    for patches, images in post_renderers(hr):
        objects = _post_render(objects, patches, hr, images)
    return objects


def _render(chart, chart_path: Path, chart_digest: str, release: ReleaseRender,
            limits: render_process.RenderLimits) -> dict[str, str]:
    hr = release.helmrelease
    try:
        return render_process.RENDERER.render(chart_path, chart_digest, release.values, release.release_name,
                                              release.namespace, limits)
    except render_process.RenderRefused as error:
        files = ", ".join(release.values_files) or hr.source_file
        raise RenderError(f"chart {chart.name} {chart.version} refused the values: {str(error).strip()}",
                          files, hr.ref, "spec.valuesFrom") from None
    except render_process.RenderLimitExceeded as stopped:
        files, fields = _values_sources(release)
        advice = _RAISE[stopped.limit]
        raise RenderLimitError(f"chart {chart.name} {chart.version}: {stopped}" + (f" ({advice})" if advice else ""),
                               files, hr.ref, fields) from None
    except render_process.RenderCrashed as crashed:
        files, fields = _values_sources(release)
        raise RenderError(f"chart {chart.name} {chart.version}: {crashed}", files, hr.ref, fields) from None


def _values_sources(release: ReleaseRender) -> tuple[str, str]:
    """The files and fields the release's values come from: what a finding about a runaway render points at."""
    hr = release.helmrelease
    parsed = HelmRelease.parse(hr)
    files = list(release.values_files)
    fields = ["spec.valuesFrom"] if parsed.values_from else []
    if parsed.values:
        files.append(hr.source_file)
        fields.append("spec.values")
    return ", ".join(dict.fromkeys(files)) or hr.source_file, ", ".join(fields) or "spec.chart"


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


# The fields of a postRenderers image override (fluxcd/pkg apis/kustomize Image), as helm-controller passes them on.
IMAGE_FIELDS = ("name", "newName", "newTag", "digest")


def post_renderers(hr: Resource) -> list[tuple[list[dict[str, Any]], list[dict[str, str]]]]:
    """(patches, images) of each spec.postRenderers[].kustomize, in order. helm-controller runs each entry as its own
    kustomize build over the previous one's output (internal/postrender build.go BuildPostRenderers, Combined;
    kustomize.go Run: `Images` and `Patches` of one Kustomization), so an image override rewrites what the chart's
    containers run, as a patch does."""
    spec = mapping(hr.obj.get("spec"))
    entries = []
    for renderer in sequence(spec.get("postRenderers")):
        kustomize = mapping(mapping(renderer).get("kustomize"))
        patches = [p for p in sequence(kustomize.get("patches")) if isinstance(p, dict)]
        images = [{k: str(v) for k, v in image.items() if k in IMAGE_FIELDS and isinstance(v, (str, int, float))}
                  for image in sequence(kustomize.get("images")) if isinstance(image, dict)]
        images = [image for image in images if image.get("name")]
        if patches or images:
            entries.append((patches, images))
    return entries


def _post_render(objects: list[Resource], patches: list[dict[str, Any]], hr: Resource,
                 images: list[dict[str, str]] | None = None) -> list[Resource]:
    templates: dict[tuple[Any, ...], str | None] = {(o.kind, o.namespace, o.name): o.template for o in objects}
    with tempfile.TemporaryDirectory(prefix="airflow-gitops-post-") as tmp:
        Path(tmp, "rendered.yaml").write_text(yaml.safe_dump_all([o.obj for o in objects], sort_keys=False))
        kustomization: dict[str, Any] = {"resources": ["rendered.yaml"], "patches": patches}
        if images:
            kustomization["images"] = images
        Path(tmp, "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
        try:
            patched = run_kustomize(Path(tmp), f"postRenderers of {hr.ref}")
        except RenderError as error:
            raise RenderError(f"postRenderers kustomize patches failed: {error}", hr.source_file, hr.ref,
                              "spec.postRenderers") from error
    return [Resource(doc, hr.source_file, f"HelmRelease {hr.namespace}/{hr.name}",
                     templates.get((doc.get("kind"), mapping(doc.get("metadata")).get("namespace", ""),
                                    mapping(doc.get("metadata")).get("name")))) for doc in patched]
