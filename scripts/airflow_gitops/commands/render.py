"""`render <cluster>`: every object Flux would apply, chart objects included, as a YAML stream or a folder."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from airflow_gitops.commands._common import add_cluster_argument, dump_stream, warn
from airflow_gitops.model import ERROR, RenderError, escaped
from airflow_gitops.pipeline import render_cluster
from airflow_gitops.settings import Settings
from airflow_gitops.source import containment


def configure(parser) -> None:
    add_cluster_argument(parser)
    parser.add_argument("-o", "--output-dir", help="write one file per object: <dir>/<kind>/<namespace>--<name>.yaml")
    parser.add_argument("--no-charts", action="store_true", help="only the objects from Git, no chart rendering")
    parser.add_argument("--no-source-comments", action="store_true", help="omit the # Source comments")


def run(args) -> int:
    settings = Settings.from_args(args)
    try:
        state = render_cluster(settings, args.cluster, charts=not args.no_charts)
    except RenderError as error:
        warn(f"error: {error}")
        return 2
    for note in state.notes:
        warn(f"note: {escaped(note)}")
    for release in state.releases:
        if release.unrendered_reason:
            warn(f"NOT RENDERED: {escaped(release.helmrelease.ref, name=True)}: {escaped(release.unrendered_reason)}")
    errors = [f for f in state.findings if f.severity == ERROR]
    for finding in state.findings:
        warn(str(finding))
    resources = state.all_resources
    if args.output_dir:
        out = Path(args.output_dir)
        for r in resources:
            # Object names come from the pull request: never a path.
            target = containment.output_path(out, r.kind, r.namespace or "_cluster", r.name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(yaml.safe_dump(r.obj, sort_keys=False, width=1_000_000))
        warn(f"wrote {len(resources)} objects to {out}")
    else:
        sys.stdout.write(dump_stream(resources, with_sources=not args.no_source_comments))
    return 1 if errors else 0
