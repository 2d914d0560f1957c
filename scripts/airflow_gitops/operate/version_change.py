"""The Airflow version change between a git ref and the working tree, as `diff` and `validate --base` report it:
what it does to the schema, and what rolling it back will take (operate/downgrade.py analyses it)."""

from __future__ import annotations

from airflow_gitops.model import Finding, escaped
from airflow_gitops.operate.downgrade import NoAirflowRelease, analyse
from airflow_gitops.settings import Settings
from airflow_gitops.source.git import base_tree


def version_report(base: Settings, head: Settings, cluster: str, ref: str) -> list[str]:
    """What the change does to Airflow's version and schema, and what rolling it back will take (`diff`)."""
    if not all((tree.repo / "clusters" / cluster).is_dir() for tree in (base, head)):
        return []
    try:
        change = analyse(base, head, cluster, ref)
    except NoAirflowRelease as missing:
        return [f"{cluster}: no Airflow version to compare ({escaped(missing.message)} on one side)"]
    return [f"{cluster}: {escaped(change.describe('<this commit>'))}", *(f"{cluster}: {f}" for f in change.findings)]


def version_change(settings: Settings, cluster: str, ref: str) -> list[Finding]:
    """Findings of the Airflow version change from `ref` (`validate --base`); its summary goes to stdout with the
    rest of the cluster's report."""
    with base_tree(settings, ref) as base:
        return version_findings(base, settings, cluster, ref)


def version_findings(base: Settings, settings: Settings, cluster: str, ref: str) -> list[Finding]:
    if not (base.repo / "clusters" / cluster).is_dir():
        print(f"{cluster}: a new cluster (not in {ref}): no Airflow version change to check")
        return []
    try:
        change = analyse(base, settings, cluster, ref)
    except NoAirflowRelease as missing:
        # The airflow-contract check already reports a cluster without the release.
        print(f"{cluster}: no Airflow version to compare ({escaped(missing.message)} on one side)")
        return []
    print(f"{cluster}: {escaped(change.describe('<this commit>'))}")
    return change.findings
