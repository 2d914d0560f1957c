"""The plan of `rollback [COMMIT]`: undo a deploy commit on the live cluster, by revert; an Airflow downgrade in two
steps. It reads Git only; commands/rollback.py prints or runs it.

Equal Airflow versions or equal migration heads: one plain `git revert`. A revert that would lower Airflow across
different heads: step 1 commits the schema-rollback values layer (same image, every component at 0, the migrate
Job runs `airflow db downgrade --to-version A -y`) plus, on clusters that back up, a CloudNativePG Backup that
gates the release; step 2 reverts COMMIT and empties the layer. Each step is pushed, reconciled and waited for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from airflow_gitops.operate import airflow_versions, downgrade
from airflow_gitops.operate.plans import (
    Action,
    Note,
    Run,
    Write,
    kustomization_chain,
    reconcile_plan,
    wait_jobs_gone,
    wait_release_ready,
)
from airflow_gitops.pipeline import render_cluster
from airflow_gitops.settings import Settings
from airflow_gitops.source import git as source_git
from airflow_gitops.source.git import base_tree
from airflow_gitops.source.repository import cluster_names

DEPLOY_PATHS = ["clusters", "infrastructure", "apps", "charts-values"]


class Refused(Exception):
    pass


def git(repo: Path, *args: str) -> str:
    try:
        return source_git.output(repo, *args)
    except source_git.GitError as error:
        raise Refused(str(error)) from None


def resolve(repo: Path, ref: str) -> str:
    return git(repo, "rev-parse", "--verify", "--end-of-options", f"{ref}^{{commit}}")


def last_deploy_commit(settings: Settings) -> str:
    """The newest first-parent commit whose tree renders differently from its parent's for some cluster."""
    candidates = git(settings.repo, "log", "--first-parent", "--format=%H", "-n", "30", "HEAD", "--",
                     *DEPLOY_PATHS).split()
    for sha in candidates:
        with base_tree(settings, sha) as new, base_tree(settings, f"{sha}^") as old:
            if any(_objects(new, c) != _objects(old, c) for c in cluster_names(new.repo)):
                return sha
    raise Refused("no commit among the last 30 that touched clusters/, infrastructure/, apps/ or charts-values/ "
                  "changes what a cluster renders; name the commit")


def _objects(settings: Settings, cluster: str) -> dict[str, str]:
    if not (settings.repo / "clusters" / cluster).is_dir():
        return {}
    state = render_cluster(settings, cluster, charts=False)
    return {f"{r.kind}/{r.namespace}/{r.name}": repr(r.obj) for r in state.resources}


@dataclass
class ClusterChange:
    cluster: str
    new: str  # B: Airflow at COMMIT, which HEAD still runs
    old: str  # A: Airflow at COMMIT^, what the revert goes back to

    @property
    def two_steps(self) -> bool:
        return airflow_versions.compare(self.new, self.old) > 0 and airflow_versions.heads_differ(self.old, self.new)

    def describe(self) -> str:
        if self.new == self.old:
            return f"{self.cluster}: Airflow {self.new} unchanged by the commit: plain revert, no-op for the schema"
        heads = "migration heads differ" if airflow_versions.heads_differ(self.old, self.new) else \
            "equal migration heads: no-op for the schema"
        how = "two steps (schema first)" if self.two_steps else "plain revert"
        return f"{self.cluster}: Airflow {self.new} -> {self.old}; {heads}; {how}"


def plan(settings: Settings, commit: str, cluster: str | None, remote: str, branch: str, namespace: str,
         release: str) -> tuple[list[str], list[Action]]:
    """(summary lines, actions) of the rollback of `commit`; reads Git only."""
    repo = settings.repo
    sha = resolve(repo, commit)
    parents = git(repo, "rev-list", "--parents", "-n", "1", sha).split()[1:]
    if not parents:
        raise Refused(f"{sha[:12]} is the root commit: there is nothing to go back to")
    subject = git(repo, "log", "-1", "--format=%s", sha)
    changes: list[ClusterChange] = []
    touched: list[str] = []
    with base_tree(settings, sha) as new, base_tree(settings, f"{sha}^1") as old:
        for name in cluster_names(repo):
            if not (new.repo / "clusters" / name).is_dir() or not (old.repo / "clusters" / name).is_dir():
                continue
            at_new, at_old = downgrade.airflow_at(new, name, release), downgrade.airflow_at(old, name, release)
            at_head = downgrade.airflow_at(settings, name, release)
            if at_head.version != at_new.version and at_new.version != at_old.version:
                raise Refused(f"{name}: HEAD runs Airflow {at_head.version}, not {at_new.version} as at {sha[:12]}: "
                              "a later commit changed Airflow again; roll that one back first")
            if at_head.layer_target:
                raise Refused(f"{downgrade.LAYER} holds step 1 of a rollback to {at_head.layer_target}: finish it "
                              "(rollback step 2) before starting another")
            changes.append(ClusterChange(name, str(at_new.version), str(at_old.version)))
            if _objects(new, name) != _objects(old, name):
                touched.append(name)
        databases = {name: _database(new, name) for name in cluster_names(repo) if (new.repo / "clusters" / name).is_dir()}

    summary = [f"rollback of {sha[:12]} \"{subject}\"", *(c.describe() for c in changes)]
    live = cluster or (touched[0] if len(touched) == 1 else None)
    if live is None:
        raise Refused(f"the commit changes clusters {', '.join(touched) or '(none)'}: name the live one with --cluster")
    summary.append(f"live cluster: {live} (kubectl/flux use the current context)")
    backs_up = {c for c in cluster_names(repo) if downgrade.takes_backup(repo, c)}
    chain = kustomization_chain(settings, live)
    push = [Run(["git", "push", remote, f"HEAD:{branch}"]), *reconcile_plan(chain),
            *wait_release_ready(namespace, release)]
    revert = ["git", "revert", "--no-commit", *(["-m", "1"] if len(parents) > 1 else []), sha]

    # A revert never brings back an older Backup (it would run again): the backup files stay as HEAD has them,
    # unless this rollback writes a new one.
    reverted_files = set(git(repo, "diff", "--name-only", f"{sha}^1", sha).split())
    backup_paths = [downgrade.BACKUP_FILE.format(cluster=c) for c in sorted(backs_up)]
    keep_backups = [Run(["git", "checkout", "HEAD", "--", path]) for path in backup_paths if path in reverted_files]

    down = [c for c in changes if c.two_steps]
    if not down:
        actions: list[Action] = [Note("one step: a plain revert (no schema to move back)")]
        actions += [Run(revert, resolves_conflicts_in=backup_paths), *keep_backups]
        raised = [c for c in changes if airflow_versions.compare(c.old, c.new) > 0 and c.cluster in backs_up]
        actions += _backup_writes(raised, databases)
        if raised:
            actions.append(Run(["git", "add", *(downgrade.BACKUP_FILE.format(cluster=c.cluster) for c in raised)]))
        actions += [Run(["git", "commit", "--no-edit"]), *push]
        return summary, actions

    pairs = {(c.new, c.old) for c in down}
    unchanged = [c.cluster for c in changes if c.new == c.old]
    if len(pairs) > 1 or unchanged:
        raise Refused("the schema-rollback layer is shared by every cluster, but this commit moves them differently "
                      f"({'; '.join(c.describe() for c in changes)}): split the change per cluster first")
    new_version, old_version = pairs.pop()
    try:
        downgrade.fab_downgrade(new_version, old_version)
    except downgrade.UnknownFabSchema as unknown:
        raise Refused(str(unknown)) from None
    step1 = f"Roll back Airflow {new_version} -> {old_version}, step 1 of 2: stop Airflow, downgrade the schema"
    step2 = f"Revert \"{subject}\" (Airflow {new_version} -> {old_version}, step 2 of 2)"
    body = f"airflow-gitops rollback {sha}"
    backup_files = [downgrade.BACKUP_FILE.format(cluster=c.cluster) for c in down if c.cluster in backs_up]
    actions = [
        Note(f"step 1 of 2: keep Airflow {new_version}'s image, stop every component, back up, and let the migrate "
             f"Job run `airflow db downgrade --to-version {old_version} -y` with {new_version}'s code"),
        *wait_jobs_gone(namespace, release),
        Write(downgrade.LAYER, downgrade.step1_layer(new_version, old_version, sha)),
        *_backup_writes([c for c in down if c.cluster in backs_up], databases),
        Run(["git", "add", downgrade.LAYER, *backup_files]),
        Run(["git", "commit", "-m", step1, "-m", body]),
        *push,
        Note(f"step 2 of 2: the revert of {sha[:12]}, with the layer emptied again and step 1's Backup kept"),
        *wait_jobs_gone(namespace, release),
        Run(revert, resolves_conflicts_in=[downgrade.LAYER, *backup_paths]),
        *(Run(["git", "checkout", "HEAD", "--", path]) for path in backup_files),
        *(action for action in keep_backups if action.argv[-1] not in backup_files),
        Write(downgrade.LAYER, _layer_at(repo, f"{sha}^1")),
        Run(["git", "add", downgrade.LAYER]),
        Run(["git", "commit", "-m", step2, "-m", f"This reverts commit {sha}.\n\n{body}"]),
        *push,
    ]
    return summary, actions


def _database(settings: Settings, cluster: str) -> dict | None:
    state = render_cluster(settings, cluster, charts=False)
    found = next((r for r in state.resources if r.kind == "Cluster" and r.api_version == downgrade.CNPG_API), None)
    return found.obj if found else None


def _backup_writes(changes: list[ClusterChange], databases: dict[str, dict | None]) -> list[Action]:
    actions: list[Action] = []
    for change in changes:
        database = databases.get(change.cluster)
        if database is None:
            raise Refused(f"{change.cluster} must back up before an Airflow version change but has no CloudNativePG "
                          "Cluster")
        path = downgrade.BACKUP_FILE.format(cluster=change.cluster)
        backup = downgrade.backup_object(database, change.new, change.old)
        actions.append(Write(path, downgrade.backup_file_text(backup)))
    return actions


def _layer_at(repo: Path, ref: str) -> str:
    shown = source_git.show(repo, f"{ref}:{downgrade.LAYER}")
    return shown if shown is not None else downgrade.LAYER_EMPTY


def current_branch(settings: Settings, cluster: str | None) -> str:
    """The checked-out branch, which must be the one Flux follows (`git_branch` in cluster-vars) unless --branch."""
    branch = git(settings.repo, "rev-parse", "--abbrev-ref", "HEAD")
    followed = render_cluster(settings, cluster, charts=False).variables.get("git_branch") if cluster else None
    if followed and "${" not in followed and branch != followed:
        raise Refused(f"the checked-out branch is {branch!r}, but Flux on {cluster} follows {followed!r} "
                      "(cluster-vars git_branch): check out that branch, or name the branch with --branch")
    return branch
