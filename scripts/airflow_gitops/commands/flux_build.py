"""`flux-build <cluster>`: the tool's side of scripts/flux-build-compare.sh, in the shape `flux build` prints.

  flux-build kind --list                      one line per Flux Kustomization: <namespace>/<name> TAB <path>
  flux-build kind flux-system/apps --kustomization-file-out F
                                              writes F for `flux build ... --kustomization-file F --dry-run` and
                                              prints the objects the tool renders for it, canonically
  flux-build kind flux-system/apps --normalize OUT
                                              prints OUT (the Flux CLI's output) in the same canonical shape
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from airflow_gitops.commands._common import add_cluster_argument, warn
from airflow_gitops.model import ERROR, RenderError
from airflow_gitops.operate import flux_build
from airflow_gitops.pipeline import render_cluster
from airflow_gitops.settings import Settings


def configure(parser) -> None:
    add_cluster_argument(parser)
    parser.add_argument("kustomization", nargs="?", help="<namespace>/<name> (namespace flux-system if omitted)")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--list", action="store_true", help="list the cluster's Flux Kustomizations and their paths")
    mode.add_argument("--kustomization-file-out", metavar="FILE",
                      help="write the Kustomization for `flux build --dry-run` and print the tool's objects")
    mode.add_argument("--normalize", metavar="FILE", help="print FILE (flux build's output) canonically")


def run(args) -> int:
    if args.normalize:
        try:
            sys.stdout.write(flux_build.canonical_text(Path(args.normalize).read_text()))
        except (OSError, yaml.YAMLError) as error:
            warn(f"error: {args.normalize}: cannot read the Flux CLI's output: {error}")
            return 2
        return 0
    settings = Settings.from_args(args)
    try:
        state = render_cluster(settings, args.cluster, charts=False)
    except RenderError as error:
        warn(f"error: {error}")
        return 2
    entries = flux_build.kustomizations(state)
    if args.list:
        sys.stdout.write("".join(f"{ks.ref}\t{ks.path}\n" for ks in entries))
        return 0
    wanted = args.kustomization or ""
    wanted = wanted if "/" in wanted else f"flux-system/{wanted}"
    ks = next((k for k in entries if k.ref == wanted), None)
    if ks is None:
        warn(f"error: cluster {args.cluster} has no Flux Kustomization {wanted!r} "
             f"(has: {', '.join(k.ref for k in entries)})")
        return 2
    failed = [f for f in state.findings if f.severity == ERROR and f.object == ks.applier and f.check == "build"]
    for finding in failed:
        warn(str(finding))
    if failed:
        return 2
    Path(args.kustomization_file_out).write_text(
        yaml.safe_dump(flux_build.kustomization_file(state, ks), sort_keys=False, width=1_000_000))
    sys.stdout.write(flux_build.canonical(flux_build.tool_objects(state, ks)))
    return 0
