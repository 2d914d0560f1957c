"""kustomize-controller's post-build step: variable substitution (spec.postBuild), as fluxcd/pkg kustomize v1.35
(kustomize_varsub.go, SubstituteVariables) does it for Flux 2.9: each object not labelled or annotated
`substitute: disabled` is written as YAML text, envsubst runs on the text (envsubst.py), and the text is read back
(yamltext.py). A value is therefore typed by where it lands in the text: `replicas: ${n}` with n = "3" is the
integer 3, and a value with YAML syntax in it can break the object, which fails the whole Kustomization in Flux."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from airflow_gitops import yamltext
from airflow_gitops.kustomize_controller import envsubst
from airflow_gitops.kustomize_controller.api import CommonMetadata, Kustomization
from airflow_gitops.model import ERROR, ClusterState, Finding, RenderError, field_path, mapping, object_data, object_ref
from airflow_gitops.source import bounds

SUBSTITUTE_ANNOTATION = "kustomize.toolkit.fluxcd.io/substitute"
# kustomize_varsub.go varsubRegex `^[_[:alpha:]][_[:alpha:][:digit:]]*$` (RE2 classes are ASCII).
VARIABLE_NAME = re.compile(r"^[_A-Za-z][_A-Za-z0-9]*$")
FAILS_THE_KUSTOMIZATION = "kustomize-controller fails the whole Kustomization"
# The bound on a Kustomization's post-build output: the bound of its kustomize build's output (source/bounds.py), so
# that substitution cannot grow what the build was allowed to produce past what the tool reads.
MAX_OUTPUT_CHARACTERS = bounds.MAX_OUTPUT_BYTES


def substitution_disabled(obj: dict[str, Any]) -> bool:
    """SubstituteVariables skips an object whose label or annotation `substitute` is `disabled`."""
    meta = mapping(obj.get("metadata"))
    return "disabled" in (mapping(meta.get("annotations")).get(SUBSTITUTE_ANNOTATION),
                          mapping(meta.get("labels")).get(SUBSTITUTE_ANNOTATION))


def referenced_variables(text: str) -> list[str]:
    """The variables a text reads as Flux's envsubst parses it (`$$` escapes, a bare `$var` is not one)."""
    return envsubst.variable_names(text)


@dataclass
class Substitution:
    """envsubst on one text, for inputs Flux never parses as YAML (the AWS templates of aws_templates.py)."""

    variables: dict[str, str]
    # Variables used without a value or default: kustomize-controller in strict mode (2.9's default) fails.
    missing: list[tuple[str, str]] = field(default_factory=list)

    def text(self, value: str, where: str) -> str:
        try:
            evaluation = envsubst.evaluate(value, self.variables)
        except envsubst.EnvsubstError as error:
            raise RenderError(_parse_error_message(value, error), field=where) from None
        self.missing += [(missing.name, where) for missing in evaluation.missing]
        return evaluation.text


def _expression_at(text: str, offset: int) -> str:
    end = text.find("}", offset)
    line_end = text.find("\n", offset)
    stop = min(x for x in (end + 1 if end >= 0 else len(text), line_end if line_end >= 0 else len(text),
                           offset + 60))
    return text[offset:stop]


def _parse_error_message(text: str, error: envsubst.EnvsubstError) -> str:
    return (f"{_expression_at(text, error.offset)}: envsubst cannot parse it ({error.message}); "
            f"{FAILS_THE_KUSTOMIZATION} (escape a literal dollar as $$)")


def _missing_message(name: str) -> str:
    return (f"variable ${{{name}}} has no value in substituteFrom/substitute and no default "
            "(kustomize-controller fails in strict mode, its default since Flux 2.9; without it, an empty value)")


def _field_at(text: str, offset: int) -> str:
    """The field of the object whose text holds `offset` (a key when it is in the key)."""
    found: list[Any] = []

    def walk(node: yaml.Node, path: list[Any]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.start_mark.index <= offset < key.end_mark.index:
                        found[:] = [*path, key.value]
                    walk(value, [*path, key.value])
        elif isinstance(node, yaml.SequenceNode):
            for position, item in enumerate(node.value):
                walk(item, [*path, position])
        elif node.start_mark.index <= offset < max(node.end_mark.index, node.start_mark.index + 1):
            found[:] = path

    walk(yaml.compose(text, Loader=yaml.SafeLoader), [])  # type: ignore[arg-type]  # a failing text is not empty
    return field_path(found)


@dataclass
class Budget:
    """What is left of the post-build output bound of one Kustomization."""

    remaining: int = MAX_OUTPUT_CHARACTERS


def substitute_object(obj: dict[str, Any], variables: dict[str, str], budget: Budget | None = None
                      ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The object after post-build, and each problem as (field, message). On a problem Flux fails the build; the
    object is then returned as it was (or with "" for missing variables, as non-strict mode gives). The text it
    becomes counts against `budget`."""
    budget = budget if budget is not None else Budget()
    text = yamltext.to_yaml(obj)
    try:
        nodes = envsubst.parse(text)
    except envsubst.EnvsubstError as error:
        return obj, [(_field_at(text, error.offset), _parse_error_message(text, error))]
    try:
        evaluation = envsubst.evaluate(text, variables, nodes, max(budget.remaining, 0))
    except envsubst.OutputBound as bound:
        return obj, [(_field_at(text, bound.offset), f"{_expression_at(text, bound.offset)}: the Kustomization's "
                      f"post-build output would be {bound}: a large variable read many times? (the tool bounds "
                      "post-build output as it bounds a kustomize build's)")]
    budget.remaining -= len(evaluation.text)
    problems = [(_field_at(text, missing.offset), _missing_message(missing.name))
                for missing in evaluation.missing]
    try:
        result = yamltext.from_yaml(evaluation.text)
    except (yaml.YAMLError, yamltext.UnsupportedValue) as error:
        start, end = _breaking_expression(text, evaluation)
        detail = error.problem if isinstance(error, yaml.MarkedYAMLError) and error.problem else str(error)
        return obj, [*problems, (_field_at(text, start),
                                 f"{text[start:end]} breaks the object once substituted ({detail}): "
                                 f"{FAILS_THE_KUSTOMIZATION}. Flux substitutes the YAML text, so a value that "
                                 "is YAML syntax (': ', '[', '{', quotes, ' #') needs quoting in the value")]
    if not isinstance(result, dict):
        return obj, [*problems, ("(root)", f"the object is no longer a mapping once substituted; "
                                           f"{FAILS_THE_KUSTOMIZATION}")]
    return result, problems


def _breaking_expression(text: str, evaluation: envsubst.Evaluation) -> tuple[int, int]:
    """The first expression whose value, substituted with those before it, makes the text unreadable."""
    for count in range(1, len(evaluation.expressions) + 1):
        pieces, position = [], 0
        for index, (start, end, value) in enumerate(evaluation.expressions):
            pieces.append(text[position:start])
            pieces.append(value if index < count else text[start:end])
            position = end
        pieces.append(text[position:])
        try:
            yamltext.from_yaml("".join(pieces))
        except (yaml.YAMLError, yamltext.UnsupportedValue):
            return evaluation.expressions[count - 1][:2]
    return 0, 0


def substitute(
    objects: list[dict[str, Any]], variables: dict[str, str], file_of
) -> tuple[list[dict[str, Any]], list[Finding]]:
    """Post-build substitution on every object not disabled, each problem a finding on its field."""
    findings: list[Finding] = []
    result = []
    budget = Budget()
    for obj in objects:
        if substitution_disabled(obj):
            result.append(obj)
            continue
        substituted, problems = substitute_object(obj, variables, budget)
        result.append(substituted)
        findings += [Finding(ERROR, file_of(obj), object_ref(obj), where, message, "substitution")
                     for where, message in problems]
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
        if not VARIABLE_NAME.match(str(key)):
            # varSubstitution checks the inline names too: "'<name>' var name is invalid".
            state.findings.append(Finding(ERROR, file, ref, f"spec.postBuild.substitute.{key}",
                                          "not a valid variable name for Flux substitution", "substitution"))
            continue
        variables[key] = str(value).replace("\n", "")
    # fluxcd/pkg kustomize.SubstituteVariables and LoadVariables drop newlines from every value.
    return variables


def apply_common_metadata(objects: list[dict[str, Any]], common: CommonMetadata | None) -> None:
    """spec.commonMetadata on every object, as kustomize-controller's apply step does after post-build
    (fluxcd/pkg ssa/utils SetCommonMetadata): object metadata only, never pod templates; its keys override
    the object's own; its values are not substituted (they are the Kustomization's own, substituted by its
    parent)."""
    if common is None:
        return
    for obj in objects:
        metadata = obj.get("metadata")
        if not isinstance(metadata, dict):
            metadata = obj["metadata"] = {}
        for key, values in (("labels", common.labels), ("annotations", common.annotations)):
            merged = dict(metadata.get(key) or {}) if isinstance(metadata.get(key), dict) else {}
            merged.update(values)
            if merged:
                metadata[key] = merged
