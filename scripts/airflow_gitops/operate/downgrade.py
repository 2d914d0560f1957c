"""Airflow version changes between two trees: what they do to the schema, the backup they need, and the
two-step rollback that `airflow-gitops rollback` writes when a revert would lower the schema.

Why two steps: only the newer release's code knows how to undo its own migrations (the older one fails with
"Can't locate revision"), and the newer image is the one Git holds at rollback time. So step 1 keeps that image,
stops every Airflow component and makes the chart's migrate Job run `airflow db downgrade --to-version <older>`;
step 2 is the revert. Both are commits: reviewed, audited, revertable, and nothing is recorded on the cluster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from airflow_gitops import airflow_versions
from airflow_gitops.helm_controller.values import compose
from airflow_gitops.kustomize_controller.api import Kustomization, kustomizations
from airflow_gitops.model import ERROR, ClusterState, Finding, RenderError
from airflow_gitops.pipeline import render_cluster
from airflow_gitops.policy_config import PolicyConfig
from airflow_gitops.settings import Settings
from airflow_gitops.source import git
from airflow_gitops.source.bounds import load_yaml
from airflow_gitops.source.provenance import SourceIndex

# The last valuesFrom layer of the Airflow HelmRelease (apps/base/airflow): empty except during step 1.
LAYER = "charts-values/airflow/schema-rollback.yaml"
LAYER_EMPTY = """\
# Step 1 of a two-step Airflow downgrade, written and removed only by `airflow-gitops rollback` (docs/operate.md
# "Rolling back Airflow"). Empty in normal operation. While a rollback is under way it names the newer Airflow,
# stops every Airflow component, and sets the migrate Job's pod annotation that makes it downgrade.
{}
"""
# The HelmRelease whose annotations the API server's schema guard compares (infrastructure/controllers/base/
# airflow-schema-guard.yaml), and the annotations.
HELMRELEASE_FILE = "apps/base/airflow/helmrelease.yaml"
SCHEMA_VERSION = "airflow-gitops.io/schema-version"
ROLLED_BACK_TO = "airflow-gitops.io/schema-rolled-back-to"
ROLLBACK_TO = "airflow-gitops.io/schema-rollback-to"
# Set with ROLLBACK_TO when the two images' FAB auth manager schemas differ: the FAB revision to go back to first.
ROLLBACK_FAB_TO = "airflow-gitops.io/schema-rollback-fab-to"
# The one on-demand Backup before the latest version change, on clusters that back up (see LAYER's README part).
BACKUP_FILE = "infrastructure/backups/{cluster}/airflow-version-backup.yaml"
BACKUP_FILE_HEADER = """\
# At most one Backup: the one taken before the latest Airflow version change. Its name records the change,
# so a new change is a new object (a Backup runs once), and replacing it prunes only the object: the backup
# itself stays in the object store under the ObjectStore's retention policy. A failed gate is re-armed with a new
# name (`airflow-gitops backup-rearm <cluster>`); a gate leaves this file before that retention deletes its backup,
# or Flux would recreate it as a new backup that holds the next deploy back (`validate --base` says when; docs/operate.md
# "The backup gate"). Written by `airflow-gitops rollback`
# (step 1), or by hand in an upgrade pull request from the YAML that `validate --base` prints.
"""
# The chart's Deployments/StatefulSets of Airflow components; worker pods are started only by the scheduler.
COMPONENTS = ("scheduler", "apiServer", "dagProcessor", "triggerer")
_ROLLBACK_OF = re.compile(r"airflow-gitops rollback ([0-9a-f]{7,40})")
CNPG_API = "postgresql.cnpg.io/v1"

# Every phase of a CloudNativePG 1.30 Backup (cloudnative-pg api/v1/backup_types.go, BackupPhase*), and what it
# means for the gate. tests/gitops/test_backup_gate.py reads the constants from the Go module and fails on a phase
# missing here.
#   failed: terminal; the backup controller returns at once for it (internal/controller/backup_controller.go).
#   invalid backup definition: the admission guard's verdict on a spec that is immutable (the CRD's
#     `oldSelf == self`): it is checked again on every reconcile and stays, and it counts as pending in
#     CanExecuteBackup, so it also holds every later Backup of the cluster until it is deleted.
#   walArchivingFailing: set by the in-tree barmanObjectStore method when WAL archiving does not work; the backup
#     never starts and is requeued every 10 minutes without progress (pkg/management/postgres/backup.go).
BACKUP_PHASES = {
    "": "in progress",  # no status yet
    "pending": "in progress",
    "started": "in progress",
    "running": "in progress",
    "finalizing": "in progress",
    "completed": "done",
    "failed": "failed",
    "walArchivingFailing": "failed",
    "invalid backup definition": "failed",
}
BACKUP_FAILED_PHASES = tuple(phase for phase, state in BACKUP_PHASES.items() if state == "failed")
BACKUP_CURRENT_EXPR = "has(status.phase) && status.phase == 'completed'"
BACKUP_FAILED_EXPR = ("has(status.phase) && status.phase in ["
                      + ", ".join(f"'{phase}'" for phase in BACKUP_FAILED_PHASES) + "]")


def fab_target(from_version: str, to_version: str) -> str | None:
    """The FAB schema revision of `to_version`'s image, when the two images' FAB heads differ (`db downgrade` moves
    the core only; the migrate Job's script runs `airflow fab-db downgrade --to-revision` to it first); None when
    they are equal. UnknownFabSchema when either image's FAB provider is unknown (IMAGE_FAB_PROVIDER)."""
    if not airflow_versions.fab_heads_differ(from_version, to_version):
        return None
    target = airflow_versions.fab_migration_head(to_version)
    if target is None or airflow_versions.fab_migration_head(from_version) is None:
        unknown = [v for v in (from_version, to_version) if airflow_versions.fab_migration_head(v) is None]
        raise UnknownFabSchema(
            f"the FAB auth manager's schema of Airflow {' and '.join(unknown)} is unknown: `db downgrade` does not "
            "move FAB's schema, so the rollback must know the FAB provider each image carries; add it to "
            "IMAGE_FAB_PROVIDER in scripts/airflow_gitops/airflow_versions.py (the pin of that release's "
            "constraints file)")
    return target


class UnknownFabSchema(ValueError):
    pass


def step1_layer(from_version: str, to_version: str, commit: str) -> str:
    """The values layer of step 1: the newer Airflow named outright (so it holds whatever the other values files say,
    e.g. after a plain revert already landed), every component at 0, and the migrate Job's pod annotation that makes
    its script (charts-values/airflow/common.yaml) downgrade to `to_version` with `from_version`'s code."""
    values: dict[str, Any] = {"airflowVersion": from_version, "defaultAirflowTag": from_version}
    values |= {name: {"replicas": 0} for name in COMPONENTS}
    annotations = {ROLLBACK_TO: to_version}
    fab = fab_target(from_version, to_version)
    if fab is not None:
        annotations[ROLLBACK_FAB_TO] = fab
    values["migrateDatabaseJob"] = {"annotations": annotations}
    header = (f"# Step 1 of 2 of `airflow-gitops rollback {commit}` (docs/operate.md \"Rolling back Airflow\"):\n"
              f"# Airflow {from_version} -> {to_version}. Keeps the {from_version} image, stops every component (no "
              f"scheduler: no new worker pods),\n# and downgrades the schema with {from_version}'s own code. Step 2 "
              "empties this file again.\n")
    return header + yaml.safe_dump(values, sort_keys=False, width=1_000_000)


def layer_target(text: str | None) -> str | None:
    """The version a step-1 layer downgrades to, or None for the normal (empty) layer."""
    try:
        values = load_yaml(text or "") or {}
    except yaml.YAMLError:
        return None
    job = (values.get("migrateDatabaseJob") or {}) if isinstance(values, dict) else {}
    annotations = (job.get("annotations") or {}) if isinstance(job, dict) else {}
    target = annotations.get(ROLLBACK_TO) if isinstance(annotations, dict) else None
    return str(target) if target else None


def layer_commit(text: str | None) -> str | None:
    """The commit a step-1 layer rolls back, from its header."""
    match = _ROLLBACK_OF.search(text or "")
    return match.group(1) if match else None


def set_annotation(text: str, key: str, value: str | None) -> str:
    """The HelmRelease file's text with metadata annotation `key` set to `value` (None: removed), comments kept.
    The file keeps its annotations under `metadata.annotations` with four spaces; anything else is an error."""
    lines = text.splitlines(keepends=True)
    try:
        start = lines.index("  annotations:\n", lines.index("metadata:\n"))
    except ValueError:
        raise RenderError(f"{HELMRELEASE_FILE}: no metadata.annotations block to write {key} into",
                          HELMRELEASE_FILE) from None
    end = start + 1
    while end < len(lines) and (lines[end].startswith("    ") or lines[end].strip().startswith("#")):
        end += 1
    block = [line for line in lines[start + 1:end] if not line.startswith(f"    {key}:")]
    if value is not None:
        block.append(f'    {key}: "{value}"\n')
    return "".join([*lines[:start + 1], *block, *lines[end:]])


def annotation(text: str, key: str) -> str | None:
    try:
        obj = load_yaml(text) or {}
    except yaml.YAMLError:
        return None
    found = ((obj.get("metadata") or {}).get("annotations") or {}).get(key) if isinstance(obj, dict) else None
    return str(found) if found is not None else None


def backup_name(cluster_name: str, from_version: str, to_version: str) -> str:
    return f"{cluster_name}-airflow-{from_version}-to-{to_version}".replace(".", "-").lower()


def backup_object(database: dict[str, Any], from_version: str, to_version: str) -> dict[str, Any]:
    """An on-demand Backup with the method the database's Cluster is configured for."""
    meta, spec = database.get("metadata") or {}, database.get("spec") or {}
    backup_spec: dict[str, Any] = {"cluster": {"name": meta.get("name")}}
    archiver = next((p for p in spec.get("plugins") or [] if p.get("isWALArchiver")), None)
    if archiver:
        backup_spec |= {"method": "plugin", "pluginConfiguration": {"name": archiver.get("name")}}
    else:
        backup_spec["method"] = "barmanObjectStore"
    return {"apiVersion": CNPG_API, "kind": "Backup",
            "metadata": {"name": backup_name(str(meta.get("name")), from_version, to_version),
                         "namespace": meta.get("namespace")},
            "spec": backup_spec}


def backup_file_text(backup: dict[str, Any]) -> str:
    return BACKUP_FILE_HEADER + yaml.safe_dump(backup, sort_keys=False)


_REARMED = re.compile(r"^(?P<base>.+)-rearm-(?P<n>\d+)$")


class CannotRearm(ValueError):
    pass


def rearmed_name(name: str) -> str:
    """The next name of a gate Backup: `<name>-rearm-2`, then `-rearm-3` ..."""
    match = _REARMED.match(name)
    return f"{match['base']}-rearm-{int(match['n']) + 1}" if match else f"{name}-rearm-2"


def rearm(text: str, path: str) -> tuple[str, str, str]:
    """The gate file with its one Backup renamed (same spec): (new text, old name, new name).

    A Backup runs once, and CloudNativePG never retries a failed one (its spec is immutable, the CRD's
    `oldSelf == self`), so the gate is re-armed with a new object. The file holds only that object, so Flux prunes the
    failed one in the same reconcile; that matters, because a Backup left in `invalid backup definition` counts as
    pending and would hold the new one back (CanExecuteBackup in cloudnative-pg api/v1/backup_funcs.go)."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as error:
        raise CannotRearm(f"{path}: not YAML: {error}") from None
    backups = [d for d in docs if isinstance(d, dict) and d.get("kind") == "Backup" and d.get("apiVersion") == CNPG_API]
    if len(docs) != 1 or len(backups) != 1:
        raise CannotRearm(f"{path}: holds {len(backups)} Backup(s) and {len(docs) - len(backups)} other object(s); "
                          "a gate file holds exactly one CloudNativePG Backup (nothing to re-arm when it is empty)")
    backup: dict[str, Any] = backups[0]
    meta: dict[str, Any] = backup["metadata"] if isinstance(backup.get("metadata"), dict) else {}
    old = str(meta.get("name") or "")
    if not old:
        raise CannotRearm(f"{path}: Backup without metadata.name")
    new = rearmed_name(old)
    if len(new) > 253:
        raise CannotRearm(f"{path}: Backup {old}: metadata.name: the re-armed name {new!r} is longer than 253 characters")
    backup["metadata"] = {**meta, "name": new}
    return backup_file_text(backup), old, new


# --- one tree ---------------------------------------------------------------------------------------------

BACKUP_KEY = "backup-before-airflow-change"


@dataclass
class AirflowAt:
    """The Airflow release of one cluster in one tree."""

    cluster: str
    version: str | None
    # The values file that sets airflowVersion, and the HelmRelease: where a finding points.
    file: str
    release: str
    state: ClusterState
    layer_target: str | None
    # airflowVersion as the values files below the step-1 layer set it: a layer left in place hides a revert.
    below_layer: str | None = None


def takes_backup(repo: Path, cluster: str) -> bool:
    """pyproject `[tool.airflow-gitops.policies] backup-before-airflow-change`: clusters with an object store. A
    list that is wrong counts every cluster (policy_config reads it as strictly as it can)."""
    return PolicyConfig.load(repo).cluster_list(BACKUP_KEY).off_reason(cluster) is None


class NoAirflowRelease(RenderError):
    """One side of a change has no Airflow release: there is no version change to judge."""


def airflow_at(settings: Settings, cluster: str, release_name: str = "airflow") -> AirflowAt:
    index = SourceIndex(settings.repo)
    state = render_cluster(settings, cluster, charts=False, index=index)
    hr = next((r for r in state.resources if r.kind == "HelmRelease" and r.name == release_name), None)
    if hr is None:
        raise NoAirflowRelease(f"cluster {cluster} has no HelmRelease {release_name}", f"clusters/{cluster}")
    release = compose(state, index, hr)
    version = release.values.get("airflowVersion")
    file, below = hr.source_file, None
    for values_file in release.values_files:
        try:
            values = load_yaml((settings.repo / values_file).read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(values, dict) and "airflowVersion" in values:
            file = values_file
            if values_file != LAYER:
                below = str(values["airflowVersion"])
    layer = settings.repo / LAYER
    target = layer_target(layer.read_text()) if layer.is_file() else None
    return AirflowAt(cluster, str(version) if version is not None else None, file, hr.ref, state, target, below)


# --- a change between two trees -----------------------------------------------------------------------------


@dataclass
class VersionChange:
    cluster: str
    base: AirflowAt
    head: AirflowAt
    findings: list[Finding] = field(default_factory=list)

    @property
    def old(self) -> str:
        return self.base.version or "?"

    @property
    def new(self) -> str:
        return self.head.version or "?"

    @property
    def direction(self) -> int:
        return airflow_versions.compare(self.new, self.old)

    @property
    def heads_differ(self) -> bool:
        return airflow_versions.heads_differ(self.old, self.new)

    def heads_text(self) -> str:
        old, new = airflow_versions.migration_head(self.old), airflow_versions.migration_head(self.new)
        fab_old, fab_new = (airflow_versions.fab_migration_head(self.old),
                            airflow_versions.fab_migration_head(self.new))
        if not self.heads_differ:
            return f"migration heads equal ({old}, FAB {fab_old}): no schema change"
        return (f"migration heads differ ({old or 'unknown'} -> {new or 'unknown'}, FAB {fab_old or 'unknown'} -> "
                f"{fab_new or 'unknown'})")

    def describe(self, commit_hint: str) -> str:
        if self.direction == 0:
            if self.head.layer_target and not self.base.layer_target:
                return (f"Airflow {self.new} unchanged; rollback step 1: stops Airflow and downgrades the schema to "
                        f"{self.head.layer_target} with {self.new}'s code")
            return f"Airflow {self.new} unchanged"
        verb = "raises" if self.direction > 0 else "lowers"
        text = f"this change {verb} Airflow {self.old} -> {self.new}; {self.heads_text()}; "
        if self.direction > 0 and self.heads_differ:
            text += (f"rolling it back takes two steps: `make rollback SHA={commit_hint}` (stop Airflow, back up, "
                     f"`airflow db downgrade --to-version {self.old}` with {self.new}'s image, then the revert)")
        elif self.direction > 0:
            text += "rolling it back is a plain `git revert` (no-op for the schema)"
        elif self.heads_differ and self.base.layer_target == self.new:
            text += f"step 2 of a rollback: the schema was downgraded to {self.new} in step 1"
        elif self.heads_differ:
            text += "a plain revert leaves every pod stuck in Init: use the two-step rollback"
        else:
            text += "a plain revert is enough (no-op for the schema)"
        return text


def analyse(base: Settings, head: Settings, cluster: str, base_ref: str, release_name: str = "airflow",
            commit_hint: str | None = None) -> VersionChange:
    change = VersionChange(cluster, airflow_at(base, cluster, release_name), airflow_at(head, cluster, release_name))
    if commit_hint is None and change.direction < 0:
        commit_hint = raising_commit(head.repo, base_ref, change.base.file, change.old)
    hint = commit_hint or "<the commit that raised Airflow>"
    if change.direction < 0 and change.heads_differ and change.base.layer_target != change.new:
        change.findings.append(Finding(
            ERROR, change.head.file, change.head.release, "airflowVersion",
            f"lowers Airflow {change.old} -> {change.new} across different migration heads: {change.new} cannot start "
            f"on a database that {change.old} has migrated (check-migrations times out, `db migrate` fails with "
            f"\"Can't locate revision\"). Only {change.old}'s code can downgrade it: run `make rollback SHA={hint}`, "
            f"which commits step 1 (stop Airflow, back up, downgrade to {change.new}) before this revert; "
            f"the base {base_ref} is not that step 1", "airflow-downgrade"))
    at = change.head
    if at.layer_target and change.base.layer_target == at.layer_target and at.below_layer not in (
            None, at.version):
        # The values below the layer moved while step 1's layer stayed: the layer still names the newer Airflow.
        if at.below_layer == at.layer_target:
            change.findings.append(Finding(
                ERROR, LAYER, at.release, f"migrateDatabaseJob.annotations.{ROLLBACK_TO}",
                f"step 2 of the rollback to {at.layer_target} must empty this layer again (`{{}}`): left as it is, "
                "every Airflow component stays at 0 replicas", "airflow-downgrade"))
        else:
            change.findings.append(Finding(
                ERROR, LAYER, at.release, "airflowVersion",
                f"lowers Airflow {at.version} -> {at.below_layer} while step 1 of a rollback to "
                f"{at.layer_target} is in Git ({LAYER}): finish that rollback (`make rollback`, which resumes it) or "
                "undo it (`make rollback ARGS=--abort`) first", "airflow-downgrade"))
    backup_due = (change.direction > 0
                    or (change.direction == 0 and change.head.layer_target and not change.base.layer_target))
    if backup_due and takes_backup(head.repo, cluster):
        change.findings += backup_findings(change)
    elif takes_backup(head.repo, cluster):
        change.findings += expired_gate_findings(change, head.repo, base_ref)
    return change


# Days before the ObjectStore's retention window ends at which a gate Backup must leave Git.
GATE_MARGIN_DAYS = 7
_RETENTION = re.compile(r"^([1-9][0-9]*)([dwm])$")
_RETENTION_DAYS = {"d": 1, "w": 7, "m": 28}  # a month counted short: the check fires early, never late


def retention_days(state: ClusterState, database: dict[str, Any]) -> int | None:
    """The recovery window, in days, of the ObjectStore the Cluster archives to (barman-cloud plugin)."""
    spec = database.get("spec") or {}
    archiver = next((p for p in spec.get("plugins") or [] if isinstance(p, dict) and p.get("isWALArchiver")), None)
    store_name = ((archiver or {}).get("parameters") or {}).get("barmanObjectName")
    store = next((r for r in state.resources if r.kind == "ObjectStore" and r.name == store_name
                  and r.namespace == (database.get("metadata") or {}).get("namespace")), None)
    match = _RETENTION.match(str(((store.obj.get("spec") or {}) if store else {}).get("retentionPolicy") or ""))
    return int(match.group(1)) * _RETENTION_DAYS[match.group(2)] if match else None


def expired_gate_findings(change: VersionChange, repo: Path, base_ref: str) -> list[Finding]:
    """A gate Backup kept in Git past its backup's life is recreated by Flux and holds `apps` back: it must go.

    The barman-cloud plugin's retention deletes the backups that fall out of the recovery window, and then every
    completed Backup object whose backup is no longer in the catalog (plugin-barman-cloud
    internal/cnpgi/instance/retention.go, deleteBackupsNotInCatalog). Flux then creates the gate's Backup again
    from Git (kustomize-controller applies every object of `db-backup` at each reconcile): a new base backup under
    the old change's name, whose backupId would mislead a restore, and which `db-backup` waits for, holding back the
    next deploy. So a gate leaves Git before that: once the commit that wrote it has been on the base branch for the
    recovery window less GATE_MARGIN_DAYS, a change that keeps it is refused. Dates are commit dates of the base,
    never the clock: the same history always gives the same answer."""
    path = BACKUP_FILE.format(cluster=change.cluster)
    base_state, head_state = change.base.state, change.head.state
    kept = [r for r in head_state.resources if r.kind == "Backup" and r.api_version == CNPG_API
            and r.source_file == path and base_state.find("Backup", r.name, r.namespace) is not None]
    database = next((r for r in base_state.resources if r.kind == "Cluster" and r.api_version == CNPG_API), None)
    window = retention_days(base_state, database.obj) if database else None
    if not kept or window is None:
        return []
    try:
        written = int(git.output(repo, "log", "--first-parent", "-1", "--format=%ct", base_ref, "--", path) or 0)
        now = int(git.output(repo, "log", "-1", "--format=%ct", base_ref) or 0)
    except git.GitError:
        return []
    age_days = (now - written) / 86400
    if not written or age_days < window - GATE_MARGIN_DAYS:
        return []
    return [Finding(ERROR, path, kept[0].ref, "metadata.name",
                    f"this backup gate was written {age_days:.0f} days before the base's latest commit; the "
                    f"ObjectStore keeps backups {window} days, after which the barman-cloud plugin deletes this Backup "
                    "and Flux recreates it: a new base backup under an old change's name that holds the next deploy "
                    f"back. Its job is done: empty {path} (keep its comment header) in this change",
                    "airflow-backup")]


def backup_findings(change: VersionChange) -> list[Finding]:
    """A version change (or step 1) on a backing-up cluster brings a new Backup that gates the release."""
    to_version = change.head.layer_target or change.new
    state = change.head.state
    database = next((r for r in state.resources if r.kind == "Cluster" and r.api_version == CNPG_API), None)
    if database is None:
        return [Finding(ERROR, change.head.file, change.head.release, "airflowVersion",
                        f"cluster {change.cluster} must back up before an Airflow version change, but it has no "
                        "CloudNativePG Cluster", "airflow-backup")]
    expected = backup_object(database.obj, change.old, to_version)
    path = BACKUP_FILE.format(cluster=change.cluster)
    old_names = {r.name for r in change.base.state.resources if r.kind == "Backup"}
    backups = [r for r in state.resources if r.kind == "Backup" and r.api_version == CNPG_API
               and r.name not in old_names]
    gated = gating_kustomizations(state, change.head.release)
    for backup in backups:
        applier = backup.applied_by.removeprefix("Kustomization ")
        if applier in gated and backup_health_checked(state, applier):
            return []
    why = ("no new CloudNativePG Backup" if not backups else
           f"Backup {backups[0].name} is not applied by a Kustomization that the release's Kustomization dependsOn "
           f"with a healthCheckExprs entry for Backup that waits for `{BACKUP_CURRENT_EXPR}` and fails on "
           f"`{BACKUP_FAILED_EXPR}`")
    return [Finding(ERROR, change.head.file, change.head.release, "airflowVersion",
                    f"changing Airflow {change.old} -> {to_version} on {change.cluster} needs a database backup that "
                    f"completes before the migration, and there is {why}. Put this in {path}:", "airflow-backup",
                    detail=backup_file_text(expected).rstrip("\n"))]


def gating_kustomizations(state: ClusterState, release_ref: str) -> set[str]:
    """Every Kustomization (namespace/name) the release's own Kustomization depends on, transitively."""
    by_id = {ks.id: ks for ks in kustomizations(state.resources)}
    hr = next((r for r in state.resources if r.ref == release_ref), None)
    start = hr.applied_by.removeprefix("Kustomization ") if hr else ""
    seen: set[str] = set()
    todo = [start]
    while todo:
        ks = by_id.get(todo.pop())
        if ks is None:
            continue
        for name in ks.depends_on:
            if name not in seen:
                seen.add(name)
                todo.append(name)
    return seen


def backup_health_checked(state: ClusterState, applier: str) -> bool:
    """The Kustomization waits for its Backups to complete, and fails at once on every terminal failure phase
    (a gate that only times out holds every later deploy for its whole timeout)."""
    namespace, _, name = applier.partition("/")
    found = state.find("Kustomization", name, namespace)
    ks = Kustomization.parse(found) if found else None
    return ks is not None and ks.wait and any(
        check.kind == "Backup" and "'completed'" in (check.current or "")
        and all(f"'{phase}'" in (check.failed or "") for phase in BACKUP_FAILED_PHASES)
        for check in ks.health_check_exprs)


def raising_commit(repo: Path, ref: str, file: str, version: str) -> str | None:
    """The newest commit at or below `ref` that set `airflowVersion` in `file` to `version`: what to roll back."""
    for sha in git.commits_changing(repo, ref, file, "airflowVersion"):
        if _version_in(repo, f"{sha}:{file}") == version and _version_in(repo, f"{sha}^:{file}") != version:
            return sha[:12]
    return None


def _version_in(repo: Path, blob: str) -> str | None:
    shown = git.show(repo, blob)
    try:
        values = load_yaml(shown) if shown is not None else None
    except yaml.YAMLError:
        return None
    return str(values.get("airflowVersion")) if isinstance(values, dict) and "airflowVersion" in values else None
