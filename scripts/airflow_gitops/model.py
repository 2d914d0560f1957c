"""Objects as Flux would apply them, and findings that name the file, the object and the field.

The leaf of the package: it imports nothing of it, so every layer can use it (tests/structure/test_import_rules.py)."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


def mapping(node: Any) -> dict[str, Any]:
    """`node` when it is a mapping, else {}: a wrongly typed field is the schema check's finding, never a crash."""
    return node if isinstance(node, dict) else {}


def sequence(node: Any) -> list[Any]:
    return node if isinstance(node, list) else []


def string(node: Any) -> str | None:
    """`node` when it is a string, else None: like mapping(), a wrongly typed field reads as absent."""
    return node if isinstance(node, str) else None


ERROR = "error"
# A CRD whose schema is not available: never reported as valid.
UNVALIDATED = "unvalidated"
WARNING = "warning"


@dataclass
class Resource:
    """One object Flux applies: from Git through a Kustomization, or rendered from a chart."""

    obj: dict[str, Any]
    source_file: str
    # "Kustomization flux-system/apps", or "HelmRelease airflow/airflow" for chart objects.
    applied_by: str
    # Chart template path for chart objects, e.g. "airflow/templates/scheduler/scheduler-deployment.yaml".
    template: str | None = None

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", ""))

    @property
    def api_version(self) -> str:
        return str(self.obj.get("apiVersion", ""))

    @property
    def name(self) -> str:
        return str(mapping(self.obj.get("metadata")).get("name", ""))

    @property
    def namespace(self) -> str:
        return str(mapping(self.obj.get("metadata")).get("namespace") or "")

    @property
    def ref(self) -> str:
        return object_ref(self.obj)

    @property
    def location(self) -> str:
        return f"{self.source_file} ({self.template})" if self.template else self.source_file


def object_data(obj: dict[str, Any]) -> dict[str, str]:
    """A ConfigMap's data, or a Secret's decoded data plus stringData, as Flux reads them. A value that is no base64
    reads as "": the API server refuses such a Secret, and the schema check reports it (checks/schemas.py)."""
    data = {str(key): value for key, value in mapping(obj.get("data")).items()}
    if obj.get("kind") == "Secret":
        data = {key: _base64_text(value) for key, value in data.items()}
        data.update({str(key): value for key, value in mapping(obj.get("stringData")).items()})
    return data


def _base64_text(value: Any) -> str:
    try:
        return base64.b64decode(str(value), validate=True).decode(errors="replace")
    except (binascii.Error, ValueError):
        return ""


# Kinds whose spec.template is a pod template.
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job")


def pod_templates(resource: Resource) -> Iterator[tuple[list[Any], dict[str, Any], dict[str, Any]]]:
    """(path of the pod spec, pod metadata, pod spec) of every pod an object makes: a Pod, a PodTemplate, a workload,
    a CronJob. The object is the one under check, so it is read as rendered, as the API server would read it."""
    obj, kind = resource.obj, resource.kind
    spec = mapping(obj.get("spec"))
    if kind == "Pod":
        yield ["spec"], mapping(obj.get("metadata")), spec
    elif kind == "PodTemplate":
        template = mapping(obj.get("template"))
        yield ["template", "spec"], mapping(template.get("metadata")), mapping(template.get("spec"))
    elif kind in WORKLOAD_KINDS:
        template = mapping(spec.get("template"))
        yield ["spec", "template", "spec"], mapping(template.get("metadata")), mapping(template.get("spec"))
    elif kind == "CronJob":
        template = mapping(mapping(mapping(spec.get("jobTemplate")).get("spec")).get("template"))
        yield (["spec", "jobTemplate", "spec", "template", "spec"], mapping(template.get("metadata")),
               mapping(template.get("spec")))


def envelope_problems(obj: Any) -> list[tuple[str, str]]:
    """(field, why) for each part of an object's envelope that is not the type every Kubernetes object has: a mapping
    with string apiVersion and kind, a metadata mapping with a string name, an optional string namespace, and labels
    and annotations that map strings to strings. The API server cannot decode such an object, so Flux fails on it;
    the engine judges only objects that have an envelope, and reports the others with these problems."""
    if not isinstance(obj, dict):
        return [("(root)", f"the document is a {type(obj).__name__}, not an object (a mapping)")]
    problems = []
    for key in ("apiVersion", "kind"):
        if not isinstance(obj.get(key), str) or not obj.get(key):
            problems.append((key, f"must be a non-empty string; got {_shown(obj.get(key))}"))
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return [*problems, ("metadata", f"must be a mapping; got {_shown(meta)}")]
    if not isinstance(meta.get("name"), str) and not isinstance(meta.get("generateName"), str):
        problems.append(("metadata.name", f"must be a string; got {_shown(meta.get('name'))}"))
    if "namespace" in meta and meta["namespace"] is not None and not isinstance(meta["namespace"], str):
        problems.append(("metadata.namespace", f"must be a string; got {_shown(meta['namespace'])}"))
    for key in ("labels", "annotations"):
        value = meta.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            problems.append((f"metadata.{key}", f"must be a mapping of strings; got {_shown(value)}"))
            continue
        for name, text in value.items():
            if not isinstance(name, str) or not isinstance(text, str):
                problems.append((f"metadata.{key}.{name}", f"keys and values must be strings; got {_shown(text)}"))
    return problems


def _shown(value: Any) -> str:
    if value is None:
        return "nothing"
    text = repr(value)
    return f"a {type(value).__name__} ({text[:40]}{'...' if len(text) > 40 else ''})"


def object_ref(obj: dict[str, Any]) -> str:
    meta = mapping(obj.get("metadata"))
    namespace = meta.get("namespace")
    name = meta.get("name", "?")
    return f"{obj.get('kind', '?')} {namespace}/{name}" if namespace else f"{obj.get('kind', '?')} {name}"


def field_path(parts: list[Any] | tuple[Any, ...]) -> str:
    """`["spec", "containers", 0, "image"]` -> `spec.containers[0].image`."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(root)"


def duration_seconds(duration: str | int | float | None) -> float:
    """Seconds of a Go duration as Flux specs write them (`1m30s`, `10s`, `1h`) and plain numbers of seconds."""
    if duration is None or duration == "":
        return 0.0
    if isinstance(duration, int | float) or re.fullmatch(r"\d+(\.\d+)?", str(duration)):
        return float(duration)
    total = 0.0
    for value, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", str(duration)):
        total += float(value) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
    return total


def escaped(text: str, name: bool = False) -> str:
    """`text` as one printable line, whatever it holds: every character that is not printable (newline, CR, tab,
    ESC and every other control, format characters such as bidi overrides, line and paragraph separators, spaces
    other than ' ') is shown as a `\\xNN`/`\\uNNNN` escape, and so, in a name, is the backtick. So nothing taken from
    a pull request (an object, file or cluster name, a value) can start a line of its own in a diff, a log or a
    comment (`::`-commands, a `+++` header), close a code fence, or write a terminal escape."""
    if text.isprintable() and not (name and "`" in text):
        return text
    return "".join(_escape_character(c) if not c.isprintable() or (name and c == "`") else c for c in text)


def _escape_character(c: str) -> str:
    code = ord(c)
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c) or (
        f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")


@dataclass(frozen=True)
class Finding:
    severity: str
    file: str
    object: str
    field: str
    message: str
    check: str = ""
    # Lines shown under the finding as they are (the YAML to add, say): text the tool made, never a pull request's.
    detail: str = ""

    def __str__(self) -> str:
        """One line (the names and the message escaped), then `detail`, if any."""
        tag = "" if self.severity == ERROR else f"[{self.severity}] "
        line = (f"{tag}{escaped(self.file, name=True)}: {escaped(self.object, name=True)}: "
                f"{escaped(self.field, name=True)}: {escaped(self.message)}")
        return f"{line}\n{self.detail}" if self.detail else line


@dataclass
class RenderError(Exception):
    """Rendering cannot go on; the message names the file and object."""

    message: str
    file: str = ""
    object: str = ""
    field: str = ""

    def __str__(self) -> str:
        where = ": ".join(escaped(part, name=True) for part in (self.file, self.object, self.field) if part)
        return f"{where}: {escaped(self.message)}" if where else escaped(self.message)

    def as_finding(self, check: str = "render") -> Finding:
        return Finding(ERROR, self.file or "?", self.object or "?", self.field or "(root)", self.message, check)


@dataclass
class ReleaseRender:
    """A HelmRelease with the values helm-controller composes, and its chart's objects when a chart is at hand."""

    helmrelease: Resource
    release_name: str
    namespace: str
    chart_name: str
    chart_version: str
    values: dict[str, Any]
    # Values files (repository paths) behind the valuesFrom ConfigMaps, in merge order.
    values_files: list[str] = field(default_factory=list)
    objects: list[Resource] = field(default_factory=list)
    # Why the chart's objects are missing, when they are.
    unrendered_reason: str | None = None
    chart_values_keys: set[str] | None = None
    chart_schema: dict[str, Any] | None = None
    # The chart's NOTES.txt rendered with the release's values (what `helm install` prints), when it has one.
    notes: str | None = None


@dataclass
class ClusterState:
    """A cluster as Flux would leave it: what kustomize-controller applied, then what helm-controller rendered."""

    name: str
    # Objects from Git, in the order Flux applies them (Kustomization by Kustomization).
    resources: list[Resource] = field(default_factory=list)
    releases: list[ReleaseRender] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    # Notes for the user that are not errors, e.g. an optional substituteFrom that is absent offline.
    notes: list[str] = field(default_factory=list)

    @property
    def all_resources(self) -> list[Resource]:
        chart_objects = [obj for release in self.releases for obj in release.objects]
        return [*self.resources, *chart_objects]

    def find(self, kind: str | None, name: str | None, namespace: str | None = None) -> Resource | None:
        """The first object applied with this kind, name and (when given) namespace; a None kind or name, as a
        typed field holds when the manifest leaves it out, matches nothing."""
        for resource in self.resources:
            if resource.kind == kind and resource.name == name and (
                namespace is None or resource.namespace == namespace
            ):
                return resource
        return None
