"""`airflow-gitops live tools|up|down|status`: the local Kubernetes and Flux cluster (docs/live-cluster.md).

`tools` builds the parts from Go modules into the cache (once per version; `--list` and `--path NAME` build
nothing). `up` starts the cluster in DIR (default `.live/` in the repository, gitignored) and bootstraps Flux on
the working tree as it is; `down` stops it. Progress goes to stderr; `up` prints how to reach the cluster.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    tools = actions.add_parser("tools", help="Build the parts from Go modules (cached by version).")
    tools.add_argument("--list", action="store_true", help="print each part, its version and where it is")
    tools.add_argument("--path", metavar="NAME", help="print where the built binary NAME is (exit 2 if not built)")
    tools.add_argument("--group", action="append", choices=["k8s", "flux"], help="build only this group")
    tools.add_argument("--force", action="store_true", help="build again even when the cache has it")
    for name, summary in (("up", "Start the local cluster and bootstrap Flux on the working tree."),
                          ("down", "Stop the local cluster."),
                          ("status", "Say whether the local cluster runs, and where its kubeconfig is.")):
        sub = actions.add_parser(name, help=summary)
        sub.add_argument("--dir", type=Path, help="cluster folder (default: .live in the repository)")
        if name == "down":
            sub.add_argument("--purge", action="store_true", help="also delete the folder")
        if name == "up":
            sub.add_argument("--charts", type=Path,
                             help="folder of chart packages (default: ../shared/charts beside the repository)")


def _repo() -> Path:
    from airflow_gitops.settings import find_repo_root

    return find_repo_root()


def run(args: argparse.Namespace) -> int:
    from airflow_gitops.live import tools

    try:
        if args.action == "tools":
            return _tools(args)
        from airflow_gitops.live import cluster as live

        repo = _repo()
        root = (args.dir or repo / ".live").resolve()
        local = live.Cluster(root)
        if args.action == "down":
            stopped = local.down(purge=args.purge)
            print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}", file=sys.stderr)
            return 0
        if args.action == "status":
            if not local.running():
                print(f"no local cluster runs from {root}", file=sys.stderr)
                return 1
            print(f"export KUBECONFIG={local.layout.kubeconfig}")
            return 0
        charts_dir = (args.charts or repo.parent / "shared" / "charts").resolve()
        charts = live.default_charts(charts_dir)
        if "airflow" not in charts:
            print(f"airflow-gitops live up: no Airflow chart package in {charts_dir}: give --charts DIR",
                  file=sys.stderr)
            return 2
        local.up(repo, charts=charts, log=lambda line: print(f"[live-up] {line}", file=sys.stderr))
        print(f"[live-up] up in {local.state['up_seconds']:.0f} s; Flux now deploys clusters/kind from "
              f"{local.git_url}", file=sys.stderr)
        print(f"[live-up] push to it: git push {local.layout.bare_repository} HEAD:main", file=sys.stderr)
        print(f"[live-up] logs: {local.layout.logs}; stop: make live-down", file=sys.stderr)
        print(f"export KUBECONFIG={local.layout.kubeconfig}")
        return 0
    except (tools.ToolsUnavailable, RuntimeError) as error:
        print(f"airflow-gitops live {args.action}: {error}", file=sys.stderr)
        return 2


def _tools(args: argparse.Namespace) -> int:
    from airflow_gitops.live import tools

    if args.path:
        found = tools.find_tool(args.path)
        if found is None:
            known = ", ".join(sorted(tools.TOOLS))
            hint = "run `make live-tools`" if args.path in tools.TOOLS else f"known: {known}"
            print(f"airflow-gitops live tools: {args.path} is not built ({hint})", file=sys.stderr)
            return 2
        print(found)
        return 0
    if args.list:
        print("\n".join(tools.describe()))
        return 0
    built = tools.build_all(args.group, force=args.force)
    for name, directory in built.items():
        print(f"{name}: {directory}", file=sys.stderr)
    return 0
