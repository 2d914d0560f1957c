"""Checks for defects that only a live cluster shows: what Flux's controllers do *after* the first apply.

Offline, the rendered desired state can be right and the cluster still misbehave. Each check here is one such
defect, verified against the controllers' source (Flux 2.9: helm-controller v1.6.3, kustomize-controller v1.9.4,
fluxcd/pkg, fluxcd/cli-utils kstatus):

1. `drift_recreated_jobs`: a chart Job with `ttlSecondsAfterFinished` under drift detection is created again after
   Kubernetes deletes it.
2. `unwatched_variable_sources`: a values source whose content comes from post-build variables changes in place,
   so helm-controller (or kustomize-controller, for substituteFrom) is not told about it.
3. `unchecked_readiness`: a `wait: true` Kustomization that applies a custom resource kstatus cannot judge reports
   Ready before the resource is.
4. `short_wait_timeouts`: a Kustomization that waits for HelmReleases gives up before they can fail for good, and
   reports its own timeout instead of the release's error.
5. `unprotected_data`: an object that holds data, applied by a Kustomization with `prune: true`, is deleted by the
   commit that takes it out of Git, a `git revert` included (tests/live/test_prune.py shows both on the cluster).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from airflow_gitops.helm_controller.api import HelmRelease, IgnoreRule, Selector
from airflow_gitops.kustomize_controller.api import HealthCheck, Kustomization, kustomizations
from airflow_gitops.kustomize_controller.postbuild import SUBSTITUTE_ANNOTATION, referenced_variables
from airflow_gitops.model import ERROR, WARNING, Finding, ReleaseRender, Resource, mapping
from airflow_gitops.model import duration_seconds as seconds
from airflow_gitops.source.bounds import load_file

# --- 1. drift detection and finished Jobs -------------------------------------------------------------------------

# helm-controller api/v2 DriftDetectionMetadataKey / DriftDetectionDisabledValue.
DRIFT_KEY = "helm.toolkit.fluxcd.io/driftDetection"
DRIFT_DISABLED = "disabled"
# Where the official Airflow chart lets values set a Job's own annotations (templates/jobs/*.yaml).
AIRFLOW_CHART_JOB_ANNOTATIONS = {
    "templates/jobs/migrate-database-job.yaml": "migrateDatabaseJob.jobAnnotations",
    "templates/jobs/create-user-job.yaml": "createUserJob.jobAnnotations",
}


def drift_recreated_jobs(releases: Iterable[ReleaseRender]) -> list[Finding]:
    """Every Job with a TTL that a HelmRelease with drift detection would re-create once the TTL deleted it.

    helm-controller (internal/action/diff.go, Diff) runs fluxcd/pkg ssa/jsondiff.UnstructuredList over the release
    manifest. jsondiff.Unstructured returns DiffTypeCreate for an object that is not in the cluster, and ApplyDiff
    creates every such object; only an object excluded *before* the lookup is spared: its manifest carries
    `helm.toolkit.fluxcd.io/driftDetection: disabled` (label or annotation, ExclusionSelector) or an ignore rule
    matches it with the root path "" (IgnorePathRoot). An ignore rule on sub-paths does not stop the re-creation.
    """
    findings: list[Finding] = []
    for release in releases:
        hr = release.helmrelease
        drift = HelmRelease.parse(hr).drift_detection
        if not drift.detects:
            continue
        if release.unrendered_reason:
            findings.append(Finding(WARNING, hr.source_file, hr.ref, "spec.driftDetection",
                                    "NOT CHECKED: its chart did not render (see NOT RENDERED), so no Job with "
                                    "ttlSecondsAfterFinished under drift detection could be looked for", "drift-jobs"))
            continue
        for obj in release.objects:
            if obj.kind != "Job" or obj.api_version != "batch/v1":
                continue
            # The chart's Job, the object under check: read as rendered.
            ttl = mapping(obj.obj.get("spec")).get("ttlSecondsAfterFinished")
            if ttl is None or _drift_excluded(obj.obj) or _ignored_whole(obj.obj, drift.ignore):
                continue
            where = AIRFLOW_CHART_JOB_ANNOTATIONS.get((obj.template or "").split("/", 1)[-1])
            how = f"the chart value {where}" if where else "the chart's annotations for this Job"
            consequence = ("corrects the drift by creating it, and running it, again on every reconcile"
                           if drift.mode == "enabled" else "reports it as drift on every reconcile")
            findings.append(Finding(
                ERROR, obj.location, obj.ref, f"metadata.annotations[{DRIFT_KEY}]",
                f"Job has spec.ttlSecondsAfterFinished: {ttl} and {hr.ref} has spec.driftDetection.mode: {drift.mode}: "
                f"once Kubernetes deletes the finished Job, helm-controller {consequence}. Annotate it "
                f"{DRIFT_KEY}: {DRIFT_DISABLED} through {how}, or add a spec.driftDetection.ignore rule with "
                f"paths: [\"\"] whose target matches it", "drift-jobs"))
    return findings


def _drift_excluded(obj: dict[str, Any]) -> bool:
    """fluxcd/pkg ssa/utils.AnyInMetadata: a label or an annotation, value compared case-insensitively."""
    meta = mapping(obj.get("metadata"))
    values = [mapping(meta.get("labels")).get(DRIFT_KEY), mapping(meta.get("annotations")).get(DRIFT_KEY)]
    return any(isinstance(v, str) and v.lower() == DRIFT_DISABLED for v in values)


def _ignored_whole(obj: dict[str, Any], rules: list[IgnoreRule]) -> bool:
    """An ignore rule with the root path "" whose target (jsondiff.SelectorRegex) matches the object."""
    for rule in rules:
        if "" not in rule.paths:
            continue
        if rule.target is None or _selector_matches(rule.target, obj):
            return True
    return False


def _selector_matches(target: Selector, obj: dict[str, Any]) -> bool:
    meta = mapping(obj.get("metadata"))
    api_version = str(obj.get("apiVersion", ""))
    group, _, version = api_version.rpartition("/")
    wanted = [(target.group, group), (target.version, version), (target.kind, obj.get("kind", "")),
              (target.name, meta.get("name", "")), (target.namespace, meta.get("namespace", ""))]
    for pattern, value in wanted:
        # jsondiff anchors every pattern (anchorRegex): "Job" matches only "Job". A broken pattern spares nothing:
        # helm-controller refuses the whole rule set.
        try:
            if pattern and not re.fullmatch(pattern, str(value)):
                return False
        except re.error:
            return False
    return (_labels_match(target.label_selector, meta.get("labels") or {})
            and _labels_match(target.annotation_selector, meta.get("annotations") or {}))


def _labels_match(selector: str | None, values: dict[str, str]) -> bool:
    """Equality-based Kubernetes selectors (k=v, k==v, k!=v, k, !k); set-based ones are not matched (not spared)."""
    if not selector:
        return True
    for term in (t.strip() for t in selector.split(",")):
        if "!=" in term:
            key, value = (s.strip() for s in term.split("!=", 1))
            if values.get(key) == value:
                return False
        elif "=" in term:
            key, value = (s.strip() for s in term.replace("==", "=").split("=", 1))
            if values.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:].strip() in values:
                return False
        elif " in " in term or " notin " in term or term not in values:
            return False
    return True


# --- 2. post-build variables in values sources --------------------------------------------------------------------

# fluxcd/pkg apis/meta LabelKeyWatch/LabelValueWatchEnabled: the default --watch-configs-label-selector of both
# helm-controller and kustomize-controller (fluxcd/pkg runtime/controller/watch.go).
WATCH_LABEL = "reconcile.fluxcd.io/watch"
WATCH_ENABLED = "Enabled"


def unwatched_variable_sources(resources: list[Resource], releases: Iterable[ReleaseRender],
                               repo: Path, generator_inputs: Callable[[str, str], list[str]]) -> list[Finding]:
    """valuesFrom and substituteFrom ConfigMaps/Secrets whose content changes in place without the watch label.

    - valuesFrom: kustomize hashes a generated ConfigMap's name *before* kustomize-controller substitutes ${vars},
      so a changed variable changes the ConfigMap in place and the HelmRelease spec stays the same. helm-controller
      v1.6.3 (internal/controller/helmrelease_manager.go) watches valuesFrom ConfigMaps and Secrets that carry the
      watch label and reconciles their HelmReleases at once; without it, only at spec.interval.
    - substituteFrom: a new commit reconciles every Kustomization of the source at once, possibly before the root
      Kustomization has applied the new cluster-vars; kustomize-controller v1.9.4 (kustomization_manager.go,
      indexConfigMap/indexSecret) re-reconciles the readers of a labelled substituteFrom object when it changes.
    """
    findings: list[Finding] = []
    by_applier = {r.ref: Kustomization.parse(r) for r in resources if r.kind == "Kustomization"}
    for release in releases:
        hr = release.helmrelease
        helmrelease = HelmRelease.parse(hr)
        interval = helmrelease.interval or "its interval"
        for ref in helmrelease.values_from:
            source = _find(resources, ref.kind, ref.name, hr.namespace)
            if source is None or _watched(source.obj) or not _substituted(source, by_applier):
                continue
            inputs = generator_inputs(source.name, str(Path(source.source_file).parent))
            used = _variables_in_inputs(repo, inputs) if inputs else _variables_in_manifest(repo, source)
            if not used:
                continue
            origin = ", ".join(inputs) if inputs else source.source_file
            findings.append(Finding(
                ERROR, source.source_file, source.ref, f"metadata.labels[{WATCH_LABEL}]",
                f"values source of {hr.ref} ({ref.where}) uses post-build variables "
                f"{', '.join(used)} in {origin}: a changed variable changes it in place, the HelmRelease spec stays "
                f"the same, and helm-controller upgrades only after spec.interval ({interval}). Label it "
                f"{WATCH_LABEL}: {WATCH_ENABLED} (configMapGenerator options.labels)", "watch-label"))
    readers: dict[str, tuple[Resource, list[str]]] = {}
    for ks in by_applier.values():
        for substitute in ks.post_build.substitute_from if ks.post_build else []:
            source = _find(resources, substitute.kind, substitute.name, ks.namespace)
            if source is not None and not _watched(source.obj):
                readers.setdefault(source.ref, (source, []))[1].append(ks.name)
    for source, names in readers.values():
        findings.append(Finding(
            ERROR, source.source_file, source.ref, f"metadata.labels[{WATCH_LABEL}]",
            f"read by the Kustomizations {', '.join(names)} (spec.postBuild.substituteFrom): without the label "
            f"{WATCH_LABEL}: {WATCH_ENABLED}, a change to it reaches them only at their next interval (the commit "
            "that changes it may reconcile them before it is applied)", "watch-label"))
    return findings


def _find(resources: list[Resource], kind: str | None, name: str | None, namespace: str) -> Resource | None:
    return next((r for r in resources if r.kind == kind and r.name == name and r.namespace == namespace), None)


def _watched(obj: dict[str, Any]) -> bool:
    return mapping(mapping(obj.get("metadata")).get("labels")).get(WATCH_LABEL) == WATCH_ENABLED


def _substituted(source: Resource, by_applier: dict[str, Kustomization]) -> bool:
    """Whether kustomize-controller substitutes variables in this object at all."""
    applier = by_applier.get(source.applied_by)
    if applier is None or applier.post_build is None:
        return False
    meta = mapping(source.obj.get("metadata"))
    # fluxcd/pkg kustomize.SubstituteVariables skips an object labelled or annotated `substitute: disabled`.
    return "disabled" not in (mapping(meta.get("annotations")).get(SUBSTITUTE_ANNOTATION),
                              mapping(meta.get("labels")).get(SUBSTITUTE_ANNOTATION))


def _variable_names(text: str) -> list[str]:
    return ["${" + name + "}" for name in referenced_variables(text)]


def _variables_in_inputs(repo: Path, files: list[str]) -> list[str]:
    names: list[str] = []
    for file in files:
        path = repo / file
        if path.is_file():
            names += _variable_names(path.read_text())
    return list(dict.fromkeys(names))


def _variables_in_manifest(repo: Path, source: Resource) -> list[str]:
    """A ConfigMap/Secret written as a manifest: its data before substitution, as it stands in the file."""
    path = repo / source.source_file
    try:
        docs = load_file(path, source.source_file) if path.is_file() else []
    except Exception:  # broken YAML is reported by the YAML check, with its line
        return []
    names: list[str] = []
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == source.kind and \
                mapping(doc.get("metadata")).get("name") == source.name:
            for section in ("data", "stringData"):
                for value in (doc.get(section) or {}).values():
                    names += _variable_names(str(value))
    return list(dict.fromkeys(names))


# --- 3. readiness of custom resources under wait: true ------------------------------------------------------------

# Kubernetes' own API groups: kstatus has rules for their kinds (or they are ready once stored).
BUILTIN_GROUPS = {
    "", "apps", "batch", "autoscaling", "policy", "admissionregistration.k8s.io", "apiextensions.k8s.io",
    "apiregistration.k8s.io", "authentication.k8s.io", "authorization.k8s.io", "certificates.k8s.io",
    "coordination.k8s.io", "discovery.k8s.io", "events.k8s.io", "flowcontrol.apiserver.k8s.io", "networking.k8s.io",
    "node.k8s.io", "rbac.authorization.k8s.io", "resource.k8s.io", "scheduling.k8s.io", "storage.k8s.io",
}
# Flux's own kinds are exempt: every toolkit controller follows kstatus (status.observedGeneration, Reconciling
# and Stalled conditions, Ready), so kstatus already waits for them once their controller has seen them; the
# Flux example repository relies on exactly that with wait: true.
FLUX_GROUP_SUFFIX = ".toolkit.fluxcd.io"
# Kinds whose status has nothing to wait for, read from their CRDs (../shared/schemas); kstatus's Current is right.
NO_READINESS = {
    ("barmancloud.cnpg.io", "ObjectStore"): "status holds only serverRecoveryWindow, written after backups run",
    ("postgresql.cnpg.io", "ScheduledBackup"): "a schedule: status records its last and next run, the Backups "
                                                "it creates are separate objects",
}
_READY = "has(status.conditions) && status.conditions.exists(c, c.type == 'Ready' && c.status == 'True')"
# The expression to add for kinds whose status is known (CRDs in ../shared/schemas). `failed` only where the state
# is terminal: a transient error (a store not yet validated) must not abort the wait.
SUGGESTED = {
    ("postgresql.cnpg.io", "Cluster"): {"current": _READY},
    ("postgresql.cnpg.io", "Database"): {"current": "has(status.applied) && status.applied"},
    ("postgresql.cnpg.io", "Backup"): {"current": "has(status.phase) && status.phase == 'completed'",
                                       "failed": "has(status.phase) && status.phase == 'failed'"},
    ("external-secrets.io", "ExternalSecret"): {"current": _READY},
    ("external-secrets.io", "SecretStore"): {"current": _READY},
    ("external-secrets.io", "ClusterSecretStore"): {"current": _READY},
    ("karpenter.sh", "NodePool"): {
        "current": _READY,
        "failed": "has(status.conditions) && status.conditions.exists(c, c.type == 'ValidationSucceeded' "
                  "&& c.status == 'False')"},
}


def api_group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def unchecked_readiness(resources: list[Resource]) -> list[Finding]:
    """Every custom resource kind a Kustomization waits for needs a spec.healthCheckExprs entry.

    kstatus (fluxcd/cli-utils pkg/kstatus/status: Compute, checkGenericProperties, checkReadyCondition) calls an
    object without observedGeneration, Reconciling/Stalled or Ready conditions Current: a CloudNativePG Cluster
    that its operator has not yet touched is "ready". kustomize-controller evaluates spec.healthCheckExprs instead
    for the matching group/kind (fluxcd/pkg runtime/cel StatusReader: by GroupKind, or the whole group when kind is
    empty); an object with no expression that matches is judged by kstatus alone. It waits for every object it
    applies with `wait: true`, else for those listed in spec.healthChecks.
    """
    findings: list[Finding] = []
    for ks in kustomizations(resources):
        if ks.wait:
            how, waited = "wait: true applies", [o for o in resources if o.applied_by == ks.applier]
        elif ks.health_checks:
            how = "spec.healthChecks waits for"
            waited = [o for o in resources if any(_is(check, o) for check in ks.health_checks)]
        else:
            continue
        checked = {(api_group(e.api_version), e.kind) for e in ks.health_check_exprs}
        missing: dict[tuple[str, str], list[Resource]] = {}
        for obj in waited:
            group = api_group(obj.api_version)
            key = (group, obj.kind)
            if group in BUILTIN_GROUPS or group.endswith(FLUX_GROUP_SUFFIX) or key in NO_READINESS \
                    or key in checked or (group, "") in checked:
                continue
            missing.setdefault(key, []).append(obj)
        for (group, kind), objects in missing.items():
            findings.append(Finding(ERROR, ks.resource.source_file, ks.resource.ref, "spec.healthCheckExprs",
                                    _missing_message(how, group, kind, objects), "readiness"))
    return findings


def _is(check: HealthCheck, obj: Resource) -> bool:
    return (check.kind == obj.kind and check.name == obj.name and (check.namespace or "") == obj.namespace
            and api_group(check.api_version) == api_group(obj.api_version))


def _missing_message(how: str, group: str, kind: str, objects: list[Resource]) -> str:
    names = ", ".join(o.ref.split(" ", 1)[1] for o in objects[:3]) + (" ..." if len(objects) > 3 else "")
    api_version = objects[0].api_version
    suggestion = SUGGESTED.get((group, kind))
    entry = f"{{apiVersion: {api_version}, kind: {kind}, " + (
        ", ".join(f'{key}: "{expr}"' for key, expr in suggestion.items()) if suggestion
        else 'current: "<CEL over the object, true once it is ready>"') + "}"
    return (f"{how} {kind} {names} ({api_version}) but nothing checks its readiness: kstatus calls a "
            f"custom resource without conditions Current, so this Kustomization can be Ready before the {kind} is. "
            f"Add to spec.healthCheckExprs: {entry}"
            + ("" if suggestion else " (read the status fields from its CRD; if its status has nothing to wait "
               "for, add the kind to NO_READINESS in scripts/airflow_gitops/live_state.py with the reason)"))


# --- 4. how long a Kustomization waits for its HelmReleases ----------------------------------------------------

def settle_time(hr: HelmRelease) -> tuple[float, str] | None:
    """Seconds until a HelmRelease ends Ready or Stalled in the worst case, and how: None when it retries forever.

    helm-controller v1.6.4 (internal/reconcile/atomic_release.go): a failed install or upgrade is remediated
    (uninstall, or rollback by default for an upgrade), then retried at once while retries remain, the release
    Reconciling all the while, which kstatus reads as InProgress. Only when the retries are spent is it marked
    Stalled (RetriesExceeded), which the waiting Kustomization reads as Failed with the release's message. Each
    action may take its timeout: (1 + retries) attempts, and a remediation after each but the last (after the last
    too when remediateLastFailure, the upgrade's default once retries > 0).

    With the strategy RetryOnFailure a failed action is retried after its interval for ever, never Stalled: the
    time counted is what a release that succeeds may need: an attempt, the retry interval and a second attempt (the
    one failure a healthy upgrade meets is a chart Job that still exists, charts-values/airflow/common.yaml); a
    release still failing after that is reported by the Kustomization's own timeout."""
    timeout = seconds(hr.timeout)
    worst: list[tuple[float, str]] = []
    for action, remediation, remedy, remedy_name in (
            ("install", hr.install_remediation, seconds(hr.uninstall_timeout), "uninstall"),
            ("upgrade", hr.upgrade_remediation, seconds(hr.rollback_timeout if remediation_is_rollback(
                hr.upgrade_remediation) else hr.uninstall_timeout), hr.upgrade_remediation.strategy)):
        if remediation.retry_interval is not None:
            worst.append((2 * timeout + seconds(remediation.retry_interval),
                          f"an {action} attempt of {hr.timeout}, the retry after {remediation.retry_interval} "
                          f"(RetryOnFailure) and a second attempt of {hr.timeout}"))
            continue
        if remediation.retries < 0:
            return None
        attempts = remediation.retries + 1
        remedies = remediation.retries + (1 if remediation.remediate_last_failure else 0)
        worst.append((attempts * timeout + remedies * remedy,
                      f"{attempts} {action} attempt(s) of {hr.timeout} and {remedies} {remedy_name}(s) of "
                      f"{hr.rollback_timeout if remedy_name == 'rollback' else hr.uninstall_timeout}"))
    return max(worst)


def remediation_is_rollback(remediation) -> bool:
    return remediation.strategy != "uninstall"


def _minutes(value: float) -> str:
    return f"{value / 60:g}m"


def short_wait_timeouts(resources: list[Resource]) -> list[Finding]:
    """A Kustomization that waits for HelmReleases needs a spec.timeout longer than they take to end in Ready or
    Stalled (settle_time), along their dependsOn chains (a release starts only once the ones it depends on are
    Ready). With a shorter one, kustomize-controller stops at its timeout while the release is still retrying
    ("timeout waiting for: [HelmRelease/... status: 'InProgress']", fluxcd/pkg ssa WaitForSetWithContext) and never
    reports the release's own error."""
    findings: list[Finding] = []
    for ks in kustomizations(resources):
        if ks.wait:
            waited = [o for o in resources if o.applied_by == ks.applier]
        elif ks.health_checks:
            waited = [o for o in resources if any(_is(check, o) for check in ks.health_checks)]
        else:
            continue
        releases = {f"{r.namespace}/{r.name}": HelmRelease.parse(r) for r in waited if HelmRelease.is_helmrelease(r)}
        chains = [c for ref in releases if (c := _longest_chain(ref, releases, ())) is not None]
        if not chains or max(chains)[0] < seconds(ks.timeout):
            continue
        need, path = max(chains)
        how = "; ".join(f"{ref}: {settled[1]}" for ref in path if (settled := settle_time(releases[ref])))
        findings.append(Finding(
            ERROR, ks.resource.source_file, ks.resource.ref, "spec.timeout",
            f"waits (wait: true or healthChecks) for HelmRelease {' then '.join(path)}, which can take "
            f"{_minutes(need)} to end Ready or failed ({how}); at {ks.timeout} this Kustomization reports its own "
            f"timeout instead of the release's error. Set spec.timeout above {_minutes(need)}, or lower the "
            "release's timeout or retries", "wait-timeout"))
    return findings


def _longest_chain(ref: str, releases: dict[str, HelmRelease],
                   seen: tuple[str, ...]) -> tuple[float, list[str]] | None:
    """The worst settle time of `ref` after the releases it depends on (among `releases`), and that chain."""
    own = settle_time(releases[ref])
    if own is None:
        return None
    before = [] if ref in seen else [c for d in releases[ref].depends_on if d in releases
                                     and (c := _longest_chain(d, releases, (*seen, ref))) is not None]
    longest = max(before, default=(0.0, []))
    return own[0] + longest[0], [*longest[1], ref]


# --- 5. objects that hold data, under prune ------------------------------------------------------------------------

# kustomize-controller v1.9 deleteObjects: a stale object whose label or annotation says so is left in place (and
# dropped from the inventory) instead of deleted (fluxcd/pkg ssa DeleteAll, utils.AnyInMetadata).
PRUNE_KEY = "kustomize.toolkit.fluxcd.io/prune"
PRUNE_DISABLED = "disabled"
# Kinds whose deletion deletes data: a CloudNativePG Cluster takes its PVCs with it (they carry its ownerReference,
# and the garbage collector follows it); a PVC takes its volume where the class reclaims with Delete.
DATA_KINDS = {("postgresql.cnpg.io", "Cluster"), ("", "PersistentVolumeClaim")}
# A CloudNativePG Database drops its database when deleted only with this reclaim policy (the default is retain).
DATABASE_DROPPED = "delete"


def unprotected_data(resources: list[Resource], releases: Iterable[ReleaseRender]) -> list[Finding]:
    """Every object that holds data, or whose deletion deletes data, and that a Kustomization with prune: true
    would delete once it leaves Git: a CloudNativePG Cluster, a PersistentVolumeClaim, a Database with
    `databaseReclaimPolicy: delete`, and a Namespace that holds any of them (or a StatefulSet's volume claims):
    deleting a Namespace deletes everything in it. Each must carry `kustomize.toolkit.fluxcd.io/prune: disabled`."""
    pruning = {ks.applier: ks for ks in kustomizations(resources) if ks.prune}
    everything = [*resources, *(obj for release in releases for obj in release.objects)]
    holding: dict[str, Resource] = {}
    for obj in everything:
        if _holds_data(obj):
            holding.setdefault(obj.namespace, obj)
    findings: list[Finding] = []
    for obj in resources:
        ks = pruning.get(obj.applied_by)
        if ks is None or _prune_disabled(obj.obj, ks):
            continue
        if obj.kind == "Namespace" and api_group(obj.api_version) == "" and obj.name in holding:
            held = holding[obj.name]
            why = (f"it holds {held.kind} {held.namespace}/{held.name}, and deleting a Namespace deletes everything "
                   "in it")
        elif _holds_data(obj) and obj.kind != "StatefulSet":
            why = {"Cluster": "deleting it deletes its PVCs, and so the database (they carry its ownerReference)",
                   "PersistentVolumeClaim": "deleting it frees its volume, which a Delete reclaim policy destroys",
                   "Database": f"its databaseReclaimPolicy is {DATABASE_DROPPED}: deleting it drops the database"
                   }[obj.kind]
        else:
            continue
        findings.append(Finding(
            ERROR, obj.source_file, obj.ref, f"metadata.annotations[{PRUNE_KEY}]",
            f"{ks.applier} has prune: true, so the commit that takes this {obj.kind} out of Git (a git revert "
            f"included) deletes it, and {why}. Annotate it {PRUNE_KEY}: {PRUNE_DISABLED}: Flux then leaves it in "
            "place when it leaves Git, and deleting it stays a deliberate `kubectl delete`", "prune-protection"))
    return findings


def _holds_data(obj: Resource) -> bool:
    key = (api_group(obj.api_version), obj.kind)
    spec = mapping(obj.obj.get("spec"))
    if key in DATA_KINDS:
        return True
    if key == ("postgresql.cnpg.io", "Database"):
        return str(spec.get("databaseReclaimPolicy", "")).lower() == DATABASE_DROPPED
    return key == ("apps", "StatefulSet") and bool(spec.get("volumeClaimTemplates"))


def _prune_disabled(obj: dict[str, Any], ks: Kustomization) -> bool:
    """fluxcd/pkg ssa utils.AnyInMetadata on the applied object: its own label or annotation, or the Kustomization's
    commonMetadata, which kustomize-controller sets on every object it applies."""
    meta = obj.get("metadata") or {}
    common = ks.common_metadata
    values = [(meta.get("labels") or {}).get(PRUNE_KEY), (meta.get("annotations") or {}).get(PRUNE_KEY),
              *((common.labels.get(PRUNE_KEY), common.annotations.get(PRUNE_KEY)) if common else ())]
    return any(isinstance(v, str) and v.lower() == PRUNE_DISABLED for v in values)
