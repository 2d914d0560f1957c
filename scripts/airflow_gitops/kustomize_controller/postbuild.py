"""kustomize-controller's post-build step: variable substitution (spec.postBuild), as fluxcd/pkg kustomize does it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from airflow_gitops.kustomize_controller.api import Kustomization
from airflow_gitops.model import ERROR, ClusterState, Finding, RenderError, field_path, object_data, object_ref

SUBSTITUTE_ANNOTATION = "kustomize.toolkit.fluxcd.io/substitute"
# What kustomize-controller accepts as a variable name in substitute/substituteFrom.
VARIABLE_NAME = re.compile(r"^[_A-Za-z][_A-Za-z0-9]*$")
# drone/envsubst, which Flux uses: $$ escapes, ${name[op default]} and bare $name.
SUBSTITUTION = re.compile(r"\$(?:(\$)|\{([^}]*)\}|([_A-Za-z][_A-Za-z0-9]*))")


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
            findings.append(Finding(ERROR, file_of(obj), object_ref(obj), error.field, error.message, "substitution"))
            result.append(obj)
            continue
        for name, where in substitution.missing:
            findings.append(
                Finding(
                    ERROR,
                    file_of(obj),
                    object_ref(obj),
                    where,
                    f"variable ${{{name}}} has no value in substituteFrom/substitute and no default "
                    "(kustomize-controller substitutes an empty string, or fails in strict mode)",
                    "substitution",
                )
            )
    return result, findings


def collect_variables(state: ClusterState, ks: Kustomization) -> dict[str, str]:
    """substituteFrom in order (later wins), then inline substitute over all of them, as kustomize-controller does."""
    variables: dict[str, str] = {}
    if ks.post_build is None:
        return variables
    namespace, file, ref = ks.namespace, ks.resource.source_file, ks.resource.ref
    for source in ks.post_build.substitute_from:
        kind, name = source.kind, source.name
        found = state.find(kind, name, namespace)
        if found is None:
            if source.optional:
                state.notes.append(f"{ref}: optional {kind} {namespace}/{name} is not in Git "
                                   "(made on the cluster); rendered without it")
                continue
            state.findings.append(Finding(ERROR, file, ref, source.where,
                                          f"{kind} {namespace}/{name} is not applied by this cluster before "
                                          f"{ks.name} (Flux would fail: not found)", "substitution"))
            continue
        for key, value in object_data(found.obj).items():
            if not VARIABLE_NAME.match(key):
                state.findings.append(Finding(ERROR, found.source_file, object_ref(found.obj), f"data.{key}",
                                              "not a valid variable name for Flux substitution", "substitution"))
                continue
            variables[key] = str(value).replace("\n", "")
    for key, value in ks.post_build.substitute.items():
        variables[key] = str(value).replace("\n", "")
    # fluxcd/pkg kustomize.SubstituteVariables and LoadVariables drop newlines from every value.
    return variables
