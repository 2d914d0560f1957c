"""`status`: every Flux object, the Airflow pods and the release's last Helm revisions (live cluster)."""

from __future__ import annotations

from airflow_gitops.operate.plans import add_dry_run, run_or_print, status_plan
from airflow_gitops.settings import Settings, add_common_options


def configure(parser) -> None:
    add_common_options(parser)
    parser.add_argument("--namespace", default="airflow")
    parser.add_argument("--release", default="airflow", help="HelmRelease of Airflow (default: airflow)")
    add_dry_run(parser)


def run(args) -> int:
    return run_or_print(status_plan(args.namespace, args.release), Settings.from_args(args).repo, args.dry_run)
