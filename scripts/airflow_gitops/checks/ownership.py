"""One owner per object: two appliers of the same object fight over it on every reconcile (the last apply wins,
and pruning by one deletes what the other still wants)."""

from __future__ import annotations

from collections import defaultdict

from airflow_gitops.model import ERROR, Finding, Resource


def object_identity(r: Resource) -> tuple[str, str, str, str]:
    """What the API server keys an object by: API group (not version), kind, namespace, name."""
    group = r.api_version.rpartition("/")[0]
    return group, r.kind, r.namespace, r.name


def double_owners(resources: list[Resource]) -> list[Finding]:
    owners: dict[tuple[str, str, str, str], list[Resource]] = defaultdict(list)
    for r in resources:
        owners[object_identity(r)].append(r)
    findings = []
    for same in owners.values():
        appliers = list(dict.fromkeys(r.applied_by for r in same))
        if len(appliers) < 2:
            continue
        first = same[0]
        for other in same[1:]:
            if other.applied_by == first.applied_by:
                continue
            findings.append(Finding(
                ERROR, other.location, other.ref, "metadata.name",
                f"also applied by {first.applied_by} from {first.location}; {other.applied_by} and "
                f"{first.applied_by} would both own it: keep it in one of them", "ownership"))
    return findings
