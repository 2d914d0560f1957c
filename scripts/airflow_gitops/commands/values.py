"""`values <cluster> [release]`: the values helm-controller composes for a HelmRelease's chart."""

from __future__ import annotations

import sys

import yaml

from airflow_gitops.commands._common import add_cluster_argument, warn
from airflow_gitops.helm_controller.values import compose
from airflow_gitops.model import RenderError
from airflow_gitops.pipeline import render_cluster
from airflow_gitops.settings import Settings
from airflow_gitops.source.provenance import SourceIndex


def configure(parser) -> None:
    add_cluster_argument(parser)
    parser.add_argument("release", nargs="?", default="airflow", help="HelmRelease name (default: airflow)")


def run(args) -> int:
    settings = Settings.from_args(args)
    index = SourceIndex(settings.repo)
    try:
        state = render_cluster(settings, args.cluster, charts=False, index=index)
        matches = [r for r in state.resources if r.kind == "HelmRelease" and r.name == args.release]
        if not matches:
            names = ", ".join(sorted(r.name for r in state.resources if r.kind == "HelmRelease"))
            warn(f"error: cluster {args.cluster} has no HelmRelease {args.release!r} (has: {names})")
            return 2
        release = compose(state, index, matches[0])
    except RenderError as error:
        warn(f"error: {error}")
        return 2
    for finding in state.findings:
        warn(str(finding))
    warn(f"# {release.helmrelease.ref} -> release {release.release_name} in {release.namespace}, "
         f"chart {release.chart_name} {release.chart_version}; from {', '.join(release.values_files) or 'inline'}")
    sys.stdout.write(yaml.safe_dump(release.values, sort_keys=False, width=1_000_000))
    return 0
