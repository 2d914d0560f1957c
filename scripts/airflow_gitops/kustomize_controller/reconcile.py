"""kustomize-controller's reconciliation of a cluster: from the bootstrap Kustomization (clusters/<cluster>), each Flux
Kustomization built and post-built in dependsOn order, as Flux applies them."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_gitops.kustomize_controller import postbuild
from airflow_gitops.kustomize_controller.build import build as kustomize_build
from airflow_gitops.model import ERROR, WARNING, ClusterState, Finding, RenderError, Resource
from airflow_gitops.settings import Settings
from airflow_gitops.source import containment
from airflow_gitops.source.provenance import SourceIndex

KUSTOMIZATION_API = "kustomize.toolkit.fluxcd.io"
BOOTSTRAP_SOURCE = "flux-system"


@dataclass
class _Build:
    """A Kustomization's build, started when it is found: the checks run at once (their findings wait here),
    the kustomize run goes to a worker thread. Builds do not depend on each other, only their post-build
    step does, so a cluster's builds overlap while they are applied in dependsOn order."""

    findings: list[Finding]
    rel_path: str = ""
    run: Callable[[], list[dict[str, Any]]] | None = None
    file: str = ""
    applier: str = ""
    where: str = ""
    sandbox_root: str = ""

    def objects(self) -> list[dict[str, Any]] | None:
        if self.run is None:
            return None
        try:
            return self.run()
        except RenderError as error:
            message = str(error).replace(f"{self.sandbox_root}/", "")
            self.findings.append(Finding(ERROR, self.file, self.applier, self.where,
                                         f"kustomize build {self.rel_path} failed: {message}", "build"))
            return None


def apply_kustomizations(settings: Settings, index: SourceIndex, state: ClusterState,
                           sandbox: containment.Sandbox) -> None:
    # The bootstrap Kustomization (gotk-sync.yaml) applies clusters/<cluster> with no post-build step.
    cluster = state.name
    root = settings.repo / "clusters" / cluster
    root_applier = f"Kustomization flux-system/{BOOTSTRAP_SOURCE}"
    root_build = _build(settings, index, sandbox, root, {}, f"clusters/{cluster}", root_applier, "(root)")
    root_objects = root_build.objects()
    state.findings.extend(root_build.findings)
    if root_objects is None:
        return
    for obj in root_objects:
        state.resources.append(Resource(obj, index.file_of(obj, f"clusters/{cluster}"), root_applier))

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        def start(found: list[Resource]) -> list[Resource]:
            for ks in found:
                builds[id(ks)] = _start_kustomization(settings, index, ks, sandbox, pool)
            return found

        builds: dict[int, _Build] = {}
        pending = start([r for r in state.resources if _is_kustomization(r.obj)])
        applied: set[str] = set()
        while pending:
            ready = [k for k in pending if all(dep in applied for dep in _depends_on(k.obj))]
            if not ready:
                for k in pending:
                    missing = [d for d in _depends_on(k.obj) if d not in applied]
                    state.findings.append(Finding(ERROR, k.source_file, k.ref, "spec.dependsOn",
                                                  f"depends on {', '.join(missing)}, which no Kustomization here "
                                                  "provides (or the chain is circular)", "dependsOn"))
                break
            for ks in ready:
                pending.remove(ks)
                applied.add(f"{ks.namespace or 'flux-system'}/{ks.name}")
                new = _apply_kustomization(index, state, ks, builds[id(ks)])
                pending.extend(start([r for r in new if _is_kustomization(r.obj)]))


def _build(settings: Settings, index: SourceIndex, sandbox: containment.Sandbox, path: Path,
           spec: dict[str, Any], file: str, applier: str, where: str, pool: ThreadPoolExecutor | None = None
           ) -> _Build:
    """kustomize build of a repository folder, on the sandbox, once every read it would do is checked."""
    checked = containment.check_build(settings.repo, path, applier, spec, file)
    build = _Build(list(checked.findings), settings.rel(path), None, file, applier, where, str(sandbox.root))
    # Without a kustomization file, the build reads every YAML file below the path (a generated one).
    generated = containment.kustomization_file(path) is None
    read = sorted(checked.files) + ([settings.rel(p) for p in path.rglob("*.y*ml")] if generated else [])
    known = len(index.yaml_errors)
    index.ensure_indexed(read)
    build.findings.extend(index.yaml_errors[known:])
    broken = sorted(f.file for f in index.yaml_errors
                    if f.file in checked.files or generated and f.file.startswith(build.rel_path.rstrip("/") + "/"))
    if broken:
        build.findings.append(Finding(ERROR, file, applier, where, f"not built: it reads {', '.join(broken)}, "
                                      "which is refused above", "build"))
    if checked.findings or broken:
        return build
    folder = sandbox.add(checked, path)
    if pool is None:
        build.run = lambda: kustomize_build(folder, spec)
    else:
        build.run = pool.submit(kustomize_build, folder, spec).result
    return build


def _is_kustomization(obj: dict[str, Any]) -> bool:
    return obj.get("kind") == "Kustomization" and str(obj.get("apiVersion", "")).startswith(KUSTOMIZATION_API)


def _depends_on(obj: dict[str, Any]) -> list[str]:
    namespace = (obj.get("metadata") or {}).get("namespace") or "flux-system"
    return [f"{d.get('namespace') or namespace}/{d['name']}" for d in (obj.get("spec") or {}).get("dependsOn") or []]


def _start_kustomization(settings: Settings, index: SourceIndex, ks: Resource, sandbox: containment.Sandbox,
                         pool: ThreadPoolExecutor) -> _Build:
    spec = ks.obj.get("spec") or {}
    source = spec.get("sourceRef") or {}
    if source.get("kind") != "GitRepository" or source.get("name") != BOOTSTRAP_SOURCE:
        return _Build([Finding(WARNING, ks.source_file, ks.ref, "spec.sourceRef",
                               f"source {source.get('kind')}/{source.get('name')} is not this repository; "
                               "its objects are not rendered", "render")])
    raw_path = str(spec.get("path") or "./")
    path = (settings.repo / raw_path).resolve()
    if not path.is_dir() or settings.repo.resolve() not in (path, *path.parents):
        return _Build([Finding(ERROR, ks.source_file, ks.ref, "spec.path",
                               f"path {raw_path!r} is not a folder of this repository", "build")])
    return _build(settings, index, sandbox, path, spec, ks.source_file, ks.ref, "spec.path", pool)


def _apply_kustomization(index: SourceIndex, state: ClusterState, ks: Resource, build: _Build) -> list[Resource]:
    objects = build.objects()
    state.findings.extend(build.findings)
    if objects is None:
        return []
    spec = ks.obj.get("spec") or {}
    rel_path = build.rel_path
    post_build = spec.get("postBuild") or {}
    variables = postbuild.collect_variables(state, ks, post_build) if post_build else {}
    # Without any variable, kustomize-controller substitutes nothing unless substituteStrategy is Always.
    if variables or post_build.get("substituteStrategy") == "Always":
        objects, findings = postbuild.substitute(objects, variables, lambda o: index.file_of(o, rel_path))
        state.findings.extend(findings)
        state.variables.update(variables)

    applier = f"Kustomization {ks.namespace or 'flux-system'}/{ks.name}"
    added = [Resource(obj, index.file_of(obj, rel_path), applier) for obj in objects]
    state.resources.extend(added)
    return added
