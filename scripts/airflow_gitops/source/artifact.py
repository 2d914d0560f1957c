"""What Flux's artifact of this repository holds, so the tool reads nothing Flux would not (issue 16, class 5).

source-controller does not hand kustomize-controller the Git checkout: it archives it, and the archive is what Flux
builds from. Read from fluxcd/source-controller internal/controller/gitrepository_controller.go (archiveArtifact)
and fluxcd/pkg at e2cfd1a (2026-07): artifact/storage/archive.go (SourceIgnoreFilter, Storage.Archive) and sourceignore/
(sourceignore.go, gitignore/pattern.go, gitignore/matcher.go, a copy of go-git's plumbing/format/gitignore):

- `.sourceignore` files are read in every folder (LoadIgnorePatterns, depth first, `.git` skipped), each pattern
  scoped to its folder; the GitRepository's `spec.ignore` is appended after them, scoped to the root.
- If there is no pattern at all, the default matcher applies: ExcludeVCS (`.git/`, `.gitignore`, `.gitmodules`,
  `.gitattributes`), then ExcludeExt (images, archives), ExcludeCI (`.github/`, other CI files) and ExcludeExtra
  (`.goreleaser.yml`, `.sops.yaml`, `.flux.yaml` anywhere). If there is any, only ExcludeVCS and the patterns.
- The last pattern that matches decides (`!` includes again). Every path is matched on its own, all its components:
  a folder that matches does not stop the walk, and a pattern without a slash matches any component.
- Only regular files and folders are archived: a symlink is not in the artifact (Archive: `!(m.IsRegular() ||
  m.IsDir())`).

Two choices of the tool, stricter than Flux: `.git/` is never in the artifact, even if a pattern includes it again
(the tool must never read a checkout's Git metadata); and `.sourceignore` files are not searched for in local tool
folders that are never committed (`.venv`, `node_modules`, caches: containment.SKIPPED_FOLDERS), which keeps this at a
few milliseconds."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

IGNORE_FILE = ".sourceignore"
EXCLUDE_VCS = ".git/,.gitignore,.gitmodules,.gitattributes"
EXCLUDE_EXT = "*.jpg,*.jpeg,*.gif,*.png,*.wmv,*.flv,*.tar.gz,*.zip"
EXCLUDE_CI = (".github/,.circleci/,.travis.yml,.gitlab-ci.yml,appveyor.yml,.drone.yml,cloudbuild.yaml,"
              "codeship-services.yml,codeship-steps.yml")
EXCLUDE_EXTRA = "**/.goreleaser.yml,**/.sops.yaml,**/.flux.yaml"
NEVER_IN_ARTIFACT = ".git"
# Local folders that are never committed (a checkout has none of them): not searched for .sourceignore files.
UNCOMMITTED_FOLDERS = {".git", ".venv", ".venv-checkov", ".tools", "__pycache__", ".pytest_cache", ".ruff_cache",
                       ".mypy_cache", "node_modules"}

NO_MATCH, EXCLUDE, INCLUDE = 0, 1, 2


@lru_cache(maxsize=4096)
def go_match(pattern: str, name: str) -> bool:
    """Go's path/filepath.Match(pattern, name) on one path component; a malformed pattern matches nothing (go-git
    turns its ErrBadPattern into no match)."""
    regex = _go_pattern(pattern)
    return regex is not None and regex.fullmatch(name) is not None


@lru_cache(maxsize=1024)
def _go_pattern(pattern: str) -> re.Pattern[str] | None:
    """filepath.Match's syntax as a regular expression: `*` and `?` (never a separator), `[^a-z]` classes with `\\`
    escapes, `\\c`; None when Go would report ErrBadPattern."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            i += 1
            if i >= n:
                return None
            out.append(re.escape(pattern[i]))
        elif c == "[":
            i += 1
            negate = i < n and pattern[i] == "^"
            if negate:
                i += 1
            ranges: list[str] = []
            while True:
                if i < n and pattern[i] == "]" and ranges:
                    break
                lo, i = _class_char(pattern, i)
                if lo is None:
                    return None
                hi = lo
                if i < n and pattern[i] == "-":
                    upper, i = _class_char(pattern, i + 1)
                    if upper is None:
                        return None
                    hi = upper
                ranges.append(f"{re.escape(lo)}-{re.escape(hi)}" if lo != hi else re.escape(lo))
            out.append(f"[{'^' if negate else ''}{''.join(ranges)}]" if not negate else
                       f"[^/{''.join(ranges)}]")
        else:
            out.append(re.escape(c))
        i += 1
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error:
        return None


def _class_char(pattern: str, i: int) -> tuple[str | None, int]:
    """One character of a class (filepath.getEsc): `-` and `]` must be escaped, and the pattern must go on."""
    if i >= len(pattern) or pattern[i] in "-]":
        return None, i
    if pattern[i] == "\\":
        i += 1
        if i >= len(pattern):
            return None, i
    return pattern[i], i + 1


@dataclass(frozen=True)
class Pattern:
    """One gitignore pattern (go-git ParsePattern), scoped to `domain` (the folder of its .sourceignore)."""

    text: str
    domain: tuple[str, ...]
    parts: tuple[str, ...]
    inclusion: bool
    dir_only: bool
    is_glob: bool
    origin: str

    @classmethod
    def parse(cls, text: str, domain: tuple[str, ...], origin: str) -> Pattern:
        p, inclusion = text, text.startswith("!")
        if inclusion:
            p = p[1:]
        if not p.endswith("\\ "):
            p = p.rstrip(" ")
        dir_only = p.endswith("/")
        if dir_only:
            p = p[:-1]
        return cls(text, domain, tuple(p.split("/")), inclusion, dir_only, "/" in p, origin)

    def match(self, path: tuple[str, ...], is_dir: bool) -> int:
        if len(path) <= len(self.domain) or path[:len(self.domain)] != self.domain:
            return NO_MATCH
        rest = path[len(self.domain):]
        if not (self._glob_match(rest, is_dir) if self.is_glob else self._simple_match(rest, is_dir)):
            return NO_MATCH
        return INCLUDE if self.inclusion else EXCLUDE

    def _simple_match(self, path: tuple[str, ...], is_dir: bool) -> bool:
        for i, name in enumerate(path):
            if not go_match(self.parts[0], name):
                continue
            return not (self.dir_only and not is_dir and i == len(path) - 1)
        return False

    def _glob_match(self, path: tuple[str, ...], is_dir: bool) -> bool:
        matched, can_traverse, rest = False, False, list(path)
        for i, part in enumerate(self.parts):
            if part == "":
                can_traverse = False
                continue
            if part == "**":
                if i == len(self.parts) - 1:
                    break
                can_traverse = True
                continue
            if "**" in part:
                return False
            if not rest:
                return False
            if can_traverse:
                can_traverse = False
                while rest:
                    name = rest.pop(0)
                    if go_match(part, name):
                        matched = True
                        break
                    if not rest:
                        matched = False
            else:
                if not go_match(part, rest[0]):
                    return False
                matched = True
                rest.pop(0)
        if matched and self.dir_only and not is_dir and not rest:
            matched = False
        return matched


def read_patterns(text: str, domain: tuple[str, ...], origin: str) -> list[Pattern]:
    """sourceignore.ReadPatterns: one pattern a line; `#` lines and blank lines skipped."""
    return [Pattern.parse(line, domain, origin) for line in text.splitlines()
            if not line.startswith("#") and line.strip()]


def default_patterns(spec: str, origin: str) -> list[Pattern]:
    return [Pattern.parse(p, (), origin) for p in spec.split(",")]


@dataclass
class Artifact:
    """The artifact of the repository at `repo`: `excluded(path)` says why a repository path is not in it."""

    repo: Path
    # The bootstrap GitRepository's spec.ignore, when Git holds it (appended last, as source-controller does).
    spec_ignore: str | None = None
    spec_ignore_origin: str = "spec.ignore"
    patterns: list[Pattern] = field(init=False)
    # Answers and symlink tests already made: a build asks for the same folders many times.
    _answers: dict[tuple[str, ...], str | None] = field(init=False, default_factory=dict)
    _links: dict[tuple[str, ...], bool] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.repo = self.repo.resolve()
        found: list[Pattern] = []
        for directory, dirs, files in os.walk(self.repo):
            dirs[:] = sorted(d for d in dirs if d not in UNCOMMITTED_FOLDERS)
            if IGNORE_FILE in files:
                rel = Path(directory).relative_to(self.repo)
                domain = tuple(rel.parts)
                path = Path(directory, IGNORE_FILE)
                if path.is_file() and not path.is_symlink():
                    text = path.read_text(encoding="utf-8", errors="replace")[:1_000_000]
                    found += read_patterns(text, domain, str(rel / IGNORE_FILE) if domain else IGNORE_FILE)
        if self.spec_ignore:
            found += read_patterns(self.spec_ignore, (), self.spec_ignore_origin)
        vcs = default_patterns(EXCLUDE_VCS, "source-controller's default exclusions (ExcludeVCS)")
        if found:
            self.patterns = [*vcs, *found]
        else:
            self.patterns = [*vcs, *default_patterns(",".join((EXCLUDE_EXT, EXCLUDE_CI, EXCLUDE_EXTRA)),
                                                     "source-controller's default exclusions (no .sourceignore)")]

    def excluded(self, rel: str | Path) -> str | None:
        """Why the repository path `rel` is not in Flux's artifact, or None when it is."""
        parts = Path(rel).parts
        if parts not in self._answers:
            self._answers[parts] = self._excluded(parts)
        return self._answers[parts]

    def _is_link(self, parts: tuple[str, ...]) -> bool:
        if parts not in self._links:
            self._links[parts] = self.repo.joinpath(*parts).is_symlink()
        return self._links[parts]

    def _excluded(self, parts: tuple[str, ...]) -> str | None:
        if not parts or parts == (".",):
            return None
        if NEVER_IN_ARTIFACT in parts:
            return "`.git/` is never in Flux's artifact"
        target = self.repo.joinpath(*parts)
        for depth in range(1, len(parts) + 1):
            if self._is_link(parts[:depth]):
                return (f"{'/'.join(parts[:depth])} is a symlink, and source-controller archives regular files and "
                        "folders only")
        is_dir = target.is_dir()
        for pattern in reversed(self.patterns):
            result = pattern.match(parts, is_dir)
            if result == INCLUDE:
                return None
            if result == EXCLUDE:
                return f"ignored by {pattern.text!r} ({pattern.origin})"
        return None
