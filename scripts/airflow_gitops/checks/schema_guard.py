"""The Airflow release never runs an older Airflow on a newer schema, and never rolls a schema's code back.

Helm cannot roll a database schema back, and only the newer Airflow's code can undo its own migrations. The design
(docs/choices.md) has four parts in Git, and this check keeps
each of them in place, on every cluster:

1. The HelmRelease's annotation `airflow-gitops.io/schema-version` is the release that introduced the migration
   head the composed `airflowVersion` needs (the heads table). The API server's policy compares it.
2. That policy, the ValidatingAdmissionPolicy `airflow-schema-forward-only` and its binding, is applied by a
   Kustomization that `apps` depends on, so it is in force before the release changes.
3. The migrate Job reads the step-1 pod annotation into SCHEMA_ROLLBACK_TO, and its script downgrades when it
   is set: a cluster that replaces `migrateDatabaseJob.env` or `.args` must keep both.
4. The release retries forward (`strategy: RetryOnFailure`), never rolls back or uninstalls, deletes nothing on
   failure, and retries only after the chart's finished Jobs are gone (retryInterval > ttlSecondsAfterFinished),
   since a Job's pod template cannot change while the Job exists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow_gitops import airflow_versions
from airflow_gitops.kustomize_controller.api import kustomizations
from airflow_gitops.model import ERROR, Finding, ReleaseRender, Resource, mapping

CHECK = "schema-guard"
SCHEMA_VERSION = "airflow-gitops.io/schema-version"
ROLLED_BACK_TO = "airflow-gitops.io/schema-rolled-back-to"
ROLLBACK_ANNOTATION = "airflow-gitops.io/schema-rollback-to"
POLICY = "airflow-schema-forward-only"
ROLLBACK_ENV = "SCHEMA_ROLLBACK_TO"
ROLLBACK_FIELD = f"metadata.annotations['{ROLLBACK_ANNOTATION}']"
# The pod annotation and variable of the FAB auth manager's schema revision (operate/downgrade.py ROLLBACK_FAB_TO).
ROLLBACK_FAB_ENV = "SCHEMA_ROLLBACK_FAB_TO"
ROLLBACK_FAB_FIELD = "metadata.annotations['airflow-gitops.io/schema-rollback-fab-to']"
CHART_JOBS = ("migrateDatabaseJob", "createUserJob")
# The chart's default (values.yaml of the official chart) when values leave it unset.
CHART_JOB_TTL_DEFAULT = 300


def _duration_seconds(text: Any) -> float | None:
    """A Go duration as Flux writes it ("11m", "1h30m", "90s") in seconds; None when it is none."""
    import re

    if not isinstance(text, str) or not re.fullmatch(r"(\d+(\.\d+)?(h|m|s|ms))+", text):
        return None
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(number) * units[unit] for number, _, unit in re.findall(r"(\d+(\.\d+)?)(ms|h|m|s)", text))


def check(release: ReleaseRender, resources: list[Resource], values_file_of: Callable[[Any], str]) -> list[Finding]:
    """Every part of the design on one Airflow release; `values_file_of(path)` names the values file that set a key."""
    hr = release.helmrelease
    findings: list[Finding] = []

    def error(field: str, message: str, where: str | None = None) -> None:
        findings.append(Finding(ERROR, where or hr.source_file, hr.ref, field, message, CHECK))

    version = str(release.values.get("airflowVersion") or "")
    wanted = airflow_versions.schema_version(version)
    annotations = mapping(mapping(hr.obj.get("metadata")).get("annotations"))
    have = annotations.get(SCHEMA_VERSION)
    if wanted is None:
        error(f"metadata.annotations.{SCHEMA_VERSION}",
              f"airflowVersion {version!r} is newer than the migration-heads table knows (regenerate "
              "scripts/airflow_gitops/airflow_migration_heads.py with that Airflow installed)",
              values_file_of(["airflowVersion"]))
    elif have != wanted:
        error(f"metadata.annotations.{SCHEMA_VERSION}",
              f"is {have!r}, but airflowVersion {version} needs the schema of Airflow {wanted}: set "
              f"`{SCHEMA_VERSION}: \"{wanted}\"` (the API server's schema guard compares it)")
    findings += _policy_in_force(hr, resources)
    findings += _migrate_job_honours_rollback(release, values_file_of)
    findings += _forward_only(release, values_file_of)
    return findings


def _policy_in_force(hr: Resource, resources: list[Resource]) -> list[Finding]:
    kinds = {r.kind: r for r in resources if r.name == POLICY and r.kind in (
        "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")}
    missing = [kind for kind in ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding") if kind not in kinds]
    if missing:
        return [Finding(ERROR, hr.source_file, hr.ref, f"metadata.annotations.{SCHEMA_VERSION}",
                        f"nothing enforces it: the cluster applies no {' and no '.join(missing)} {POLICY} "
                        "(infrastructure/controllers/base/airflow-schema-guard.yaml)", CHECK)]
    applier = kinds["ValidatingAdmissionPolicy"].applied_by
    if applier == hr.applied_by:
        return []
    chain = _dependencies(resources)
    owner = hr.applied_by.removeprefix("Kustomization ")
    if applier.removeprefix("Kustomization ") not in chain.get(owner, set()):
        return [Finding(ERROR, kinds["ValidatingAdmissionPolicy"].source_file, f"ValidatingAdmissionPolicy {POLICY}",
                        "(applier)", f"applied by {applier}, which {hr.applied_by} does not depend on: the policy "
                        "could arrive after the release changed", CHECK)]
    return []


def _dependencies(resources: list[Resource]) -> dict[str, set[str]]:
    """Kustomization ref -> every Kustomization it depends on, directly or not."""
    direct = {ks.id: set(ks.depends_on) for ks in kustomizations(resources)}
    closed: dict[str, set[str]] = {}

    def walk(ref: str, seen: frozenset[str] = frozenset()) -> set[str]:
        if ref in closed:
            return closed[ref]
        found: set[str] = set()
        for dep in direct.get(ref, set()) - seen:
            found |= {dep, *walk(dep, seen | {ref})}
        closed[ref] = found
        return found

    for ref in direct:
        walk(ref)
    return closed


def _migrate_job_honours_rollback(release: ReleaseRender, values_file_of: Callable[[Any], str]) -> list[Finding]:
    job = mapping(release.values.get("migrateDatabaseJob"))
    hr = release.helmrelease
    findings = []
    for name, field in ((ROLLBACK_ENV, ROLLBACK_FIELD), (ROLLBACK_FAB_ENV, ROLLBACK_FAB_FIELD)):
        env = [e for e in job.get("env") or [] if isinstance(e, dict) and e.get("name") == name]
        field_path = (mapping(mapping(env[-1].get("valueFrom")).get("fieldRef")).get("fieldPath") if env else None)
        if field_path != field:
            findings.append(Finding(ERROR, values_file_of(["migrateDatabaseJob", "env"]), hr.ref,
                                    "migrateDatabaseJob.env",
                                    f"needs {name} from the pod annotation ({field}): without it step 1 of a "
                                    "rollback does not downgrade what it should (a cluster that sets env restates "
                                    "common.yaml's entries)", CHECK))
    script = " ".join(str(a) for a in job.get("args") or job.get("command") or [])
    if (f"${ROLLBACK_ENV}" not in script or "airflow db downgrade" not in script
            or f"${ROLLBACK_FAB_ENV}" not in script or "airflow fab-db downgrade" not in script):
        findings.append(Finding(ERROR, values_file_of(["migrateDatabaseJob", "args"]), hr.ref, "migrateDatabaseJob.args",
                                f"must downgrade FAB's schema to ${ROLLBACK_FAB_ENV} and the core to ${ROLLBACK_ENV} "
                                "when they are set, and migrate otherwise "
                                "(charts-values/airflow/common.yaml)", CHECK))
    return findings


def _forward_only(release: ReleaseRender, values_file_of: Callable[[Any], str]) -> list[Finding]:
    hr = release.helmrelease
    spec = mapping(hr.obj.get("spec"))
    findings: list[Finding] = []
    ttls = []
    for job in CHART_JOBS:
        ttl = mapping(release.values.get(job)).get("ttlSecondsAfterFinished", CHART_JOB_TTL_DEFAULT)
        if isinstance(ttl, int) and not isinstance(ttl, bool):
            ttls.append(ttl)
    for action in ("install", "upgrade"):
        section = mapping(spec.get(action))
        strategy = mapping(section.get("strategy"))
        if strategy.get("name") != "RetryOnFailure":
            findings.append(Finding(ERROR, hr.source_file, hr.ref, f"spec.{action}.strategy.name",
                                    "must be RetryOnFailure: a remediation rolls back or uninstalls, and Helm "
                                    "cannot roll the database schema back with it", CHECK))
        if section.get("cleanupOnFail"):
            findings.append(Finding(ERROR, hr.source_file, hr.ref, f"spec.{action}.cleanupOnFail",
                                    "deletes the migrate Job of a timed-out upgrade while it may still migrate", CHECK))
        if action == "upgrade" and ttls:
            interval = _duration_seconds(strategy.get("retryInterval") or "5m")
            if interval is not None and interval <= max(ttls):
                findings.append(Finding(ERROR, hr.source_file, hr.ref, "spec.upgrade.strategy.retryInterval",
                                        f"{strategy.get('retryInterval') or '5m (the default)'} is not longer than the "
                                        f"chart Jobs' ttlSecondsAfterFinished ({max(ttls)} s, "
                                        f"{values_file_of(['migrateDatabaseJob', 'ttlSecondsAfterFinished'])}): a retry "
                                        "would meet the finished Job again and fail on its immutable pod template",
                                        CHECK))
    if spec.get("rollback"):
        findings.append(Finding(ERROR, hr.source_file, hr.ref, "spec.rollback",
                                "is for a remediation by rollback, which this release never does", CHECK))
    return findings
