"""kustomize-controller's build: a Kustomization's path built exactly as the controller does (a generated
kustomization.yaml when there is none, spec overlay fields on top)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from airflow_gitops.krusty import has_kustomization, run_kustomize
from airflow_gitops.model import RenderError, mapping
from airflow_gitops.source import bounds


def generated_resources(path: Path) -> list[Path]:
    """The resources kustomize-controller lists when a path has no kustomization.yaml:
    every Kubernetes YAML file below it, and sub-folders that have their own kustomization.yaml."""
    found: list[Path] = []
    for entry in sorted(path.iterdir()):
        if entry.is_dir():
            found.extend([entry] if has_kustomization(entry) else generated_resources(entry))
        elif entry.suffix in (".yaml", ".yml") and _holds_objects(entry):
            found.append(entry)
    return found


def _holds_objects(file: Path) -> bool:
    """fluxcd/pkg kustomize scanManifests lists every .yaml/.yml file, and fails the whole build on one that
    is not Kubernetes objects (kustomize's resource factory: a kind, and a name unless it is a List)."""
    try:
        docs = bounds.load_file(file, file.name)
    except yaml.YAMLError:
        return True  # let kustomize report the broken file with its own message
    for doc in docs:
        if not isinstance(doc, dict) or not doc.get("kind"):
            raise RenderError(f"failed to decode Kubernetes YAML from {file}: missing kind in object (Flux lists "
                              "every YAML file of a path without kustomization.yaml)")
        if not str(doc["kind"]).endswith("List") and not mapping(doc.get("metadata")).get("name"):
            raise RenderError(f"failed to decode Kubernetes YAML from {file}: missing metadata.name in object")
    return bool(docs)


def build(path: Path, spec: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """kustomize build of `path` with the Kustomization spec's overlay fields, load restrictor none."""
    spec = spec or {}
    overlay_fields = ("targetNamespace", "patches", "images", "namePrefix", "nameSuffix", "components")
    if has_kustomization(path) and not any(spec.get(key) for key in overlay_fields):
        return run_kustomize(path)
    with tempfile.TemporaryDirectory(prefix="airflow-gitops-") as tmp:
        tmpdir = Path(tmp)
        resources = [path] if has_kustomization(path) else generated_resources(path)
        overlay: dict[str, Any] = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [_relative(resource, tmpdir) for resource in resources],
        }
        if spec.get("targetNamespace"):
            overlay["namespace"] = spec["targetNamespace"]
        for key in ("images", "namePrefix", "nameSuffix"):
            if spec.get(key):
                overlay[key] = spec[key]
        if spec.get("patches"):
            # Flux's patch type has only these two fields: a `path` would make kustomize read a file.
            overlay["patches"] = [{k: v for k, v in patch.items() if k in ("patch", "target")}
                                  for patch in spec["patches"] if isinstance(patch, dict)]
        # ignoreMissingComponents: Flux leaves out a component path that does not exist.
        components = [c for c in spec.get("components") or []
                      if spec.get("ignoreMissingComponents") is not True or (path / str(c)).exists()]
        if components:
            overlay["components"] = [_relative(path / component, tmpdir) for component in components]
        (tmpdir / "kustomization.yaml").write_text(yaml.safe_dump(overlay, sort_keys=False))
        return run_kustomize(tmpdir)


def _relative(target: Path, start: Path) -> str:
    # kustomize refuses absolute folder resources; a relative path works with LoadRestrictionsNone.
    return os.path.relpath(target.resolve(), start.resolve())
