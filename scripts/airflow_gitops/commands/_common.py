"""Argument helpers shared by the subcommands."""

from __future__ import annotations

import sys

import yaml

from airflow_gitops.model import Resource, escaped
from airflow_gitops.settings import Settings, add_common_options
from airflow_gitops.source.repository import cluster_names


def add_cluster_argument(parser, allow_all: bool = False) -> None:
    parser.add_argument("cluster", help="cluster folder under clusters/" + (", or `all`" if allow_all else ""))
    add_common_options(parser)


def clusters_of(settings: Settings, name: str, allow_all: bool = False) -> list[str]:
    """The clusters a command runs on: a folder name under clusters/ (never a path), or `all` where allowed."""
    from airflow_gitops.source.containment import check_cluster_name

    known = cluster_names(settings.repo)
    check_cluster_name(name, known, allow_all)
    return known if name == "all" else [name]


def dump_stream(resources: list[Resource], with_sources: bool = True) -> str:
    parts = []
    for r in resources:
        header = (f"# Source: {escaped(r.location, name=True)}\n# Applied by: {escaped(r.applied_by, name=True)}\n"
                  if with_sources else "")
        parts.append(header + yaml.safe_dump(r.obj, sort_keys=False, width=1_000_000))
    return "---\n".join(parts)


def warn(message: str) -> None:
    """A line on stderr; what it holds from the repository must be escaped by the caller (model.escaped), or be a
    Finding, which escapes itself."""
    print(message, file=sys.stderr)
