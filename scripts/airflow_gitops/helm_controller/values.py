"""helm-controller's values: release name and namespace, valuesFrom in order (valuesKey, targetPath, optional),
inline values on top, merged as Helm merges maps."""

from __future__ import annotations

import copy
import hashlib
import os
import re
from typing import Any

import yaml

from airflow_gitops.model import ClusterState, ReleaseRender, RenderError, Resource, load_yaml, object_data
from airflow_gitops.source import bounds
from airflow_gitops.source.provenance import SourceIndex


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
        digest = hashlib.sha256(name.encode()).hexdigest()[:12]
        name = f"{name[:40]}-{digest}"
    return name, namespace


def compose(state: ClusterState, index: SourceIndex, hr: Resource) -> ReleaseRender:
    """valuesFrom in order (valuesKey, targetPath, optional), then inline values on top."""
    spec = hr.obj.get("spec") or {}
    chart = chart_spec(hr)
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
        chart_name=str(chart.get("chart", "")),
        chart_version=str(chart.get("version", "")),
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


def chart_spec(hr: Resource) -> dict[str, Any]:
    return ((hr.obj.get("spec") or {}).get("chart") or {}).get("spec") or {}
