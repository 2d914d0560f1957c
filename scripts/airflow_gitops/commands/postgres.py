"""`airflow-gitops postgres start|stop|status --dir DIR`: a throwaway PostgreSQL 15 on 127.0.0.1.

`start` prints shell `export` lines (and nothing else on stdout), so that

    eval "$(airflow-gitops postgres start --dir /tmp/pg)"

leaves AIRFLOW_GITOPS_TEST_DATABASE_URL set for the DAG tests. Running `start` again while the server
runs prints the same lines. Progress and errors go to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys


def _default_dir() -> str:
    return os.path.join(os.environ.get("TMPDIR") or "/tmp", "airflow-gitops-pg")


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = actions.add_parser("start", help="Start (or find running) the cluster and print export lines.")
    start.add_argument("--dir", default=_default_dir(), help="Cluster directory (default: %(default)s).")
    start.add_argument("--port", type=int, default=None, help="TCP port on 127.0.0.1 (default: a free one).")
    stop = actions.add_parser("stop", help="Stop the cluster (fast shutdown).")
    stop.add_argument("--dir", default=_default_dir(), help="Cluster directory (default: %(default)s).")
    stop.add_argument("--purge", action="store_true", help="Also delete the directory and its data.")
    status = actions.add_parser("status", help="Print the export lines if the cluster runs; exit 1 if not.")
    status.add_argument("--dir", default=_default_dir(), help="Cluster directory (default: %(default)s).")


def run(args: argparse.Namespace) -> int:
    from airflow_gitops.dev import localpg

    try:
        if args.action == "start":
            pg = localpg.start(args.dir, args.port)
            print(f"PostgreSQL running on {pg.host}:{pg.port} (data in {pg.data_dir})", file=sys.stderr)
            sys.stdout.write(pg.exports())
            return 0
        if args.action == "stop":
            if localpg.stop(args.dir, purge=args.purge):
                print(f"PostgreSQL in {args.dir} stopped", file=sys.stderr)
            else:
                print(f"PostgreSQL in {args.dir} was not running", file=sys.stderr)
            return 0
        running = localpg.status(args.dir)
        if running is None:
            print(f"PostgreSQL in {args.dir} is not running", file=sys.stderr)
            return 1
        sys.stdout.write(running.exports())
        return 0
    except localpg.PostgresUnavailable as exc:
        print(f"airflow-gitops postgres {args.action}: {exc}", file=sys.stderr)
        return 1
