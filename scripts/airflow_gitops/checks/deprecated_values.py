"""Values the pinned chart marks deprecated: an error, before the chart drops them and the setting is lost silently.

A chart says a value is deprecated in two places, and both are read from the chart itself, never from a list kept
here:
- its values.schema.json: the description of the value says "(deprecated, use ...)" or "(Deprecated - renamed to
  ...)", as the official Airflow chart writes it;
- its NOTES.txt, rendered with the release's values: a "DEPRECATION WARNING" paragraph naming the value in backticks,
  which the Airflow chart prints only for values that are set.

Only values the release sets count (its valuesFrom and inline values), not the chart's own defaults. A deprecated
value set below another deprecated value is reported once, at the outer one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from airflow_gitops.model import ERROR, Finding, ReleaseRender, field_path

CHECK = "values-deprecated"
# "(deprecated, use `x` instead)", "(Deprecated - renamed to `x`)": the schema descriptions' own wording.
SCHEMA_NOTE = re.compile(r"\(\s*deprecated\b[^)]*\)?", re.IGNORECASE)
NOTES_WARNING = re.compile(r"DEPRECATION WARNING:\s*(?P<text>.+?)(?:\n\s*\n|\Z)", re.DOTALL)
BACKTICKED = re.compile(r"`([A-Za-z0-9_.\-]+)`")


def deprecated_in_schema(schema: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    """(path, note) for each value whose description marks it deprecated; nested objects' properties too."""
    if not isinstance(schema, dict):
        return
    description = schema.get("description")
    if path and isinstance(description, str) and SCHEMA_NOTE.search(description):
        yield path, " ".join(description.split())
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for key, child in properties.items():
            yield from deprecated_in_schema(child, (*path, str(key)))


def deprecated_in_notes(notes: str | None) -> Iterator[tuple[tuple[str, ...] | None, str]]:
    """(path of the first value named in backticks, warning) for each DEPRECATION WARNING of the rendered notes."""
    for match in NOTES_WARNING.finditer(notes or ""):
        text = " ".join(match.group("text").split())
        named = BACKTICKED.search(text)
        yield (tuple(named.group(1).split(".")) if named else None), text


def is_set(values: Any, path: tuple[str, ...]) -> bool:
    node = values
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def deprecated_values(release: ReleaseRender, values_file_of: Callable[[Any], str]) -> list[Finding]:
    where = f"values of {release.helmrelease.ref}"
    chart = f"chart {release.chart_name} {release.chart_version}"
    findings: list[Finding] = []
    reported: list[tuple[str, ...]] = []

    def report(path: tuple[str, ...], message: str) -> None:
        if any(path[:len(outer)] == outer for outer in reported):
            return
        reported.append(path)
        findings.append(Finding(ERROR, values_file_of(list(path)), where, field_path(list(path)), message, CHECK))

    for path, note in sorted(deprecated_in_schema(release.chart_schema or {})):
        if is_set(release.values, path):
            report(path, f"{chart} marks this value deprecated in its values.schema.json: {note}; a later chart "
                         "drops it and the setting is then lost without an error")
    for named, warning in deprecated_in_notes(release.notes):
        if named is None:
            findings.append(Finding(ERROR, release.helmrelease.source_file, release.helmrelease.ref, "spec.values",
                                    f"{chart} warns in its NOTES.txt: DEPRECATION WARNING: {warning}", CHECK))
        else:
            report(named, f"{chart} warns in its NOTES.txt: DEPRECATION WARNING: {warning}")
    return findings
