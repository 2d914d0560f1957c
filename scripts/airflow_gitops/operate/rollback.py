"""The plan of `rollback [COMMIT]`: undo a deploy commit on the live clusters by revert; an Airflow downgrade in two
steps that survive failure. commands/rollback.py prints it (--dry-run) or runs it.

Equal Airflow versions or equal migration heads: one revert. A revert that would lower Airflow across different
heads takes two steps (docs/operate.md "Rolling back Airflow", docs/choices.md):

- step 1 commits the schema-rollback values layer (the newer Airflow named outright, every component at 0, the
  migrate Job's pod annotation that makes it downgrade with the newer code) and the HelmRelease annotation
  `schema-rolled-back-to`, plus, on clusters that back up, a CloudNativePG Backup that gates the release;
- step 2 reverts COMMIT (or, when a later commit makes the revert conflict, only its Airflow version), empties the
  layer and lowers the HelmRelease's `schema-version`. Each cluster's API server refuses step 2 until its own
  step 1 is Ready (infrastructure/controllers/base/airflow-schema-guard.yaml), whatever this tool does.

Every run reads where the rollback stands from Git, so it resumes: HEAD holding step 1 of COMMIT continues with
step 2; HEAD holding a plain revert of COMMIT that the API server refused (it landed past `validate --base`) is
finished the same way, with step 1 naming the newer Airflow again. `--abort` undoes a step 1 whose downgrade failed.
Before anything is pushed the run refuses what it could not finish: a dirty tree, a local branch behind or ahead of
the remote, a revert that conflicts, a live cluster that follows another branch, a direct push to a branch that
needs reviews. Each step goes the way every change goes (a pull request, `--via pull-request`, the default), or
straight to the branch (`--via push`) where nothing protects it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from airflow_gitops import airflow_versions
from airflow_gitops.model import RenderError
from airflow_gitops.operate import downgrade
from airflow_gitops.operate.plans import Action, Note, PlanFailed, Run, Write, kustomization_chain
from airflow_gitops.pipeline import render_cluster
from airflow_gitops.settings import Settings
from airflow_gitops.source import git as source_git
from airflow_gitops.source.git import base_tree
from airflow_gitops.source.repository import cluster_names

DEPLOY_PATHS = ["clusters", "infrastructure", "apps", "charts-values"]
FLUX_NAMESPACE = "flux-system"
# The chart Jobs whose pod templates a rollback changes; a finished one blocks that change ("field is immutable").
# The chart's Jobs, by their `component` label (templates/jobs/*.yaml; tests/gitops/test_rollback_jobs.py reads them
# from the rendered chart).
CHART_JOBS = ("run-airflow-migrations", "create-user-job")
# Files whose conflicts a revert inside a rollback resolves itself (it writes them afterwards).
ROLLBACK_FILES = (downgrade.LAYER, downgrade.HELMRELEASE_FILE)
VERSION_KEYS = ("airflowVersion", "defaultAirflowTag")
PUSH_ATTEMPTS = 3
POLL_S = 5.0


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


# --- what is rolled back, and where it stands -----------------------------------------------------------------


@dataclass
class ClusterChange:
    cluster: str
    new: str  # B: Airflow at COMMIT
    old: str  # A: Airflow at COMMIT^, what the rollback goes back to

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


@dataclass
class Target:
    """A live cluster the run supervises: its folder in clusters/, and the kubectl context that reaches it."""

    cluster: str
    context: str | None = None

    def kube(self) -> list[str]:
        return ["--context", self.context] if self.context else []


@dataclass
class Options:
    remote: str = "origin"
    branch: str = "main"
    namespace: str = "airflow"
    release: str = "airflow"
    via: str = "pull-request"  # or "push"
    targets: list[Target] = field(default_factory=list)
    abort: bool = False
    timeout_s: float = 4 * 3600
    # What the run reads from the live clusters (None in a dry run: nothing is asked).
    live: bool = True


@dataclass
class Situation:
    sha: str
    subject: str
    parents: list[str]
    changes: list[ClusterChange]
    # Where HEAD stands: "fresh" (COMMIT still in effect), "reverted" (a plain revert of COMMIT landed),
    # "step1" (HEAD holds step 1 of this rollback).
    phase: str
    new_version: str = ""
    old_version: str = ""

    @property
    def two_steps(self) -> bool:
        return any(change.two_steps for change in self.changes)


def situation(settings: Settings, commit: str, release: str) -> Situation:
    repo = settings.repo
    sha = resolve(repo, commit)
    parents = git(repo, "rev-list", "--parents", "-n", "1", sha).split()[1:]
    if not parents:
        raise Refused(f"{sha[:12]} is the root commit: there is nothing to go back to")
    subject = git(repo, "log", "-1", "--format=%s", sha)
    changes: list[ClusterChange] = []
    heads: dict[str, str] = {}
    with base_tree(settings, sha) as new, base_tree(settings, f"{sha}^1") as old:
        for name in cluster_names(repo):
            if not (new.repo / "clusters" / name).is_dir() or not (old.repo / "clusters" / name).is_dir():
                continue
            at_new, at_old = downgrade.airflow_at(new, name, release), downgrade.airflow_at(old, name, release)
            changes.append(ClusterChange(name, str(at_new.version), str(at_old.version)))
            heads[name] = str(downgrade.airflow_at(settings, name, release).version)
    layer = (repo / downgrade.LAYER).read_text() if (repo / downgrade.LAYER).is_file() else ""
    target, of = downgrade.layer_target(layer), downgrade.layer_commit(layer)
    down = [c for c in changes if c.two_steps]
    result = Situation(sha, subject, parents, changes, "fresh")
    if down:
        pairs = {(c.new, c.old) for c in down}
        unchanged = [c.cluster for c in changes if c.new == c.old]
        if len(pairs) > 1 or unchanged:
            raise Refused("the schema-rollback layer is shared by every cluster, but this commit moves them "
                          f"differently ({'; '.join(c.describe() for c in changes)}): split the change per cluster first")
        result.new_version, result.old_version = pairs.pop()
    if target is not None:
        if of is None or not sha.startswith(of):
            raise Refused(f"{downgrade.LAYER} holds step 1 of `airflow-gitops rollback {of or '?'}` (to {target}): "
                          "finish it (run that rollback again) or undo it (`--abort`) before starting another")
        result.phase = "step1"
        return result
    for change in changes:
        at_head = heads.get(change.cluster)
        if at_head == change.new or change.new == change.old:
            continue
        if at_head == change.old and change.two_steps:
            result.phase = "reverted"
            continue
        raise Refused(f"{change.cluster}: HEAD runs Airflow {at_head}, not {change.new} as at {sha[:12]}: a later "
                      "commit changed Airflow again; roll that one back first")
    return result


# --- reading the live clusters --------------------------------------------------------------------------------


def kubectl(target: Target, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run(["kubectl", *target.kube(), *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise PlanFailed(f"kubectl {' '.join(args)} on {target.cluster}: {result.stderr.strip()}")
    return result


def followed_branch(target: Target) -> str | None:
    """The branch the cluster's Flux source follows, read from the cluster (on kind, cluster-vars-local decides)."""
    result = kubectl(target, "get", "gitrepository", "flux-system", "-n", FLUX_NAMESPACE,
                     "-o", "jsonpath={.spec.ref.branch}", check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def helmrelease(target: Target, options: Options) -> dict:
    return json.loads(kubectl(target, "get", "helmrelease", options.release, "-n", options.namespace,
                              "-o", "json").stdout)


def _ready_for_spec(obj: dict) -> bool:
    status = obj.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return ready and status.get("observedGeneration") == obj["metadata"].get("generation")


def wait_live(targets: list[Target], options: Options, what: str, test: Callable[[dict], bool]) -> None:
    """Until every target's HelmRelease passes `test` and is Ready for its spec; names what it waits for."""
    started = time.monotonic()
    pending = list(targets)
    while pending:
        for target in list(pending):
            obj = helmrelease(target, options)
            if test(obj) and _ready_for_spec(obj):
                print(f"# {target.cluster}: {what} after {time.monotonic() - started:.0f} s", flush=True)
                pending.remove(target)
        if pending and time.monotonic() - started > options.timeout_s:
            names = ", ".join(t.cluster for t in pending)
            raise PlanFailed(f"{names}: not {what} after {options.timeout_s:.0f} s; the step is in Git: fix the cause "
                             "and run the same `make rollback` again to resume")
        if pending:
            time.sleep(POLL_S)


def delete_finished_jobs(targets: list[Target], options: Options) -> None:
    """The chart's finished Jobs, deleted so that the next upgrade may change their pod templates. A Job still
    running (a migration) is waited for, never deleted: it holds the schema's lock."""
    for target in targets:
        while True:
            jobs = json.loads(kubectl(target, "get", "jobs", "-n", options.namespace, "-l", f"release={options.release}",
                                      "-o", "json").stdout).get("items", [])
            ours = [j for j in jobs if (j["metadata"].get("labels") or {}).get("component") in CHART_JOBS]
            running = [j["metadata"]["name"] for j in ours if not _finished(j)]
            for job in ours:
                if _finished(job):
                    kubectl(target, "delete", "job", job["metadata"]["name"], "-n", options.namespace,
                            "--wait=true", "--ignore-not-found")
            if not running:
                break
            print(f"# {target.cluster}: waiting for the running Job(s) {', '.join(running)} to finish", flush=True)
            time.sleep(POLL_S)


def _finished(job: dict) -> bool:
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
               for c in (job.get("status") or {}).get("conditions") or [])


def reconcile(targets: list[Target], chain: list[str]) -> None:
    for target in targets:
        for name in chain:
            result = subprocess.run(["flux", *target.kube(), "reconcile", "kustomization", name, "-n", FLUX_NAMESPACE,
                                     "--with-source", "--timeout=60m"], capture_output=True, text=True, timeout=3700)
            if result.returncode != 0:
                # A Kustomization the schema guard holds (step 2 before its step 1) fails here and retries on its
                # own; the wait that follows is what decides.
                print(f"# {target.cluster}: flux reconcile kustomization {name}: "
                      f"{(result.stderr or result.stdout).strip().splitlines()[-1:]}", flush=True)


# --- writing and publishing a step ------------------------------------------------------------------------------


def write_annotations(repo: Path, schema_version: str, rolled_back_to: str | None) -> None:
    path = repo / downgrade.HELMRELEASE_FILE
    text = downgrade.set_annotation(path.read_text(), downgrade.SCHEMA_VERSION, schema_version)
    path.write_text(downgrade.set_annotation(text, downgrade.ROLLED_BACK_TO, rolled_back_to))


def revert_or_version_only(repo: Path, sha: str, parents: list[str], new: str, old: str) -> str:
    """`git revert --no-commit COMMIT`; when it conflicts outside the files the rollback writes itself, only the
    Airflow version lines COMMIT changed go back (what step 2 cannot do without), and the rest of COMMIT is left
    for a pull request. Returns a sentence for the commit message."""
    argv = ["git", "revert", "--no-commit", *(["-m", "1"] if len(parents) > 1 else []), sha]
    result = subprocess.run(argv, cwd=repo, capture_output=True, text=True, timeout=120)
    if result.returncode == 0:
        return f"This reverts commit {sha}."
    unmerged = set(git(repo, "diff", "--name-only", "--diff-filter=U").split())
    if unmerged and unmerged <= set(ROLLBACK_FILES):
        for path in unmerged:  # rewritten by the caller; take HEAD's side for now
            git(repo, "checkout", "--ours", "--", path)
            git(repo, "add", path)
        return f"This reverts commit {sha}."
    subprocess.run(["git", "revert", "--abort"], cwd=repo, capture_output=True, timeout=60)
    changed = git(repo, "diff", "--name-only", f"{sha}^1", sha).split()
    for path in changed:
        file = repo / path
        if not file.is_file() or not (path.startswith("charts-values/") or path == "pyproject.toml"):
            continue
        lines = file.read_text().splitlines(keepends=True)
        edited = [_version_line(line, new, old) for line in lines]
        if edited != lines:
            file.write_text("".join(edited))
            git(repo, "add", path)
    print(f"# the revert of {sha[:12]} conflicts with later commits ({', '.join(sorted(unmerged))}): only its Airflow "
          f"version goes back ({new} -> {old}); revert the rest in a pull request", flush=True)
    return (f"Only the Airflow version of {sha} goes back: its full revert conflicts with later commits "
            f"({', '.join(sorted(unmerged))}).")


def _version_line(line: str, new: str, old: str) -> str:
    stripped = line.lstrip()
    if stripped.startswith(tuple(f"{key}:" for key in VERSION_KEYS)) or stripped.startswith('"apache-airflow=='):
        return line.replace(new, old)
    return line


def trial_revert(repo: Path, sha: str, parents: list[str]) -> list[str]:
    """The files where a revert of COMMIT on HEAD would conflict (outside the rollback's own files), tried in a
    scratch worktree, before anything is pushed."""
    scratch = Path(tempfile.mkdtemp(prefix="rollback-trial-"))
    try:
        git(repo, "worktree", "add", "-q", "--detach", str(scratch / "tree"), "HEAD")
        argv = ["revert", "--no-commit", *(["-m", "1"] if len(parents) > 1 else []), sha]
        result = subprocess.run(["git", *argv], cwd=scratch / "tree", capture_output=True, text=True, timeout=120)
        if result.returncode == 0:
            return []
        unmerged = git(scratch / "tree", "diff", "--name-only", "--diff-filter=U").split()
        return [path for path in unmerged if path not in ROLLBACK_FILES] or ([] if unmerged else ["(revert failed)"])
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(scratch / "tree")], cwd=repo, capture_output=True,
                       timeout=60)
        shutil.rmtree(scratch, ignore_errors=True)


def publish(repo: Path, options: Options, step: str, landed: Callable[[Path, str], bool]) -> None:
    """The step's commit reaches the followed branch: by a pull request that someone merges (the run waits until
    the branch holds the step: `landed(repo, ref)`, merged or squashed), or pushed straight, rebased onto commits
    that arrived meanwhile."""
    if options.via == "push":
        for attempt in range(1, PUSH_ATTEMPTS + 1):
            pushed = subprocess.run(["git", "push", options.remote, f"HEAD:{options.branch}"], cwd=repo,
                                    capture_output=True, text=True, timeout=300)
            if pushed.returncode == 0:
                print(f"# {step}: pushed to {options.remote}/{options.branch}", flush=True)
                return
            if attempt == PUSH_ATTEMPTS or "rejected" not in pushed.stderr:
                raise PlanFailed(f"git push {options.remote} HEAD:{options.branch}: {pushed.stderr.strip()}")
            print(f"# {step}: the branch moved on; rebasing onto it", flush=True)
            rebased = subprocess.run(["git", "pull", "--rebase", options.remote, options.branch], cwd=repo,
                                     capture_output=True, text=True, timeout=300)
            if rebased.returncode != 0:
                subprocess.run(["git", "rebase", "--abort"], cwd=repo, capture_output=True, timeout=60)
                raise PlanFailed(f"{step}: rebasing onto {options.remote}/{options.branch} conflicts "
                                 f"({rebased.stderr.strip()[-300:]}); nothing of this step was pushed. Run the same "
                                 "`make rollback` again: it resumes from what the branch holds")
    head = git(repo, "rev-parse", "HEAD")
    topic = f"airflow-gitops/rollback-{head[:12]}"
    git(repo, "push", "-q", options.remote, f"HEAD:refs/heads/{topic}")
    title = git(repo, "log", "-1", "--format=%s", "HEAD")
    if shutil.which("gh"):
        subprocess.run(["gh", "pr", "create", "--base", options.branch, "--head", topic, "--title", title, "--body",
                        git(repo, "log", "-1", "--format=%b", "HEAD")], cwd=repo, timeout=120)
    print(f"# {step}: open and merge the pull request of branch {topic} into {options.branch} ({title!r}); "
          "this run waits until the branch holds it", flush=True)
    started = time.monotonic()
    while True:
        subprocess.run(["git", "fetch", "-q", options.remote, options.branch], cwd=repo, capture_output=True,
                       timeout=300)
        if landed(repo, "FETCH_HEAD"):
            git(repo, "reset", "-q", "--hard", "FETCH_HEAD")
            print(f"# {step}: merged into {options.branch} after {time.monotonic() - started:.0f} s", flush=True)
            return
        if time.monotonic() - started > options.timeout_s:
            raise PlanFailed(f"{step}: {topic} is not merged into {options.branch} after {options.timeout_s:.0f} s; "
                             "run the same `make rollback` again once it is")
        time.sleep(POLL_S)


def _file_at(repo: Path, ref: str, path: str) -> str:
    return source_git.show(repo, f"{ref}:{path}") or ""


# --- the plan ---------------------------------------------------------------------------------------------------


@dataclass
class Do:
    """An action that decides at run time (a wait, a publish, an edit of what HEAD holds then)."""

    text: str
    run: Callable[[Path], None]

    def show(self) -> str:
        return f"# {self.text}"


def preflight(settings: Settings, situation_: Situation, options: Options) -> list[str]:
    """What must hold before anything is pushed; the summary lines of what was checked."""
    repo = settings.repo
    lines: list[str] = []
    subprocess.run(["git", "fetch", "-q", options.remote, options.branch], cwd=repo, capture_output=True, timeout=300)
    remote_head = subprocess.run(["git", "rev-parse", "--verify", "-q", "FETCH_HEAD"], cwd=repo, capture_output=True,
                                 text=True).stdout.strip()
    head = git(repo, "rev-parse", "HEAD")
    if remote_head and remote_head != head:
        behind = git(repo, "rev-list", "--count", f"HEAD..{remote_head}")
        ahead = git(repo, "rev-list", "--count", f"{remote_head}..HEAD")
        raise Refused(f"HEAD is {ahead} commit(s) ahead of and {behind} behind {options.remote}/{options.branch}: "
                      "bring it level (pull, or push what is yours) before a rollback")
    if situation_.phase == "fresh":
        conflicts = trial_revert(repo, situation_.sha, situation_.parents)
        if conflicts and not situation_.two_steps:
            raise Refused(f"a revert of {situation_.sha[:12]} conflicts with later commits in {', '.join(conflicts)}: "
                          "resolve it in a pull request")
        if conflicts:
            lines.append(f"a full revert conflicts in {', '.join(conflicts)}: step 2 will put back only the Airflow "
                         "version")
    if options.via == "push":
        lines.append(_push_allowed(repo, options))
    if options.live:
        for target in options.targets:
            followed = followed_branch(target)
            if followed is None:
                raise Refused(f"{target.cluster}: no GitRepository flux-system/flux-system on the cluster "
                              f"(kubectl {' '.join(target.kube()) or 'current context'})")
            if followed != options.branch:
                raise Refused(f"{target.cluster}: Flux follows branch {followed!r} there, not {options.branch!r}")
    others = [c for c in cluster_names(repo) if c not in {t.cluster for t in options.targets}
              and render_cluster(settings, c, charts=False).variables.get("git_branch") == options.branch]
    if others:
        lines.append(f"not supervised here, also following {options.branch}: {', '.join(others)}: their API server holds "
                     "step 2 until their own step 1 is Ready (the schema guard); watch them with `make status`")
    return lines


def _push_allowed(repo: Path, options: Options) -> str:
    url = git(repo, "remote", "get-url", options.remote)
    if "github.com" not in url:
        return f"--via push: {url} is not GitHub; it must accept direct pushes to {options.branch}"
    if not shutil.which("gh"):
        raise Refused(f"--via push to GitHub needs `gh` to check that {options.branch} takes pushes without reviews; "
                      "use --via pull-request (the default)")
    slug = url.rstrip("/").removesuffix(".git").split("github.com")[-1].lstrip(":/")
    result = subprocess.run(["gh", "api", f"repos/{slug}/branches/{options.branch}/protection"], capture_output=True,
                            text=True, timeout=60)
    if result.returncode == 0 and "required_pull_request_reviews" in result.stdout:
        raise Refused(f"{options.branch} requires reviewed pull requests: use --via pull-request (the default)")
    return f"--via push: {options.branch} on {slug} takes direct pushes (no required reviews)"


def plan(settings: Settings, commit: str, options: Options) -> tuple[list[str], list[Action | Do]]:
    """(summary lines, actions) of the rollback of `commit`, from where Git and the clusters stand now."""
    repo = settings.repo
    now = situation(settings, commit, options.release)
    sha = now.sha
    summary = [f"rollback of {sha[:12]} \"{now.subject}\"", *(c.describe() for c in now.changes)]
    if not options.targets:
        raise Refused("name the live cluster(s) with --cluster NAME[=KUBE_CONTEXT]")
    summary.append(f"supervised: {', '.join(t.cluster + (f' ({t.context})' if t.context else '') for t in options.targets)}"
                   f"; each step goes {'by pull request' if options.via == 'pull-request' else 'straight'} to "
                   f"{options.remote}/{options.branch}")
    summary += preflight(settings, now, options) if options.live else []
    chain = kustomization_chain(settings, options.targets[0].cluster)
    targets = options.targets

    def go(step: str, landed: Callable[[Path, str], bool]) -> list[Action | Do]:
        return [Do(f"{step}: publish", lambda r: publish(r, options, step, landed)),
                Do(f"{step}: flux reconcile {' -> '.join(chain)} with their source",
                   lambda r: reconcile(targets, chain))]

    backs_up = {c for c in cluster_names(repo) if downgrade.takes_backup(repo, c)}
    backup_paths = [downgrade.BACKUP_FILE.format(cluster=c) for c in sorted(backs_up)]
    reverted_files = set(git(repo, "diff", "--name-only", f"{sha}^1", sha).split())
    # A revert never brings back an older Backup (it would run again): the backup files stay as HEAD has them,
    # unless this rollback writes a new one.
    keep_backups = [Run(["git", "checkout", "HEAD", "--", path]) for path in backup_paths if path in reverted_files]

    if not now.two_steps:
        if options.abort:
            raise Refused("--abort undoes step 1 of a two-step rollback; this commit needs none")
        raised = [c for c in now.changes if airflow_versions.compare(c.old, c.new) > 0 and c.cluster in backs_up]
        raised_files = [downgrade.BACKUP_FILE.format(cluster=c.cluster) for c in raised]
        return summary + ["one step: a revert (no schema to move back)"], [
            Do("delete the chart's finished Jobs (a Job's pod template cannot change while it exists)",
               lambda r: delete_finished_jobs(targets, options)),
            Run(["git", "revert", "--no-commit", *(["-m", "1"] if len(now.parents) > 1 else []), sha]),
            *(action for action in keep_backups if action.argv[-1] not in raised_files),
            *_backup_writes(settings, raised),
            *([Run(["git", "add", *raised_files])] if raised_files else []),
            Run(["git", "commit", "--no-edit"]),
            *go("revert", lambda r, ref: _reverted(r, ref, sha)),
            Do("wait until the release is Ready for the reverted spec",
               lambda r: wait_live(targets, options, "Ready at the revert", lambda obj: True)),
        ]

    new, old = now.new_version, now.old_version
    new_schema, old_schema = airflow_versions.schema_version(new), airflow_versions.schema_version(old)
    if new_schema is None or old_schema is None:
        raise Refused(f"the migration-heads table knows no schema for Airflow {new if new_schema is None else old}")
    try:
        downgrade.fab_target(new, old)
    except downgrade.UnknownFabSchema as unknown:
        raise Refused(str(unknown)) from None
    body = f"airflow-gitops rollback {sha}"
    layer_1 = downgrade.step1_layer(new, old, sha)

    def rolled_back(obj: dict) -> bool:
        return (obj["metadata"].get("annotations") or {}).get(downgrade.ROLLED_BACK_TO) == old_schema

    def back_on_old(obj: dict) -> bool:
        return (obj["metadata"].get("annotations") or {}).get(downgrade.SCHEMA_VERSION) == old_schema

    if options.abort:
        if now.phase != "step1":
            raise Refused("--abort undoes a step 1 that HEAD holds; HEAD holds none")
        return summary + [f"abort: step 1 undone, Airflow {new} back with `db migrate` (the schema goes back up)"], [
            Do("delete the chart's finished Jobs", lambda r: delete_finished_jobs(targets, options)),
            Write(downgrade.LAYER, downgrade.LAYER_EMPTY),
            Do(f"{downgrade.HELMRELEASE_FILE}: drop {downgrade.ROLLED_BACK_TO}",
               lambda r: write_annotations(r, new_schema, None)),
            Run(["git", "add", downgrade.LAYER, downgrade.HELMRELEASE_FILE]),
            Run(["git", "commit", "-m", f"Abort the rollback of Airflow {new} -> {old}: undo step 1", "-m", body]),
            *go("abort", lambda r, ref: downgrade.layer_target(_file_at(r, ref, downgrade.LAYER)) is None),
            Do(f"wait until the release runs Airflow {new} again",
               lambda r: wait_live(targets, options, f"back on Airflow {new}",
                                   lambda obj: not rolled_back(obj))),
        ]

    backup_files = [downgrade.BACKUP_FILE.format(cluster=c.cluster) for c in now.changes if c.cluster in backs_up]
    actions: list[Action | Do] = []
    if now.phase == "step1":
        summary.append("HEAD holds step 1 of this rollback: resuming with its wait, then step 2")
    else:
        if now.phase == "reverted":
            summary.append(f"HEAD already reverted Airflow to {old} without step 1 (the API server refuses it); step 1 "
                           f"names {new} again, and step 2 needs no revert")
        actions += [
            Note(f"step 1 of 2: Airflow {new} named outright, every component at 0, a backup where the cluster backs "
                 f"up, and the migrate Job downgrading to {old} with {new}'s code"),
            Do("delete the chart's finished Jobs (a Job's pod template cannot change while it exists)",
               lambda r: delete_finished_jobs(targets, options)),
            Write(downgrade.LAYER, layer_1),
            Do(f"{downgrade.HELMRELEASE_FILE}: {downgrade.SCHEMA_VERSION}={new_schema}, "
               f"{downgrade.ROLLED_BACK_TO}={old_schema}", lambda r: write_annotations(r, new_schema, old_schema)),
            *_backup_writes(settings, [c for c in now.changes if c.cluster in backs_up]),
            Run(["git", "add", downgrade.LAYER, downgrade.HELMRELEASE_FILE, *backup_files]),
            Run(["git", "commit", "-m", f"Roll back Airflow {new} -> {old}, step 1 of 2: stop Airflow, downgrade the "
                 "schema", "-m", body]),
            *go("step 1", lambda r, ref: _file_at(r, ref, downgrade.LAYER) == layer_1),
        ]
    actions += [
        Do(f"wait until step 1 is Ready on every supervised cluster: the downgrade to {old} succeeded",
           lambda r: wait_live(targets, options, f"step 1 Ready (schema at {old})", rolled_back)),
        Note(f"step 2 of 2: Airflow {old} again, the layer emptied, the schema-version annotation lowered"),
        Do("delete the chart's finished Jobs", lambda r: delete_finished_jobs(targets, options)),
    ]
    reverted = now.phase == "reverted" or (now.phase == "step1" and _reverted(repo, "HEAD", sha))
    message = [f"This reverts commit {sha}."]
    if not reverted:
        actions.append(Do(f"git revert --no-commit {sha[:12]} (only its Airflow version if later commits conflict)",
                          lambda r: message.__setitem__(0, revert_or_version_only(r, sha, now.parents, new, old))))
    actions += [
        Write(downgrade.LAYER, downgrade.LAYER_EMPTY),
        Do(f"{downgrade.HELMRELEASE_FILE}: {downgrade.SCHEMA_VERSION}={old_schema}, no {downgrade.ROLLED_BACK_TO}",
           lambda r: write_annotations(r, old_schema, None)),
        *(Run(["git", "checkout", "HEAD", "--", path]) for path in backup_files),
        Run(["git", "add", "-A", "--", *DEPLOY_PATHS, "pyproject.toml"]),
        Do(f"git commit: Revert \"{now.subject}\" (Airflow {new} -> {old}, step 2 of 2)",
           lambda r: _commit(r, f'Revert "{now.subject}" (Airflow {new} -> {old}, step 2 of 2)',
                             f"{message[0]}\n\n{body}")),
        *go("step 2", lambda r, ref: downgrade.annotation(_file_at(r, ref, downgrade.HELMRELEASE_FILE),
                                                          downgrade.SCHEMA_VERSION) == old_schema),
        Do(f"wait until the release runs Airflow {old} on every supervised cluster",
           lambda r: wait_live(targets, options, f"Ready on Airflow {old}", back_on_old)),
    ]
    return summary, actions


def _commit(repo: Path, subject: str, body: str) -> None:
    git(repo, "commit", "-m", subject, "-m", body)


def _reverted(repo: Path, ref: str, sha: str) -> bool:
    """Whether `ref` holds a revert of `sha` (git revert's own message line)."""
    return f"This reverts commit {sha}" in git(repo, "log", "--format=%B", "-n", "50", ref)


def _backup_writes(settings: Settings, changes: list[ClusterChange]) -> list[Action | Do]:
    actions: list[Action | Do] = []
    for change in changes:
        state = render_cluster(settings, change.cluster, charts=False)
        found = next((r for r in state.resources if r.kind == "Cluster" and r.api_version == downgrade.CNPG_API), None)
        if found is None:
            raise Refused(f"{change.cluster} must back up before an Airflow version change but has no CloudNativePG "
                          "Cluster")
        path = downgrade.BACKUP_FILE.format(cluster=change.cluster)
        actions.append(Write(path, downgrade.backup_file_text(downgrade.backup_object(found.obj, change.new,
                                                                                      change.old))))
    return actions


def targets_from(values: list[str] | None) -> list[Target]:
    """`--cluster eks=arn:...:cluster/x`, `--cluster kind` (the current context) -> targets."""
    found = []
    for value in values or []:
        name, _, context = value.partition("=")
        found.append(Target(name, context or None))
    return found


def execute(actions: list[Action | Do], repo: Path) -> None:
    from airflow_gitops.operate.plans import execute as run_actions

    for action in actions:
        if isinstance(action, Do):
            print(action.show(), flush=True)
            action.run(repo)
        else:
            run_actions([action], repo)


def check_clean(repo: Path) -> None:
    dirty = git(repo, "status", "--porcelain")
    if dirty:
        raise Refused("the working tree has changes; commit or stash them first:\n" + dirty)


__all__ = ["Options", "Refused", "RenderError", "Target", "execute", "last_deploy_commit", "plan", "targets_from"]
