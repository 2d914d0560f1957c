"""kustomize-controller's reconciliation of a cluster: from the bootstrap Kustomization (clusters/<cluster>), each Flux
Kustomization built and post-built in dependsOn order, as Flux applies them."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_gitops.kustomize_controller import postbuild
from airflow_gitops.kustomize_controller.api import Kustomization
from airflow_gitops.kustomize_controller.build import build as kustomize_build
from airflow_gitops.model import (
    ERROR,
    WARNING,
    ClusterState,
    Finding,
    RenderError,
    Resource,
    envelope_problems,
    object_ref,
)
from airflow_gitops.settings import Settings
from airflow_gitops.source import containment
from airflow_gitops.source.api import source_references
from airflow_gitops.source.provenance import SourceIndex

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
    # The kustomize run in its worker thread, when there is one.
    future: Future | None = None

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
                           sandbox: containment.Sandbox,
                           on_early_build: Callable[[ClusterState, list[Resource]], None] | None = None) -> None:
    """Every Flux Kustomization of the cluster applied to `state` in dependsOn order. `on_early_build`, when given,
    is told of each Kustomization whose build is done while one it depends on is still building: it gets a scratch
    copy of the state with that Kustomization applied out of order (so helm-controller can start rendering). The
    scratch state is a guess; `state` itself only ever takes the dependsOn order."""
    # The bootstrap Kustomization (gotk-sync.yaml) applies clusters/<cluster> with no post-build step.
    cluster = state.name
    root = settings.repo / "clusters" / cluster
    root_applier = f"Kustomization flux-system/{BOOTSTRAP_SOURCE}"
    root_build = _build(settings, index, sandbox, cluster, root, {}, f"clusters/{cluster}", root_applier, "(root)")
    root_objects = root_build.objects()
    state.findings.extend(root_build.findings)
    if root_objects is None:
        return
    for obj in root_objects:
        state.resources.append(Resource(obj, index.file_of(obj, f"clusters/{cluster}"), root_applier))

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        def start(found: list[Resource]) -> list[Kustomization]:
            kustomizations = [Kustomization.parse(r) for r in found if Kustomization.is_kustomization(r)]
            for ks in kustomizations:
                builds[id(ks)] = _start_kustomization(settings, index, cluster, ks, sandbox, pool)
            return kustomizations

        builds: dict[int, _Build] = {}
        pending = start(state.resources)
        applied: set[str] = set()
        told: set[int] = set()
        while pending:
            ready = [k for k in pending if all(dep in applied for dep in k.depends_on)]
            if not ready:
                for k in pending:
                    missing = [d for d in k.depends_on if d not in applied]
                    state.findings.append(Finding(ERROR, k.resource.source_file, k.resource.ref, "spec.dependsOn",
                                                  f"depends on {', '.join(missing)}, which no Kustomization here "
                                                  "provides (or the chain is circular)", "dependsOn"))
                break
            for ks in ready:
                pending.remove(ks)
                applied.add(ks.id)
                if on_early_build is not None:
                    _tell_early_builds(index, state, builds[id(ks)], pending, builds, told, on_early_build)
                pending.extend(start(_apply_kustomization(index, state, ks, builds[id(ks)])))


def _build(settings: Settings, index: SourceIndex, sandbox: containment.Sandbox, cluster: str, path: Path,
           spec: dict[str, Any], file: str, applier: str, where: str, pool: ThreadPoolExecutor | None = None
           ) -> _Build:
    """kustomize build of a repository folder, on the sandbox, once every read it would do is checked."""
    checked = containment.check_build(settings.repo, path, applier, spec, file, index.artifact(cluster))
    build = _Build(list(checked.findings), settings.rel(path), None, file, applier, where, str(sandbox.root))
    # Without a kustomization file, the build reads every YAML file below the path (a generated one).
    generated = containment.kustomization_file(path) is None
    read = sorted(checked.files) + (checked.generated if generated else [])
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
        build.future = pool.submit(kustomize_build, folder, spec)
        build.run = build.future.result
    return build


def _tell_early_builds(index: SourceIndex, state: ClusterState, next_build: _Build, pending: list[Kustomization],
                       builds: dict[int, _Build], told: set[int],
                       on_early_build: Callable[[ClusterState, list[Resource]], None]) -> None:
    """While `next_build` (applied next) still runs, each pending Kustomization whose build finishes is applied to a
    scratch copy of the state and handed to `on_early_build`, once."""
    waiting = {builds[id(ks)].future: ks for ks in pending
               if id(ks) not in told and builds[id(ks)].future is not None}
    while waiting and next_build.future is not None and not next_build.future.done():
        done, _ = wait([next_build.future, *waiting], return_when=FIRST_COMPLETED)  # type: ignore[list-item]  # no None
        for future in [f for f in done if f in waiting]:
            ks = waiting.pop(future)
            told.add(id(ks))
            if future.exception() is None:
                scratch = ClusterState(state.name, list(state.resources), variables=dict(state.variables))
                build = builds[id(ks)]
                added = _apply_kustomization(index, scratch, ks, build, copy.deepcopy(future.result()))
                on_early_build(scratch, added)


def _start_kustomization(settings: Settings, index: SourceIndex, cluster: str, ks: Kustomization,
                         sandbox: containment.Sandbox,
                         pool: ThreadPoolExecutor) -> _Build:
    file, ref = ks.resource.source_file, ks.resource.ref
    # Only the cluster's own repository is this folder. The reference is resolved as Flux resolves it (its namespace
    # defaults to the Kustomization's), so `GitRepository/flux-system` named from another namespace, or one of the same
    # name elsewhere, is another source: its objects are not rendered from here, and checks/sources.py judges it.
    source = source_references(ks.resource)[0]
    if not source.is_bootstrap:
        return _Build([Finding(WARNING, file, ref, "spec.sourceRef",
                               f"source {source} is not this repository; its objects are not rendered", "render")])
    path = (settings.repo / ks.path).resolve()
    if not path.is_dir() or settings.repo.resolve() not in (path, *path.parents):
        return _Build([Finding(ERROR, file, ref, "spec.path",
                               f"path {ks.path!r} is not a folder of this repository", "build")])
    return _build(settings, index, sandbox, cluster, path, ks.spec, file, ref, "spec.path", pool)


def _with_envelope(objects: list[Any], ks: Kustomization, state: ClusterState, file_of) -> list[dict[str, Any]]:
    """The objects of a build that have a Kubernetes envelope (model.envelope_problems); each other one is a schema
    finding and is not applied (the API server could not decode it: kustomize-controller fails on it)."""
    kept = []
    for obj in objects:
        problems = envelope_problems(obj)
        if not problems:
            kept.append(obj)
            continue
        where = file_of(obj) if isinstance(obj, dict) else ks.resource.source_file
        ref = object_ref(obj) if isinstance(obj, dict) else f"an object built by {ks.applier}"
        state.findings += [Finding(ERROR, where, ref, field, f"{why}; {ks.applier} would fail to apply it", "schema")
                           for field, why in problems]
    return kept


def _apply_kustomization(index: SourceIndex, state: ClusterState, ks: Kustomization, build: _Build,
                         objects: list[dict[str, Any]] | None = None) -> list[Resource]:
    objects = build.objects() if objects is None else objects
    state.findings.extend(build.findings)
    if objects is None:
        return []
    rel_path = build.rel_path
    objects = _with_envelope(objects, ks, state, lambda o: index.file_of(o, rel_path))
    variables = postbuild.collect_variables(state, ks) if ks.post_build else {}
    # Without any variable, kustomize-controller substitutes nothing unless substituteStrategy is Always.
    if variables or (ks.post_build and ks.post_build.strategy == "Always"):
        objects, findings = postbuild.substitute(objects, variables, lambda o: index.file_of(o, rel_path))
        state.findings.extend(findings)
        state.variables.update(variables)
    postbuild.apply_common_metadata(objects, ks.common_metadata)

    added = [Resource(obj, index.file_of(obj, rel_path), ks.applier) for obj in objects]
    state.resources.extend(added)
    return added
