"""What helm-controller does with a HelmRelease: compose values, name the release, render the chart."""

from __future__ import annotations

import copy
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from airflow_gitops import bounds, kustomize
from airflow_gitops.model import WARNING, Finding, ReleaseRender, RenderError, Resource, load_yaml, load_yaml_all, object_data
from airflow_gitops.settings import CHARTS_ENV, Settings

HELM_API = "helm.toolkit.fluxcd.io"
CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass", "CustomResourceDefinition", "StorageClass",
    "PersistentVolume", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "APIService",
    "SecurityContextConstraints", "IngressClass", "RuntimeClass", "CSIDriver",
}
_loaded_charts: dict[Path, Any] = {}
# A chart that could not be fetched is not asked for again by the same process (bench, validate all).
_unavailable: dict[tuple[str, str, str], str] = {}
_warned: set[str] = set()


class ChartUnavailable(Exception):
    pass


def render_releases(settings: Settings, index, state) -> list[ReleaseRender]:
    releases = []
    for resource in list(state.resources):
        if resource.kind != "HelmRelease" or not resource.api_version.startswith(HELM_API):
            continue
        try:
            release = compose(state, index, resource)
        except RenderError as error:
            state.findings.append(error.as_finding("values"))
            continue
        try:
            chart = load_chart(settings, state, resource)
        except ChartUnavailable as reason:
            release.unrendered_reason = str(reason)
            releases.append(release)
            continue
        release.chart_values_keys = set(chart.values)
        release.chart_schema = chart.schema or None
        try:
            release.objects = render_chart(chart, release)
        except RenderError as error:
            state.findings.append(error.as_finding("chart"))
        releases.append(release)
    return releases


def release_identity(hr: dict[str, Any]) -> tuple[str, str]:
    """(release name, namespace) as helm-controller derives them."""
    spec = hr.get("spec") or {}
    meta = hr.get("metadata") or {}
    namespace = spec.get("targetNamespace") or meta.get("namespace") or "default"
    name = spec.get("releaseName") or (
        f"{spec['targetNamespace']}-{meta['name']}" if spec.get("targetNamespace") else meta["name"]
    )
    if len(name) > 53:
        # helm-controller shortens long names the same way: a prefix and a hash of the full name.
        import hashlib

        digest = hashlib.sha256(name.encode()).hexdigest()[:12]
        name = f"{name[:40]}-{digest}"
    return name, namespace


def compose(state, index, hr: Resource) -> ReleaseRender:
    """valuesFrom in order (valuesKey, targetPath, optional), then inline values on top."""
    spec = hr.obj.get("spec") or {}
    chart_spec = _chart_spec(hr)
    name, namespace = release_identity(hr.obj)
    values: dict[str, Any] = {}
    values_files: list[str] = []
    for position, ref in enumerate(spec.get("valuesFrom") or []):
        where = f"spec.valuesFrom[{position}]"
        kind, ref_name = ref.get("kind"), ref.get("name")
        source = state.find(kind, ref_name, hr.namespace)
        if source is None:
            if ref.get("optional"):
                continue
            raise RenderError(f"{kind} {hr.namespace}/{ref_name} is not applied by this cluster", hr.source_file,
                              hr.ref, where)
        key = ref.get("valuesKey") or "values.yaml"
        data = object_data(source.obj)
        if key not in data:
            if ref.get("optional"):
                continue
            raise RenderError(f"{kind} {ref_name} has no key {key!r}", hr.source_file, hr.ref, f"{where}.valuesKey")
        inputs = index.generator_inputs(ref_name, os.path.dirname(source.source_file))
        values_files.extend(inputs)
        origin = inputs[0] if inputs else source.source_file
        if ref.get("targetPath"):
            if str(ref["targetPath"]).count(".") >= bounds.MAX_DEPTH:
                raise RenderError(f"targetPath deeper than {bounds.MAX_DEPTH} levels", hr.source_file, hr.ref,
                                  f"{where}.targetPath")
            set_path(values, ref["targetPath"], data[key])
            continue
        try:
            layer = load_yaml(data[key], origin) or {}
        except yaml.YAMLError as error:
            raise RenderError(f"values are not YAML: {error}", origin, f"{kind} {ref_name}", key) from None
        if not isinstance(layer, dict):
            raise RenderError("values must be a mapping", origin, f"{kind} {ref_name}", key)
        values = merge(values, layer)
    values = merge(values, spec.get("values") or {})
    return ReleaseRender(
        helmrelease=hr,
        release_name=name,
        namespace=namespace,
        chart_name=str(chart_spec.get("chart", "")),
        chart_version=str(chart_spec.get("version", "")),
        values=values,
        values_files=values_files,
    )


def merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Helm's MergeMaps: maps merge deeply, everything else (lists included) is replaced."""
    result = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def set_path(values: dict[str, Any], path: str, raw: str) -> None:
    """targetPath as `helm --set` writes it: dotted keys (`\\.` escapes a dot), typed scalars."""
    keys = [part.replace("\\.", ".") for part in re.split(r"(?<!\\)\.", path)]
    node = values
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    lowered = raw.strip().lower()
    value: Any = raw
    if lowered in ("true", "false"):
        value = lowered == "true"
    elif re.fullmatch(r"-?\d+", raw.strip()):
        value = int(raw)
    elif lowered == "null":
        value = None
    node[keys[-1]] = value


def _chart_spec(hr: Resource) -> dict[str, Any]:
    return ((hr.obj.get("spec") or {}).get("chart") or {}).get("spec") or {}


def load_chart(settings: Settings, state, hr: Resource):
    """The chart of a HelmRelease: a local override, the cache, or its HelmRepository, in that order."""

    spec = _chart_spec(hr)
    name, version = spec.get("chart"), str(spec.get("version", ""))
    if not spec:
        raise ChartUnavailable("spec.chartRef (OCIRepository/HelmChart) rendering is not supported offline")
    local = settings.local_charts.get(name)
    if local:
        chart = _load(local)
        if chart.name != name or chart.version != version:
            message = (f"rendering {hr.ref} with local chart {chart.name} {chart.version} from {local}, "
                       f"but the manifests pin {name} {version}: output may differ from what Flux installs")
            if message not in _warned:
                _warned.add(message)
                print(f"WARNING: {message}", file=sys.stderr)
            state.findings.append(Finding(WARNING, hr.source_file, hr.ref, "spec.chart.spec.version", message,
                                          "chart"))
        return chart
    source = spec.get("sourceRef") or {}
    repository = state.find(source.get("kind"), source.get("name"), source.get("namespace") or hr.namespace)
    if repository is None:
        raise ChartUnavailable(f"{source.get('kind')} {source.get('name')} is not applied by this cluster")
    url = str((repository.obj.get("spec") or {}).get("url", ""))
    host = re.sub(r"[^A-Za-z0-9.-]", "_", url.split("://", 1)[-1].strip("/"))
    cached = settings.cache_dir / "charts" / host / f"{name}-{version}.tgz"
    if not cached.exists():
        if (name, version, url) in _unavailable:
            raise ChartUnavailable(_unavailable[(name, version, url)])
        try:
            _pull(name, version, url, cached)
        except ChartUnavailable as reason:
            _unavailable[(name, version, url)] = str(reason)
            raise
    return _load(cached)


def _pull(name: str, version: str, url: str, destination: Path) -> None:
    import helm_python

    if url.startswith("oci://"):
        raise ChartUnavailable(f"OCI HelmRepository {url} is not supported; give a local chart")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            helm_python.pull(name, repo_url=url, version=version, destination=tmp)
        except Exception as error:  # the SDK raises several error types for network and index problems
            raise ChartUnavailable(
                f"chart {name} {version} from {url} is not in the cache ({destination}) and could not be fetched "
                f"({type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}). "
                f"Offline, point at a local copy: --chart {name}=PATH or {CHARTS_ENV}={name}=PATH"
            ) from error
        files = list(Path(tmp).glob("*.tgz"))
        if not files:
            raise ChartUnavailable(f"pulling chart {name} {version} from {url} produced no archive")
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(files[0]), destination)


def _load(path: Path):
    import helm_python

    if path not in _loaded_charts:
        if not path.exists():
            raise ChartUnavailable(f"local chart {path} does not exist")
        _loaded_charts[path] = helm_python.Chart.load(str(path))
    return _loaded_charts[path]


def render_chart(chart, release: ReleaseRender) -> list[Resource]:
    import helm_python

    hr = release.helmrelease
    try:
        manifests = chart.render(release.values, name=release.release_name, namespace=release.namespace,
                                 is_install=True)
    except helm_python.HelmError as error:
        files = ", ".join(release.values_files) or hr.source_file
        raise RenderError(f"chart {chart.name} {chart.version} refused the values: {str(error).strip()}",
                          files, hr.ref, "spec.valuesFrom") from error
    objects: list[Resource] = []
    for template, text in sorted(manifests.items()):
        if template.endswith("NOTES.txt") or not text.strip():
            continue
        try:
            docs = load_yaml_all(text, template)
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
    for position, renderer in enumerate((hr.obj.get("spec") or {}).get("postRenderers") or []):
        for index, patch in enumerate(((renderer or {}).get("kustomize") or {}).get("patches") or []):
            where = f"spec.postRenderers[{position}].kustomize.patches[{index}]"
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
            patched = kustomize.run_kustomize(Path(tmp), f"postRenderers of {hr.ref}")
        except RenderError as error:
            raise RenderError(f"postRenderers kustomize patches failed: {error}", hr.source_file, hr.ref,
                              "spec.postRenderers") from error
    return [Resource(doc, hr.source_file, f"HelmRelease {hr.namespace}/{hr.name}",
                     templates.get((doc.get("kind"), (doc.get("metadata") or {}).get("namespace", ""),
                                    (doc.get("metadata") or {}).get("name")))) for doc in patched]
