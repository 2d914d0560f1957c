"""Which repository file an applied object comes from, so that every finding can name it."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from airflow_gitops.model import ERROR, Finding, mapping
from airflow_gitops.policy_config import PolicyConfig
from airflow_gitops.source import bounds, containment
from airflow_gitops.source.artifact import Artifact

MANIFEST_ROOTS = ("clusters", "infrastructure", "apps")
VALUES_ROOTS = ("charts-values",)
# kustomize's generator suffix: "-" and ten characters of the hash alphabet.
HASH_SUFFIX = re.compile(r"-[bcdfghkmt2-9]{10}$")


class SourceIndex:
    """The repository as one run reads it: every YAML file once, and the policy configuration, parsed once (pass
    `policies` when the caller parsed it already, as `validate all` does for all its clusters)."""

    def __init__(self, repo: Path, policies: PolicyConfig | None = None):
        self.repo = repo
        self.policies = policies if policies is not None else PolicyConfig.load(repo)
        self._by_name: dict[tuple[str, str], list[str]] = defaultdict(list)
        # ConfigMap generator name -> (kustomization file, files it reads, as repo paths)
        self.generators: dict[str, list[tuple[str, list[str]]]] = defaultdict(list)
        self._indexed: set[str] = set()
        self._sandbox: containment.Sandbox | None = None
        self._artifacts: dict[str, Artifact] = {}
        # Files refused before anything reads them: broken or over-bound YAML, and symlinks leading outside.
        self.yaml_errors: list[Finding] = containment.outside_symlinks(repo, (*MANIFEST_ROOTS, *VALUES_ROOTS))
        for root in (*MANIFEST_ROOTS, *VALUES_ROOTS):
            for file in sorted((repo / root).rglob("*")):
                # A symlink leading outside is reported by containment.outside_symlinks, and never read.
                if file.suffix in (".yaml", ".yml") and file.is_file() and self._inside(file):
                    self._index(file)

    def artifact(self, cluster: str) -> Artifact:
        """What Flux's artifact of this repository holds for `cluster`: the .sourceignore rules and source-controller's
        defaults, with the spec.ignore of the cluster's GitRepository flux-system when bootstrap wrote it."""
        if cluster not in self._artifacts:
            self._artifacts[cluster] = Artifact(self.repo, *self._bootstrap_ignore(cluster))
        return self._artifacts[cluster]

    def _bootstrap_ignore(self, cluster: str) -> tuple[str | None, str]:
        rel = f"clusters/{cluster}/flux-system/gotk-sync.yaml"
        try:
            docs = bounds.load_file(self.repo / rel, rel)
        except (OSError, yaml.YAMLError):
            return None, ""
        for doc in docs:
            meta = doc.get("metadata") if isinstance(doc, dict) else None
            if doc.get("kind") == "GitRepository" and isinstance(meta, dict) and meta.get("name") == "flux-system":
                ignore = (doc.get("spec") or {}).get("ignore") if isinstance(doc.get("spec"), dict) else None
                return (ignore if isinstance(ignore, str) else None), f"{rel}: GitRepository flux-system spec.ignore"
        return None, ""

    def sandbox(self) -> containment.Sandbox:
        """One sandbox per index: the clusters of one `validate all` share the files they build from. It is
        removed with the index (or at exit)."""
        if self._sandbox is None:
            self._sandbox = containment.Sandbox(self.repo)
        return self._sandbox

    def ensure_indexed(self, rel_paths) -> None:
        """Files a build reads outside the usual folders get the same bounded read first (kustomize would
        otherwise be the first to parse them, and it expands an alias bomb)."""
        for rel in rel_paths:
            file = self.repo / rel
            if rel not in self._indexed and file.suffix in (".yaml", ".yml") and file.is_file() \
                    and self._inside(file):
                self._index(file)

    def _inside(self, file: Path) -> bool:
        root = self.repo.resolve()
        return root in file.resolve().parents

    def _index(self, file: Path) -> None:
        rel = str(file.relative_to(self.repo))
        self._indexed.add(rel)
        try:
            docs = bounds.load_file(file, rel)
        except bounds.YamlBoundError as error:
            self.yaml_errors.append(Finding(ERROR, rel, "(YAML)", "(file)", str(error).removeprefix(f"{rel}: "),
                                            "yaml"))
            return
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
            problem = getattr(error, "problem", None) or str(error)
            self.yaml_errors.append(Finding(ERROR, rel, "(YAML)", where, f"broken YAML: {problem}", "yaml"))
            return
        if rel.startswith(VALUES_ROOTS):
            return
        for doc in docs:
            if not isinstance(doc, dict):
                continue
            if file.name.startswith("kustomization."):
                self._index_generators(file, rel, doc)
                continue
            name = mapping(doc.get("metadata")).get("name")
            if doc.get("kind") and name:
                self._by_name[(str(doc["kind"]), str(name))].append(rel)

    def _index_generators(self, file: Path, rel: str, doc: dict[str, Any]) -> None:
        generators = [g for key in ("configMapGenerator", "secretGenerator") for g in doc.get(key) or []
                      if isinstance(doc.get(key), list) and isinstance(g, dict)]
        for generator in generators:
            inputs = []
            files = generator.get("files")
            for entry in files if isinstance(files, list) else []:
                source = str(entry).split("=", 1)[-1]
                try:
                    inputs.append(str((file.parent / source).resolve().relative_to(self.repo.resolve())))
                except (ValueError, OSError):
                    continue  # outside the repository: refused by the containment check of the build
            self.generators[str(generator.get("name"))].append((rel, inputs))

    def file_of(self, obj: dict[str, Any], under: str | None = None) -> str:
        kind = str(obj.get("kind", ""))
        name = str(mapping(obj.get("metadata")).get("name", ""))
        candidates = self._by_name.get((kind, name), [])
        if not candidates:
            generated = self.generators.get(HASH_SUFFIX.sub("", name), [])
            candidates = [kustomization for kustomization, _ in generated]
        if not candidates:
            return under or "?"
        return _prefer_under(candidates, under, key=lambda file: file)[0]

    def generator_inputs(self, configmap_name: str, under: str | None = None) -> list[str]:
        generated = self.generators.get(HASH_SUFFIX.sub("", configmap_name), [])
        return _prefer_under(generated, under, key=lambda entry: entry[0])[0][1] if generated else []


def _prefer_under(items: list, under: str | None, key) -> list:
    """Items whose file is below `under` (the Kustomization's path) first: a base and an overlay may both match."""
    if not under:
        return items
    prefix = under.rstrip("/") + "/"
    return [i for i in items if key(i).startswith(prefix)] or items
