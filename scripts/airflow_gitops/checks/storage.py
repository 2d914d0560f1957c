"""Storage classes: every class a volume asks for exists on the cluster before the volume is made.

A class either is declared in the cluster's desired state (a StorageClass applied by a Flux Kustomization
that the user's Kustomization is, or depends on), or comes with the cluster: `provided_storage_classes` in
cluster-vars, a comma-separated list (kind provides `standard`; EKS Auto Mode provides none).
A volume whose class exists nowhere stays Pending, and with it the Kustomization that waits for it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from airflow_gitops.checks.policies import pod_specs
from airflow_gitops.kustomize_controller.api import Kustomization, kustomizations
from airflow_gitops.model import ERROR, Finding, ReleaseRender, Resource, field_path, mapping

PROVIDED_VARIABLE = "provided_storage_classes"
CHECK = "storage-class"


def provided_classes(variables: dict[str, str]) -> set[str]:
    return {name.strip() for name in variables.get(PROVIDED_VARIABLE, "").split(",") if name.strip()}


def requested_classes(resource: Resource) -> Iterator[tuple[list[Any], str]]:
    """(field path, class name) of every storage class an object asks for."""
    obj, kind = resource.obj, resource.kind
    spec = mapping(obj.get("spec"))
    if kind == "PersistentVolumeClaim":
        yield from _named(spec, ["spec"], "storageClassName")
    if kind == "StatefulSet":
        for index, template in enumerate(spec.get("volumeClaimTemplates") or []):
            yield from _named(template.get("spec") or {}, ["spec", "volumeClaimTemplates", index, "spec"],
                              "storageClassName")
    if kind == "Cluster" and resource.api_version.startswith("postgresql.cnpg.io/"):
        for key in ("storage", "walStorage"):
            storage = spec.get(key) or {}
            yield from _named(storage, ["spec", key], "storageClass")
            yield from _named(storage.get("pvcTemplate") or {}, ["spec", key, "pvcTemplate"], "storageClassName")
        for index, tablespace in enumerate(spec.get("tablespaces") or []):
            yield from _named(tablespace.get("storage") or {}, ["spec", "tablespaces", index, "storage"], "storageClass")
    for path, pod in pod_specs(resource):
        for index, volume in enumerate(pod.get("volumes") or []):
            claim = mapping(mapping(volume.get("ephemeral")).get("volumeClaimTemplate")).get("spec") or {}
            yield from _named(claim, [*path, "volumes", index, "ephemeral", "volumeClaimTemplate", "spec"],
                              "storageClassName")


def values_classes(values: Any, path: list[Any] | None = None) -> Iterator[tuple[list[Any], str]]:
    """Every `storageClassName` in chart values (the chart may not be at hand to render its volumes)."""
    path = path or []
    if isinstance(values, dict):
        for key, value in values.items():
            if key == "storageClassName" and isinstance(value, str) and value:
                yield [*path, key], value
            else:
                yield from values_classes(value, [*path, key])
    elif isinstance(values, list):
        for index, item in enumerate(values):
            yield from values_classes(item, [*path, index])


def _named(spec: dict[str, Any], path: list[Any], key: str) -> Iterator[tuple[list[Any], str]]:
    name = spec.get(key)
    # An empty class name asks for no class at all (static binding); absent means the default class.
    if isinstance(name, str) and name:
        yield [*path, key], name


def _dependencies(found: list[Kustomization]) -> dict[str, set[str]]:
    """Kustomization ref -> itself and every Kustomization it depends on, transitively."""
    direct = {}
    for ks in found:
        direct[ks.applier] = {f"Kustomization {dependency}" for dependency in ks.depends_on}
    closure = {}
    for start in direct:
        seen, todo = {start}, [start]
        while todo:
            for dependency in direct.get(todo.pop(), ()):
                if dependency not in seen:
                    seen.add(dependency)
                    todo.append(dependency)
        closure[start] = seen
    return closure


def storage_classes(git_resources: list[Resource], releases: list[ReleaseRender], variables: dict[str, str],
                    values_file_of: Callable[[ReleaseRender, list[Any]], str]) -> list[Finding]:
    provided = provided_classes(variables)
    after = _dependencies(kustomizations(git_resources))
    # class -> the Kustomizations that apply a StorageClass of that name
    declared: dict[str, set[str]] = {}
    releases_by_ref = {r.helmrelease.ref: r for r in releases}
    for release in releases:
        for obj in release.objects:
            if obj.kind == "StorageClass":
                declared.setdefault(obj.name, set()).add(release.helmrelease.applied_by)
    for r in git_resources:
        if r.kind == "StorageClass":
            declared.setdefault(r.name, set()).add(r.applied_by)

    def problem(name: str, applier: str) -> str | None:
        if name in provided:
            return None
        if name not in declared:
            shown = ", ".join(sorted(provided)) or "none"
            return (f"storage class {name!r} is not declared in this cluster's desired state nor listed in "
                    f"cluster-vars {PROVIDED_VARIABLE} (provided: {shown}): its volumes would stay Pending")
        if applier in after and not declared[name] & after[applier]:
            where = ", ".join(sorted(declared[name]))
            return (f"storage class {name!r} is applied by {where}, which {applier} does not depend on: "
                    "the volume may be created before its class exists")
        return None

    findings = []
    users = [*git_resources, *(o for release in releases for o in release.objects)]
    for r in users:
        applier = r.applied_by
        if applier in releases_by_ref:
            applier = releases_by_ref[applier].helmrelease.applied_by
        for path, name in requested_classes(r):
            message = problem(name, applier)
            if message:
                findings.append(Finding(ERROR, r.location, r.ref, field_path(path), message, CHECK))
    for release in releases:
        for path, name in values_classes(release.values):
            message = problem(name, release.helmrelease.applied_by)
            if message:
                findings.append(Finding(ERROR, values_file_of(release, path), f"values of {release.helmrelease.ref}",
                                        field_path(path), message, CHECK))
    return findings
