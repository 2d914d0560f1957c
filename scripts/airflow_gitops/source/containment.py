"""The tool reads only the repository and writes only its output, whatever a pull request puts in it.

kustomize runs with load restrictions off, as kustomize-controller does; Flux is contained because it builds
inside the repository's artifact, where nothing else exists. The tool builds on the host, so it does both:
every path-bearing field of every kustomization a build reaches is checked first (the field list follows
sigs.k8s.io/kustomize api/types/kustomization.go), and the build then runs on a sandbox that holds copies of
exactly the files that passed. The check is what refuses `../../etc/passwd`, absolute paths, symlinks leading
out and remote URLs (offline, and never fetched); the sandbox is the second wall: a file read through a
field the list misses (a future kustomize field) is simply absent there. A sandbox of only the checked files
also costs a few milliseconds, where a copy of the whole repository cost ~100 ms a cluster.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from airflow_gitops.model import ERROR, Finding, RenderError
from airflow_gitops.source import bounds
from airflow_gitops.source.artifact import Artifact

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
# Not searched for symlinks: tooling, not desired state.
SKIPPED_FOLDERS = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", "node_modules"}
REMOTE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*://|git::|git@|[A-Za-z0-9.-]+\.(?:com|org|io|net)/)")
# Fields of a kustomization whose entries are paths to files or folders (folders are kustomizations too).
PATH_LISTS = ("resources", "bases", "components", "crds", "configurations", "generators", "transformers",
              "validators", "patchesStrategicMerge")
# Entries that may be inline YAML instead of a path (kustomize tries the file first).
MAY_BE_INLINE = ("generators", "transformers", "validators", "patchesStrategicMerge")
# kustomize-controller never inflates Helm charts from a kustomization (no --enable-helm); nor does the tool.
REFUSED_FIELDS = ("helmCharts", "helmChartInflationGenerator", "helmGlobals")
CLUSTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def kustomization_file(directory: Path) -> Path | None:
    return next((directory / name for name in KUSTOMIZATION_FILES if (directory / name).is_file()), None)


class Checker:
    """Walks the kustomizations a build reaches and refuses every read outside the repository."""

    def __init__(self, repo: Path, applier: str, artifact: Artifact | None = None):
        self.root = repo.resolve()
        self.applier = applier
        # What Flux's artifact holds: a path it leaves out is refused, as kustomize-controller would not find it.
        self.artifact = artifact if artifact is not None else Artifact(self.root)
        self.findings: list[Finding] = []
        # Repository paths the build reads: kustomizations, and the files and folders they name.
        self.files: set[str] = set()
        # The YAML files of a folder without a kustomization file, which Flux generates one over (artifact only).
        self.generated: list[str] = []
        self._seen: set[Path] = set()

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def inside(self, path: Path) -> bool:
        return path == self.root or self.root in path.parents

    def refuse(self, file: str, where: str, message: str) -> None:
        self.findings.append(Finding(ERROR, file, self.applier, where, message, "containment"))

    def target(self, base: Path, entry: Any, file: str, where: str) -> Path | None:
        """The repository path an entry names, or None after a finding. Never follows a link out."""
        if not isinstance(entry, str) or not entry or "\0" in entry:
            self.refuse(file, where, f"must be a path (a non-empty string); got {type(entry).__name__}")
            return None
        text = entry
        if REMOTE.match(text) and not _exists(base / text):
            self.refuse(file, where, f"remote {text!r} refused: builds read only this repository, offline")
            return None
        if os.path.isabs(text):
            self.refuse(file, where, f"absolute path {text!r} refused: builds read only this repository")
            return None
        lexical = Path(os.path.normpath(base / text))
        if not self.inside(lexical):
            self.refuse(file, where, f"{text!r} is outside the repository: refused")
            return None
        # kustomize joins paths lexically (Go's filepath.Join), the OS follows each symlink before a `..`:
        # both readings must stay inside.
        try:
            resolved = (base / text).resolve()
            exists = resolved.exists()
        except OSError as error:  # a name too long for the file system, a loop of links
            self.refuse(file, where, f"{text[:80]!r} is not a file or folder of this repository ({error.strerror})")
            return None
        if not self.inside(resolved):
            link = next((p for p in (lexical, *lexical.parents) if p.is_symlink()), lexical)
            self.refuse(file, where, f"{text!r} goes through the symlink {self.rel(link)}, which leads outside "
                                     "the repository: refused")
            return None
        if not exists:
            self.refuse(file, where, f"{text!r} is not a file or folder of this repository "
                                     "(kustomize would try it as a remote URL)")
            return None
        if not self.in_artifact(lexical, file, where, repr(text)):
            return None
        # Both spellings: kustomize opens the path as written, which may be a link inside the repository.
        self.files.update((self.rel(lexical), self.rel(resolved)))
        return resolved

    def in_artifact(self, path: Path, file: str, where: str, shown: str) -> bool:
        """Whether `path` is in Flux's artifact; a finding when it is not."""
        reason = self.artifact.excluded(self.rel(path))
        if reason is not None:
            self.refuse(file, where, f"{shown} is not in Flux's artifact ({reason}): kustomize-controller would not "
                                     "find it, and the tool does not read it")
        return reason is None

    def directory(self, directory: Path) -> None:
        """A folder kustomize builds: its kustomization file, if any, and everything that one reaches."""
        directory = directory.resolve()
        if directory in self._seen:
            return
        self._seen.add(directory)
        kfile = kustomization_file(directory)
        if kfile is None:
            return
        file = self.rel(kfile)
        if not self.inside(kfile.resolve()):
            self.refuse(file, "(file)", "the kustomization is a symlink leading outside the repository: refused")
            return
        if not self.in_artifact(kfile, file, "(file)", "the kustomization"):
            return
        self.files.add(file)
        try:
            docs = bounds.load_file(kfile, file)
        except yaml.YAMLError as error:
            self.refuse(file, "(YAML)", f"cannot be read: {_yaml_problem(error)}")
            return
        for doc in docs:
            if isinstance(doc, dict):
                self.kustomization(directory, file, doc)

    def kustomization(self, base: Path, file: str, doc: dict[str, Any]) -> None:
        for key in REFUSED_FIELDS:
            if doc.get(key):
                self.refuse(file, key, "Helm chart inflation in a kustomization is refused (kustomize-controller "
                                       "does not run it): use a HelmRelease")
        for key in PATH_LISTS:
            for position, entry in enumerate(_as_list(doc.get(key))):
                if key in MAY_BE_INLINE and (not isinstance(entry, str) or "\n" in entry):
                    self.inline_plugin(base, file, f"{key}[{position}]", entry)
                    continue
                self.entry(base, file, f"{key}[{position}]", entry, plugin_config=key in MAY_BE_INLINE[:3])
        self.file_fields(base, file, doc, "")

    def file_fields(self, base: Path, file: str, doc: dict[str, Any], prefix: str) -> None:
        """The fields that name single files: patches, generators, openapi, replacements."""
        for key in ("patches", "patchesJson6902", "replacements"):
            for position, item in enumerate(_as_list(doc.get(key))):
                if isinstance(item, dict) and item.get("path") is not None:
                    self.entry(base, file, f"{prefix}{key}[{position}].path", item["path"])
        for key in ("configMapGenerator", "secretGenerator"):
            for position, generator in enumerate(_as_list(doc.get(key))):
                if isinstance(generator, dict):
                    self.generator_sources(base, file, generator, f"{prefix}{key}[{position}].")
        openapi = doc.get("openapi")
        if isinstance(openapi, dict) and openapi.get("path") is not None:
            self.entry(base, file, f"{prefix}openapi.path", openapi["path"])

    def generator_sources(self, base: Path, file: str, args: dict[str, Any], prefix: str) -> None:
        """`files` (`key=path` or `path`), `envs` and the deprecated `env` of a ConfigMap/Secret generator."""
        for key in ("files", "envs", "env"):
            value = args.get(key)
            for position, entry in enumerate(_as_list(value)):
                source = str(entry).split("=", 1)[-1] if key == "files" else entry
                self.entry(base, file, f"{prefix}{key}" + (f"[{position}]" if isinstance(value, list) else ""),
                           source)

    def plugin_config(self, base: Path, file: str, doc: dict[str, Any], prefix: str) -> None:
        """A builtin generator/transformer config (ConfigMapGenerator, PatchTransformer,
        PatchStrategicMergeTransformer, ReplacementTransformer, ...) names files at its top level too."""
        self.file_fields(base, file, doc, prefix)
        self.generator_sources(base, file, doc, prefix)
        for key in ("path", "paths"):
            value = doc.get(key)
            for position, entry in enumerate(_as_list(value)):
                self.entry(base, file, f"{prefix}{key}" + (f"[{position}]" if isinstance(value, list) else ""),
                           entry)

    def entry(self, base: Path, file: str, where: str, entry: Any, plugin_config: bool = False) -> None:
        path = self.target(base, entry, file, where)
        if path is None:
            return
        if path.is_dir():
            self.directory(path)
        elif plugin_config:
            self.plugin_file(path)

    def plugin_file(self, path: Path) -> None:
        file = self.rel(path)
        try:
            docs = bounds.load_file(path, file)
        except yaml.YAMLError as error:
            self.refuse(file, "(YAML)", f"cannot be read: {_yaml_problem(error)}")
            return
        for doc in docs:
            if isinstance(doc, dict):
                self.plugin_config(path.parent, file, doc, "")

    def inline_plugin(self, base: Path, file: str, where: str, entry: Any) -> None:
        try:
            docs = bounds.load_yaml_all(entry, f"{file}: {where}") if isinstance(entry, str) else [entry]
        except yaml.YAMLError as error:
            self.refuse(file, where, f"inline config cannot be read: {_yaml_problem(error)}")
            return
        for doc in docs:
            if isinstance(doc, dict):
                self.plugin_config(base, file, doc, f"{where}.")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _yaml_problem(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    return f"line {mark.line + 1}: {problem}" if mark else problem


def check_build(repo: Path, directory: Path, applier: str, spec: dict[str, Any] | None = None,
                file: str = "", artifact: Artifact | None = None) -> Checker:
    """Everything a build of `directory` (with a Flux Kustomization's spec) would read, checked."""
    checker = Checker(repo, applier, artifact)
    spec = spec or {}
    if not checker.in_artifact(directory, file, "spec.path", repr(checker.rel(directory))):
        return checker
    for position, component in enumerate(_as_list(spec.get("components"))):
        if spec.get("ignoreMissingComponents") is True and not (directory / str(component)).exists():
            continue  # fluxcd/pkg kustomize GenerateManifest leaves it out
        checker.entry(directory, file, f"spec.components[{position}]", component)
    for position, patch in enumerate(_as_list(spec.get("patches"))):
        extra = sorted(set(patch) - {"patch", "target"}) if isinstance(patch, dict) else []
        if extra:
            checker.refuse(file, f"spec.patches[{position}]", f"unknown field(s) {', '.join(extra)}: a Flux patch "
                                                               "has only `patch` and `target` (inline)")
    if kustomization_file(directory) is not None:
        checker.directory(directory)
    else:
        # Flux generates a kustomization over what its artifact holds below the path: what it leaves out is
        # simply not there (no finding), and not read here either.
        for path in sorted(directory.rglob("*")):
            if checker.artifact.excluded(checker.rel(path)) is not None:
                continue
            if path.is_dir() and kustomization_file(path) is not None:
                checker.directory(path)
            elif path.suffix in (".yaml", ".yml") and path.is_file():
                checker.generated.append(checker.rel(path))
    return checker


def outside_symlinks(repo: Path, folders: tuple[str, ...]) -> list[Finding]:
    """Every symlink below the folders the tool reads that leads outside the repository (or nowhere): refused,
    never followed. Elsewhere (local venvs, tool caches) links are none of the tool's business: a kustomization
    that names a file there is checked by `Checker` itself."""
    root = repo.resolve()
    findings = []

    def links() -> Iterator[Path]:
        for folder in folders:
            top = root / folder
            if top.is_symlink():
                yield top
                continue
            for directory, dirs, files in os.walk(top):
                dirs[:] = [d for d in dirs if d not in SKIPPED_FOLDERS]
                yield from (Path(directory, name) for name in [*dirs, *files] if Path(directory, name).is_symlink())

    for path in links():
        target = path.resolve()
        if target != root and root not in target.parents:
            findings.append(Finding(ERROR, str(path.relative_to(root)), "(symlink)", "(file)",
                                    f"symlink to {os.readlink(path)!r} leads outside the repository: refused, "
                                    "not followed", "containment"))
    return findings


class Sandbox:
    """What kustomize builds from, as kustomize-controller builds from the repository's artifact: a temporary
    folder that holds only the files the containment check passed (hard links or copies; a symlink only for
    a link inside the repository, pointing inside the sandbox). A read through a field the check does not
    know finds nothing there, instead of the host's file."""

    def __init__(self, repo: Path):
        self.repo = repo.resolve()
        # Removed when the sandbox is garbage-collected, or at exit.
        self._tmp = tempfile.TemporaryDirectory(prefix="airflow-gitops-sandbox-")
        self.root = Path(self._tmp.name) / "repo"
        self.root.mkdir()

    def add(self, checked: Checker, build_path: Path) -> Path:
        """Copies what a checked build reads (the YAML files Flux's artifact holds below its folder when it has no
        kustomization file, as Flux then generates one over them); returns the build's folder in the sandbox."""
        paths = [self.repo / file for file in (*checked.files, *checked.generated)]
        for path in sorted(paths):
            resolved = path.resolve()
            if not (resolved == self.repo or self.repo in resolved.parents):
                continue
            target = self.root / path.relative_to(self.repo)
            if path.is_symlink() and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(os.path.relpath(self.root / resolved.relative_to(self.repo), target.parent), target)
            elif resolved.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            elif resolved.is_file() and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    # A hard link is the file itself, read-only to kustomize, at 1/30 of a copy's cost.
                    os.link(resolved, target)
                except OSError:  # another filesystem, or fs.protected_hardlinks
                    shutil.copyfile(resolved, target)
        folder = self.root / build_path.relative_to(self.repo)
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def output_path(out: Path, kind: str, namespace: str, name: str) -> Path:
    """`<out>/<kind>/<namespace>--<name>.yaml` for any object name: only [A-Za-z0-9._-] survive, and the
    result must lie inside `out`."""
    def clean(part: str) -> str:
        part = re.sub(r"[^A-Za-z0-9._-]", "_", part).lstrip(".") or "_"
        return part[:200]

    target = out / clean(kind or "_") / f"{clean(namespace)}--{clean(name)}.yaml"
    if out.resolve() not in target.resolve().parents:
        raise RenderError(f"refused to write {target}: outside the output folder {out}")
    return target


def check_cluster_name(name: str, known: list[str], allow_all: bool = False) -> None:
    if allow_all and name == "all":
        return
    if not CLUSTER_NAME.match(name) or name not in known:
        raise RenderError(f"{name!r} is not a cluster: give the name of a folder under clusters/ "
                          f"({', '.join(known) or 'none'}){' or all' if allow_all else ''}")


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a name too long for the file system
        return False
