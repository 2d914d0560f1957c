"""Operating a live cluster: plans of exact commands that the Operate subcommands print (--dry-run) or run.

A plan is a list of actions. Printing and running walk the same list, so the dry run shows exactly what runs.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from airflow_gitops.kustomize_controller.api import kustomizations
from airflow_gitops.kustomize_controller.reconcile import BOOTSTRAP_SOURCE
from airflow_gitops.pipeline import render_cluster
from airflow_gitops.settings import Settings
from airflow_gitops.source.git import unmerged_files

FLUX_NAMESPACE = "flux-system"
# One `flux reconcile` or `kubectl wait` may take as long as the slowest health check it waits for
# (the eks db-backup Kustomization allows 60 m for a base backup).
WAIT_TIMEOUT = "60m"


@dataclass
class Run:
    argv: list[str]
    # Paths whose merge conflicts the following actions resolve (a revert that meets step-1 files).
    resolves_conflicts_in: list[str] = field(default_factory=list)

    def show(self) -> str:
        return shlex.join(self.argv)


@dataclass
class Write:
    path: str
    text: str

    def show(self) -> str:
        return f"write {self.path}:\n" + "".join(f"    | {line}\n" for line in self.text.splitlines()).rstrip("\n")


@dataclass
class Note:
    text: str

    def show(self) -> str:
        return f"# {self.text}"


Action = Run | Write | Note


class PlanFailed(Exception):
    pass


def show(plan: list[Action]) -> str:
    return "\n".join(action.show() for action in plan)


def commands(plan: list[Action]) -> list[str]:
    """The command lines of a plan, as the dry run prints them (what the tests compare)."""
    return [action.show() for action in plan if isinstance(action, Run)]


def execute(plan: list[Action], repo: Path, timeout: float = 4 * 3600) -> None:
    for action in plan:
        print(action.show(), flush=True)
        if isinstance(action, Note):
            continue
        if isinstance(action, Write):
            (repo / action.path).parent.mkdir(parents=True, exist_ok=True)
            (repo / action.path).write_text(action.text)
            continue
        result = subprocess.run(action.argv, cwd=repo, timeout=timeout)
        if result.returncode == 0:
            continue
        if action.resolves_conflicts_in:
            unmerged = unmerged_files(repo)
            if unmerged and set(unmerged) <= set(action.resolves_conflicts_in):
                print(f"# conflicts only in {', '.join(unmerged)}: resolved by the next steps", flush=True)
                continue
            subprocess.run(["git", "revert", "--abort"], cwd=repo, timeout=60)
            raise PlanFailed(f"`{action.show()}` conflicts in {', '.join(unmerged) or '?'}; aborted, nothing "
                             "was committed. Resolve by hand or roll back the later commits first.")
        raise PlanFailed(f"`{action.show()}` failed with exit code {result.returncode}")


def kustomization_chain(settings: Settings, cluster: str) -> list[str]:
    """The cluster's Flux Kustomizations in dependsOn order (clusters/<cluster>), the bootstrap one first."""
    state = render_cluster(settings, cluster, charts=False)
    depends: dict[str, list[str]] = {}
    for ks in kustomizations(state.resources):
        # reconcile_plan names each one in flux-system, so by name alone (depends_on holds "namespace/name").
        depends[ks.name] = [dependency.rpartition("/")[2] for dependency in ks.depends_on]
    chain = [BOOTSTRAP_SOURCE]
    while len(chain) < len(depends) + 1:
        ready = [name for name, deps in depends.items()
                 if name not in chain and all(d in chain or d not in depends for d in deps)]
        if not ready:  # a cycle: `validate` reports it; reconcile the rest in file order
            ready = [name for name in depends if name not in chain]
        chain.extend(ready)
    return list(dict.fromkeys(chain))


def reconcile_plan(chain: list[str]) -> list[Action]:
    return [Run(["flux", "reconcile", "kustomization", name, "-n", FLUX_NAMESPACE, "--with-source",
                 f"--timeout={WAIT_TIMEOUT}"]) for name in chain]


def status_plan(namespace: str, release: str) -> list[Action]:
    history = ('{range .status.history[*]}{.version}{"\\t"}{.status}{"\\t"}{.chartName}-{.chartVersion}{"\\t"}'
               '{.appVersion}{"\\t"}{.lastDeployed}{"\\n"}{end}')
    return [
        Run(["flux", "get", "all", "-A"]),
        Run(["kubectl", "get", "pods", "-n", namespace, "-l", f"release={release}", "-o", "wide"]),
        Note(f"the last Helm releases of {namespace}/{release} (revision, status, chart, app version, deployed), "
             "newest first, as helm-controller records them"),
        Run(["kubectl", "get", "helmrelease", release, "-n", namespace, "-o", f"jsonpath={history}"]),
    ]


def wait_release_ready(namespace: str, release: str) -> list[Action]:
    return [Run(["kubectl", "wait", "--for=condition=Ready", f"helmrelease/{release}", "-n", namespace,
                 f"--timeout={WAIT_TIMEOUT}"])]


def add_dry_run(parser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="print the exact commands, run nothing")


def run_or_print(plan: list[Action], repo: Path, dry_run: bool) -> int:
    if dry_run:
        print(show(plan))
        return 0
    try:
        execute(plan, repo)
    except (PlanFailed, FileNotFoundError, subprocess.TimeoutExpired) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
