"""`reconcile <cluster>`: each Flux Kustomization with --with-source, in the dependsOn order of clusters/<cluster>."""

from __future__ import annotations

from airflow_gitops.commands._common import add_cluster_argument, warn
from airflow_gitops.model import RenderError
from airflow_gitops.operate.plans import add_dry_run, kustomization_chain, reconcile_plan, run_or_print
from airflow_gitops.settings import Settings


def configure(parser) -> None:
    add_cluster_argument(parser)
    add_dry_run(parser)


def run(args) -> int:
    settings = Settings.from_args(args)
    try:
        chain = kustomization_chain(settings, args.cluster)
    except RenderError as error:
        warn(f"error: {error}")
        return 2
    return run_or_print(reconcile_plan(chain), settings.repo, args.dry_run)
