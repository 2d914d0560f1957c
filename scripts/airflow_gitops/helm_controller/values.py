"""helm-controller's values: release name and namespace, valuesFrom in order (valuesKey, targetPath, optional),
inline values on top, merged as Helm merges maps."""

from __future__ import annotations

import copy
import os
import re
from typing import Any

import yaml

from airflow_gitops.helm_controller.api import HelmRelease
from airflow_gitops.model import ClusterState, ReleaseRender, RenderError, Resource, object_data
from airflow_gitops.source import bounds
from airflow_gitops.source.provenance import SourceIndex


def release_identity(hr: dict[str, Any]) -> tuple[str, str]:
    """(release name, namespace) as helm-controller derives them."""
    release = HelmRelease.parse(Resource(hr, "", ""))
    return release.release_name, release.release_namespace


def compose(state: ClusterState, index: SourceIndex, hr: Resource) -> ReleaseRender:
    """valuesFrom in order (valuesKey, targetPath, optional), then inline values on top."""
    release = HelmRelease.parse(hr)
    values: dict[str, Any] = {}
    values_files: list[str] = []
    for ref in release.values_from:
        kind, ref_name = ref.kind, ref.name
        source = state.find(kind, ref_name, release.namespace)
        if source is None:
            if ref.optional:
                continue
            raise RenderError(f"{kind} {release.namespace}/{ref_name} is not applied by this cluster", hr.source_file,
                              hr.ref, ref.where)
        data = object_data(source.obj)
        if ref.values_key not in data:
            if ref.optional:
                continue
            raise RenderError(f"{kind} {ref_name} has no key {ref.values_key!r}", hr.source_file, hr.ref,
                              f"{ref.where}.valuesKey")
        inputs = index.generator_inputs(source.name, os.path.dirname(source.source_file))
        values_files.extend(inputs)
        origin = inputs[0] if inputs else source.source_file
        if ref.target_path:
            if ref.target_path.count(".") >= bounds.MAX_DEPTH:
                raise RenderError(f"targetPath deeper than {bounds.MAX_DEPTH} levels", hr.source_file, hr.ref,
                                  f"{ref.where}.targetPath")
            set_path(values, ref.target_path, data[ref.values_key])
            continue
        try:
            # As helm-controller reads it (chartutil.ReadValues: sigs.k8s.io/yaml), so a plain date is a string.
            layer = bounds.load_yaml(data[ref.values_key], origin, kubernetes=True) or {}
        except yaml.YAMLError as error:
            raise RenderError(f"values are not YAML: {error}", origin, f"{kind} {ref_name}", ref.values_key) from None
        if not isinstance(layer, dict):
            raise RenderError("values must be a mapping", origin, f"{kind} {ref_name}", ref.values_key)
        values = merge(values, layer)
    values = merge(values, release.values)
    return ReleaseRender(
        helmrelease=hr,
        release_name=release.release_name,
        namespace=release.release_namespace,
        chart_name=release.chart.chart if release.chart else "",
        chart_version=release.chart.version if release.chart else "",
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
