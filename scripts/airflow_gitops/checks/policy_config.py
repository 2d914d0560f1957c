"""The policy configuration itself: `[tool.airflow-gitops.policies]` in pyproject.toml.

A policy that can be switched off by emptying a list is no policy. So the table must exist, every key is known and
of its type, the lists of clusters name every cluster (or exempt it with a written reason), and `diff` shows any
change of the table to the reviewer (who, by .github/CODEOWNERS, owns pyproject.toml)."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_gitops.model import ERROR, Finding

FILE = "pyproject.toml"
TABLE = "[tool.airflow-gitops.policies]"
# Shorter reasons are placeholders ("todo", "n/a"), not reasons a reviewer can judge.
MIN_REASON_LENGTH = 20


@dataclass(frozen=True)
class Key:
    kind: str  # "str", "list" (non-empty list of strings), "clusters" (list of cluster names, exemptions allowed)
    help: str


# Every key of the table. A key not here is an error (a typo would otherwise switch a check off silently).
KEYS: dict[str, Key] = {
    "airflow-release": Key("str", "the HelmRelease that must keep the Airflow contract"),
    "require-resource-requests": Key("clusters", "clusters where every container requests CPU and memory"),
    "secrets-from-external-secrets": Key("clusters", "clusters whose Secrets all come from External Secrets"),
    "allowed-image-registries": Key("list", "registry/namespace prefixes every rendered image must come from"),
    "airflow-image-repositories": Key("list", "repositories of Airflow's own images (tag = the tested Airflow)"),
    "dags-repositories": Key("list", "Git URLs git-sync may take DAGs from"),
    "backup-before-airflow-change": Key("clusters", "clusters that take a CloudNativePG Backup before an Airflow version change"),
    "exemptions": Key("table", "per cluster-list key: {cluster = \"reason\"} for clusters the list leaves out"),
}


def load_table(repo: Path) -> tuple[dict[str, Any] | None, list[Finding]]:
    """The raw table, or None with the finding that says why."""
    path = repo / FILE
    try:
        pyproject = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        return None, [Finding(ERROR, FILE, TABLE, "(file)", f"cannot read the policy configuration: {error}",
                              "policy-config")]
    table = ((pyproject.get("tool") or {}).get("airflow-gitops") or {}).get("policies")
    if not isinstance(table, dict):
        return None, [Finding(ERROR, FILE, TABLE, "(table)", "missing: the policies have no configuration, so "
                              "none of them would know what to enforce", "policy-config")]
    return table, []


def check(repo: Path, cluster: str, clusters: list[str]) -> list[Finding]:
    """Every finding on the table, for `cluster` (a cluster-list must name it or exempt it with a reason)."""
    table, findings = load_table(repo)
    if table is None:
        return findings

    def error(field: str, message: str) -> None:
        findings.append(Finding(ERROR, FILE, TABLE, field, message, "policy-config"))

    for key in table:
        if key not in KEYS:
            error(key, f"unknown key (known: {', '.join(KEYS)})")
    exemptions = table.get("exemptions", {})
    if not isinstance(exemptions, dict):
        error("exemptions", "must be a table of {cluster = \"reason\"} tables")
        exemptions = {}
    for key, spec in KEYS.items():
        value = table.get(key)
        if value is None:
            if key != "exemptions":
                error(key, f"missing ({spec.help})")
            continue
        if spec.kind == "str" and not (isinstance(value, str) and value):
            error(key, "must be a non-empty string")
        elif spec.kind in ("list", "clusters"):
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                error(key, "must be a list of non-empty strings")
                continue
            if spec.kind == "list" and not value:
                error(key, f"is empty: that would allow nothing or turn the check off ({spec.help})")
            if spec.kind == "clusters":
                findings.extend(_cluster_list(key, value, exemptions.get(key) or {}, cluster, clusters))
    for key in exemptions:
        if KEYS.get(key, Key("", "")).kind != "clusters":
            error(f"exemptions.{key}", "only cluster lists can have exemptions "
                                       f"({', '.join(k for k, s in KEYS.items() if s.kind == 'clusters')})")
    return findings


def _cluster_list(key: str, listed: list[str], exempt: Any, cluster: str, clusters: list[str]) -> list[Finding]:
    findings = []

    def error(field: str, message: str) -> None:
        findings.append(Finding(ERROR, FILE, TABLE, field, message, "policy-config"))

    if not isinstance(exempt, dict):
        error(f"exemptions.{key}", "must be a table of {cluster = \"reason\"}")
        exempt = {}
    for name in listed:
        if name not in clusters:
            error(key, f"names {name!r}, which is no folder under clusters/")
    for name, reason in exempt.items():
        if name not in clusters:
            error(f"exemptions.{key}.{name}", "exempts a cluster that is no folder under clusters/")
        if name in listed:
            error(f"exemptions.{key}.{name}", f"the cluster is both in {key} and exempted from it")
        if not isinstance(reason, str) or len(reason.strip()) < MIN_REASON_LENGTH:
            error(f"exemptions.{key}.{name}", f"needs a reason a reviewer can judge (at least {MIN_REASON_LENGTH} "
                                              "characters)")
    if cluster not in listed and cluster not in exempt:
        error(key, f"leaves out cluster {cluster!r} without a reason: list it, or write why under "
                   f"[tool.airflow-gitops.policies.exemptions.{key}]")
    return findings


def value(repo: Path, key: str, default: Any = None) -> Any:
    table, _ = load_table(repo)
    return (table or {}).get(key, default)


def policy_config_changes(base_repo: Path, head_repo: Path) -> list[Finding]:
    """Every key of the policy table that differs between two checkouts, as findings a reviewer must see."""
    base, base_findings = load_table(base_repo)
    head, head_findings = load_table(head_repo)
    if base is None and head is None:
        return []
    if base is None or head is None:
        what = "added" if base is None else "removed"
        return [Finding(ERROR, FILE, TABLE, "(table)", f"POLICY CHANGE: the policy table is {what}", "policy-change"),
                *head_findings]
    findings = []
    for key in sorted(set(base) | set(head)):
        for path, old, new in _differences([key], base.get(key), head.get(key)):
            findings.append(Finding(ERROR, FILE, TABLE, ".".join(path),
                                    f"POLICY CHANGE: {_show(old)} -> {_show(new)}", "policy-change"))
    return findings


def _differences(path: list[str], old: Any, new: Any):
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            yield from _differences([*path, key], old.get(key), new.get(key))
    elif old != new:
        yield path, old, new


def _show(value: Any) -> str:
    return "(absent)" if value is None else json.dumps(value)
