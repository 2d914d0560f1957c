"""Bounds on what a pull request can make the tool read, parse or run: the one YAML loader and the one reader of a
repository file (read, bound, parse), and subprocess limits. Every bound names the file that broke it, never a
traceback."""

from __future__ import annotations

import re
import resource
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from airflow_gitops import yamltext
from airflow_gitops.model import RenderError

# Deepest document in the real inputs: the CRDs of Flux, CloudNativePG and External Secrets reach 31 levels.
# 100 leaves a wide margin and keeps every recursive step downstream (values merge, deepcopy, YAML dump,
# jsonschema: up to ~6 Python frames a level) far below Python's 1000-frame limit; libyaml's C composer
# itself crashes the process (SIGSEGV) near 30,000 levels, so the depth is checked before it runs.
MAX_DEPTH = 100
# Nodes a document may hold once its aliases are expanded, as a JSON or YAML dump (and kustomize) expand them.
# The largest real input, an Airflow chart render, holds ~20,000 nodes.
MAX_EXPANDED_NODES = 2_000_000
# One file of the repository, or one values document. etcd refuses requests over ~1.5 MiB, so no honest
# manifest file comes near this.
MAX_FILE_BYTES = 16 * 1024 * 1024
# Documents in one YAML stream: a chart render holds ~100, the largest repository file a handful.
MAX_DOCUMENTS = 10_000
# kustomize output for one build; a wall clock for it.
MAX_OUTPUT_BYTES = 64 * 1024 * 1024
SUBPROCESS_TIMEOUT_S = 120
# Address space of a kustomize child: the Go runtime and a large build fit in well under 1 GiB.
MAX_CHILD_MEMORY_BYTES = 4 * 1024 * 1024 * 1024
MAX_STDERR_BYTES = 64 * 1024


class YamlBoundError(yaml.YAMLError):
    """A YAML input over one of the bounds above."""


class DuplicateKeyError(yaml.MarkedYAMLError):
    """A mapping key given twice: kubectl and kustomize (yaml.v3) refuse it; PyYAML would keep the last silently."""


# The loader the mixin below goes on top of, for the type checker; at run time the mixin's base is object, so the
# classes' method resolution is PyYAML's own.
_LoaderBase: Any = yaml.SafeLoader if TYPE_CHECKING else object


class _RefuseDuplicateKeys(_LoaderBase):
    """Duplicate mapping keys refused, as kube tools do, on top of a PyYAML loader."""

    def construct_mapping(self, node, deep=False):
        # flatten_mapping deletes merge keys from this very list, then puts merged entries in a new one.
        own = node.value
        mapping = super().construct_mapping(node, deep=deep)
        if node.value is not own or len(mapping) < len(own):
            _refuse_duplicates(own)
        return mapping


class _BoundedLoader(_RefuseDuplicateKeys, getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's parser and composer (speed), with duplicate mapping keys refused."""


class _BoundedKubernetesLoader(_RefuseDuplicateKeys, yamltext.GoYamlV2Loader):
    """The same, with go-yaml v2's resolution of plain scalars: kustomize's and Helm's output as Flux and
    Kubernetes read it (yamltext.py)."""


def _refuse_duplicates(pairs) -> None:
    seen: dict[tuple[str, Any], Any] = {}
    for key, _ in pairs:
        if not isinstance(key, yaml.ScalarNode):
            continue
        identity = (key.tag, key.value)
        if identity in seen:
            first = seen[identity].start_mark
            raise DuplicateKeyError(
                None, None, f"mapping key {key.value!r} already defined at line {first.line + 1}", key.start_mark)
        seen[identity] = key


# An alias can only follow a separator (`:` too, after a quoted key in flow style) and needs an anchor;
# a false hit only costs the exact expansion walk.
_ALIAS = re.compile(r"(?:^|[\s\[{,:])\*[^\s,\[\]{}]")
_ANCHOR = re.compile(r"(?:^|[\s\[{,:])&[^\s,\[\]{}]")
# A document marker ends every open collection: flow levels are counted per document.
_DOCUMENT_START = re.compile(r"^---(?=[ \t\r\n]|$)", re.M)
_STRUCTURE_EVENTS = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_END_EVENTS = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
_LONG_PREFIX: dict[int, re.Pattern[str]] = {}


def _within_depth(text: str) -> bool:
    """A cheap, sound test that no document is deeper than MAX_DEPTH. A block level starts within the line's
    prefix of indentation and compact "- " / "? " / ": " indicators (two levels per column at most: a mapping
    and its indentless sequence); a flow level needs an unclosed bracket of the same document."""
    flow = max(doc.count("[") - doc.count("[]") + doc.count("{") - doc.count("{}")
               for doc in _DOCUMENT_START.split(text))
    columns = (MAX_DEPTH - flow - 2) // 2 - 1
    if columns < 1:
        return False
    if columns not in _LONG_PREFIX:
        _LONG_PREFIX[columns] = re.compile(r"^[ \t?:-]{" + str(columns + 1) + "}", re.M)
    return not _LONG_PREFIX[columns].search(text)


def _check_depth(text: str, source: str) -> None:
    if _within_depth(text):
        return
    # Exact, from libyaml's event stream: no recursion, so no crash whatever the depth.
    depth = 0
    for event in yaml.parse(text, Loader=_BoundedLoader):
        if isinstance(event, _STRUCTURE_EVENTS):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else "?"
                raise YamlBoundError(f"{source}: line {line}: nesting deeper than {MAX_DEPTH} levels")
        elif isinstance(event, _END_EVENTS):
            depth -= 1


def _check_expansion(doc: Any, source: str) -> None:
    """Nodes and depth of the document once aliases are expanded, computed once per shared node."""
    sizes: dict[int, tuple[int, int]] = {}
    stack: list[tuple[Any, bool]] = [(doc, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = list(node.values()) if isinstance(node, dict) else node
        if not children_done:
            stack.append((node, True))
            stack.extend((child, False) for child in children
                         if isinstance(child, (dict, list)) and id(child) not in sizes)
            continue
        count, depth = 1 + len(children), 1
        for child in children:
            if isinstance(child, (dict, list)):
                if id(child) not in sizes:
                    raise YamlBoundError(f"{source}: a document that contains itself (recursive alias)")
                child_count, child_depth = sizes[id(child)]
                count += child_count
                depth = max(depth, child_depth + 1)
        if count > MAX_EXPANDED_NODES:
            raise YamlBoundError(f"{source}: aliases expand to more than {MAX_EXPANDED_NODES:,} nodes "
                                 "(a YAML alias bomb?)")
        if depth > MAX_DEPTH:
            raise YamlBoundError(f"{source}: aliases expand to a nesting deeper than {MAX_DEPTH} levels")
        sizes[id(node)] = (count, depth)


def load_all(text: str, source: str = "(YAML)", kubernetes: bool = False) -> list[Any]:
    """Every document of a YAML stream, within the bounds; `source` names the input in every error. With
    `kubernetes`, typed as Flux and Kubernetes read a kustomize or Helm output (yamltext.kubernetes_objects)."""
    if len(text) > MAX_FILE_BYTES:
        raise YamlBoundError(f"{source}: {len(text):,} characters, over the {MAX_FILE_BYTES:,} bound")
    documents = len(_DOCUMENT_START.findall(text)) + 1
    if documents > MAX_DOCUMENTS:
        raise YamlBoundError(f"{source}: {documents:,} YAML documents, over the {MAX_DOCUMENTS:,} bound")
    _check_depth(text, source)
    docs = list(yaml.load_all(text, Loader=_BoundedKubernetesLoader if kubernetes else _BoundedLoader))
    if _ALIAS.search(text) and _ANCHOR.search(text):
        for doc in docs:
            if isinstance(doc, (dict, list)):
                _check_expansion(doc, source)
    if kubernetes:
        try:
            return yamltext.kubernetes_objects(docs)
        except yamltext.UnsupportedValue as error:
            raise yaml.YAMLError(f"{source}: {error}") from None
    return docs


def read_text(path: Path, source: str) -> str:
    """A repository file as UTF-8 within MAX_FILE_BYTES; the error names `source` (its repository path)."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise YamlBoundError(f"{source}: {size:,} bytes, over the {MAX_FILE_BYTES:,}-byte bound")
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise YamlBoundError(f"{source}: not UTF-8 (byte {error.object[error.start]:#04x} at offset "
                             f"{error.start}); Kubernetes manifests and values are UTF-8") from None
    except OSError as error:
        raise YamlBoundError(f"{source}: cannot be read: {error.strerror or error}") from None


def load_yaml_all(text: str, source: str = "(YAML)", kubernetes: bool = False) -> list[Any]:
    """Every non-empty document of a YAML stream, within the bounds; `source` names the input in its errors.
    `kubernetes` for a kustomize or Helm output: typed as Flux and Kubernetes read it."""
    return [doc for doc in load_all(text, source, kubernetes) if doc is not None]


def load_yaml(text: str, source: str = "(YAML)", kubernetes: bool = False) -> Any:
    """The one document of a YAML text (None when empty); more than one is an error naming `source`."""
    docs = load_all(text, source, kubernetes)
    if len(docs) > 1:
        raise YamlBoundError(f"{source}: expected a single YAML document, found {len(docs)}")
    return docs[0] if docs else None


def load_file(path: Path, source: str) -> list[Any]:
    """A repository file's YAML documents: read within MAX_FILE_BYTES as UTF-8, then parsed within the bounds;
    every error names `source` (its repository path)."""
    return load_yaml_all(read_text(path, source), source)


def load_file_document(path: Path, source: str) -> Any:
    """A repository file that holds one YAML document (a values file), read and parsed as load_file does."""
    return load_yaml(read_text(path, source), source)


def run_bounded(command: list[str], what: str) -> subprocess.CompletedProcess:
    """A subprocess with a wall clock, an output cap and a memory cap; `what` names the input in the error.
    Output goes to a file, so a runaway child never fills this process's memory; the kernel stops the child
    at the output cap (SIGXFSZ) or the memory cap. Limits are set with prlimit right after the spawn rather
    than in a preexec_fn, which would force a full fork of this (large) process."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        with subprocess.Popen(command, stdout=out, stderr=err) as proc:
            try:
                resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (MAX_OUTPUT_BYTES, MAX_OUTPUT_BYTES))
                resource.prlimit(proc.pid, resource.RLIMIT_AS, (MAX_CHILD_MEMORY_BYTES, MAX_CHILD_MEMORY_BYTES))
            except (OSError, ValueError):
                pass  # the child already exited
            # A timer kills the child; a plain blocking wait returns the moment it ends (Popen.wait(timeout)
            # polls with sleeps of up to 50 ms, which cost ~70 ms a build).
            killed = threading.Event()

            def stop() -> None:
                killed.set()
                proc.kill()

            timer = threading.Timer(SUBPROCESS_TIMEOUT_S, stop)
            timer.start()
            try:
                returncode = proc.wait()
            finally:
                timer.cancel()
        if killed.is_set():
            raise RenderError(f"{what}: took over {SUBPROCESS_TIMEOUT_S} s and was stopped")
        if out.tell() >= MAX_OUTPUT_BYTES or returncode == -25:  # -SIGXFSZ
            raise RenderError(f"{what}: output over the {MAX_OUTPUT_BYTES:,}-byte bound, stopped")
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(command, returncode, out.read(), err.read(MAX_STDERR_BYTES))
