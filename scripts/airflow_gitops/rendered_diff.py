"""What a change does to a rendered cluster, as text a reviewer reads: each object as diffable text (secrets masked,
multi-line strings as their own blocks of lines), paired across the two sides by kind, namespace and name (a
generated ConfigMap across its hash suffix), and a unified diff whose hunks name the text block they start in.
`airflow-gitops diff` prints it; the golden `diff` cases (tests/engine/test_golden.py) compare it."""

from __future__ import annotations

import difflib
import json
import re
import sys
from collections.abc import Iterator

import yaml

from airflow_gitops.model import ERROR, Finding, Resource, escaped
from airflow_gitops.pipeline import render_cluster
from airflow_gitops.settings import Settings
from airflow_gitops.source.provenance import HASH_SUFFIX
from airflow_gitops.source.repository import cluster_names

MASK = "**masked**"


class _TextDumper(yaml.SafeDumper):
    """The object's YAML, where each multi-line string is a `!text` reference to its own block below."""


class _TextRef(str):
    """Stands in the YAML for a multi-line string; its value is the field path of the block holding the text."""


_TextDumper.add_representer(_TextRef, lambda dumper, path: dumper.represent_scalar("!text", str(path)))

# Field path segments: `data.name` when the key reads unambiguously, `data["airflow.cfg"]` otherwise.
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_HUNK = re.compile(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
# Marks no YAML dump can start a line with (a key starting with `#` or `|` is quoted), so a block's header and
# lines cannot be mistaken for the object's YAML, whatever the text holds.
BLOCK_HEADER = "#| "
NO_FINAL_NEWLINE = "#\\ no newline at end of text"
_ESCAPES = {"\t": "\\t", "\r": "\\r", "\n": "\\n", '"': '\\"', "\\": "\\\\"}

# Findings that mean the input was refused: the diff of such a tree would hide what it tried (a render stopped at its
# time limit or memory cap would show its objects as removed).
REFUSED = ("containment", "yaml", "render-bounds")


def _warn(message: str) -> None:
    print(message, file=sys.stderr)


def rendered_objects(settings: Settings, cluster: str, refused: list[Finding] | None = None,
                     side: str = "working tree") -> dict[str, str]:
    """The cluster's objects as diffable text; a cluster folder that does not exist on this side has none."""
    if cluster not in cluster_names(settings.repo):
        return {}
    state = render_cluster(settings, cluster)
    for release in state.releases:
        if release.unrendered_reason:
            _warn(f"NOT RENDERED in {escaped(settings.repo.name, name=True)}: {escaped(release.helmrelease.ref, name=True)}: "
                  f"{escaped(release.unrendered_reason)}")
    for finding in state.findings:
        if finding.severity == ERROR:
            _warn(f"{cluster} ({side}): {finding}")
            if refused is not None and finding.check in REFUSED:
                refused.append(finding)
    return {key(r): as_text(masked(r.obj)) for r in state.all_resources}


def as_text(obj: dict) -> str:
    """The object as diffable text: its YAML, then each multi-line string (airflow.cfg, pod_template_file.yaml,
    values files) as its own block of lines under its field path, so a change to one setting diffs as one line.
    A string is multi-line when it holds a newline, whatever else it holds: lines that would read ambiguously
    (trailing whitespace, tabs, CR, other non-printables) are shown escaped rather than forcing the whole string
    into one escaped YAML line."""
    blocks: list[tuple[str, str]] = []
    text = yaml.dump(_split_out(obj, "", blocks), Dumper=_TextDumper, sort_keys=True, width=1_000_000)
    for path, value in sorted(blocks):
        text += "".join(_block(path, value))
    return text


def _split_out(node, path: str, blocks: list[tuple[str, str]]):
    if isinstance(node, dict):
        return {k: _split_out(v, _child(path, k), blocks) for k, v in node.items()}
    if isinstance(node, list):
        return [_split_out(v, f"{path}[{i}]", blocks) for i, v in enumerate(node)]
    if isinstance(node, str) and "\n" in node:
        blocks.append((path, node))
        return _TextRef(path)
    return node


def _child(path: str, key) -> str:
    if isinstance(key, str) and _PLAIN_KEY.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key, default=str)}]"  # ASCII: no key can break the block header's line


def _block(path: str, text: str) -> Iterator[str]:
    """`| line` shows a line as it is; `|~ "..."` shows, quoted and escaped, a line a reader could misread
    (trailing whitespace, tab, CR, control or invisible characters): every change stays visible in the diff."""
    yield f"{BLOCK_HEADER}{path}\n"
    lines = text.split("\n")  # not splitlines(): a CR, form feed or U+2028 stays inside its line, shown escaped
    final_newline = lines[-1] == ""
    if final_newline:
        lines.pop()
    for line in lines:
        if line.isprintable() and line == line.rstrip():
            yield f"| {line}\n" if line else "|\n"
        else:
            yield f'|~ "{"".join(_escape(c) for c in line)}"\n'
    if not final_newline:
        yield NO_FINAL_NEWLINE + "\n"


def _escape(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    if char.isprintable():  # ASCII space is; every other space, control and format character is not
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def key(r: Resource) -> str:
    """Generated ConfigMaps pair up across their hash suffix, so a values change diffs line by line."""
    name = HASH_SUFFIX.sub("-<hash>", r.name) if r.kind in ("ConfigMap", "Secret") else r.name
    return f"{r.kind}/{r.namespace + '/' if r.namespace else ''}{name}"


def masked(obj: dict) -> dict:
    """Secret values never reach a pull-request comment."""
    if obj.get("kind") != "Secret":
        return obj
    copy = dict(obj)
    for field in ("data", "stringData"):
        if isinstance(copy.get(field), dict):
            copy[field] = {k: MASK for k in copy[field]}
    return copy


def unified(base: dict[str, str], head: dict[str, str], ref: str) -> list[str]:
    lines: list[str] = []
    for name in sorted(set(base) | set(head)):
        old, new = base.get(name, ""), head.get(name, "")
        if old == new:
            continue
        old_lines, new_lines = _lines(old), _lines(new)
        diff = difflib.unified_diff(
            old_lines, new_lines,
            # Names are escaped: an object name can never start a line, write a terminal escape or close a fence.
            fromfile=f"{escaped(ref, name=True)}/{escaped(name, name=True)}" if old else "/dev/null",
            tofile=f"working-tree/{escaped(name, name=True)}" if new else "/dev/null")
        lines.extend(_with_block_names(diff, old_lines, new_lines))
    return lines


def _lines(text: str) -> list[str]:
    """Split on newline only, as the text was built: str.splitlines() would also split on a form feed or U+2028."""
    return [f"{line}\n" for line in text.removesuffix("\n").split("\n")] if text else []


def _with_block_names(diff: Iterator[str], old_lines: list[str], new_lines: list[str]) -> Iterator[str]:
    """Each hunk header names the text block it starts in (`@@ -120,7 +120,7 @@ data["airflow.cfg"]`), as git
    names the enclosing function: one ConfigMap holds both airflow.cfg and pod_template_file.yaml."""
    for line in diff:
        hunk = _HUNK.match(line)
        if hunk:
            old_start, old_length, new_start, new_length = (int(n) if n else 1 for n in hunk.groups())
            side, start, length = (new_lines, new_start, new_length) if new_lines else \
                (old_lines, old_start, old_length)
            before = start - 1 if length else start  # difflib numbers an empty range by the line before it
            name = next((text[len(BLOCK_HEADER):].rstrip("\n") for text in reversed(side[:before])
                         if text.startswith(BLOCK_HEADER)), None)
            if name:
                line = f"{line.rstrip()} {name}\n"
        yield line


def differing(base: dict[str, str], head: dict[str, str]) -> int:
    return sum(1 for name in set(base) | set(head) if base.get(name, "") != head.get(name, ""))
