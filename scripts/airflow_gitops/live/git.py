"""Committing to the local cluster's Git as a user does: a clone of its bare repository, edits, `git commit`,
`git revert`, and `git push` to the bare repository by path (the Git server serves that repository read-only to
source-controller, as GitHub serves a repository to Flux).

Flux names a fetched commit `<branch>@sha1:<id>` (GitRepository status.artifact.revision, a Kustomization's
lastAppliedRevision); `flux_revision` gives that name for a commit.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import yaml

from airflow_gitops.live.cluster import BRANCH, LiveError
from airflow_gitops.source.repository import copy_desired_state

AUTHOR = {"GIT_AUTHOR_NAME": "live-test", "GIT_AUTHOR_EMAIL": "live-test@localhost",
          "GIT_COMMITTER_NAME": "live-test", "GIT_COMMITTER_EMAIL": "live-test@localhost"}


def flux_revision(commit: str, branch: str = BRANCH) -> str:
    return f"{branch}@sha1:{commit}"


class WorkClone:
    """A working clone of `bare` in `path`, on the branch Flux follows."""

    def __init__(self, bare: Path, path: Path, branch: str = BRANCH) -> None:
        self.bare, self.path, self.branch = bare, path, branch
        if not (path / ".git").is_dir():
            path.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["git", "clone", "-q", "--branch", branch, str(bare), str(path)], check=True,
                           capture_output=True)

    def git(self, *args: str) -> str:
        result = subprocess.run(["git", "-C", str(self.path), *args], capture_output=True, text=True,
                                env={**os.environ, **AUTHOR})
        if result.returncode != 0:
            raise LiveError(f"git {' '.join(args)} in {self.path}: {result.stderr.strip() or result.stdout.strip()}")
        return result.stdout.strip()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def pull(self) -> None:
        """Bring the clone to the bare repository's branch (another clone may have pushed)."""
        self.git("fetch", "-q", "origin", self.branch)
        self.git("reset", "-q", "--hard", f"origin/{self.branch}")

    def read(self, relative: str) -> str:
        return (self.path / relative).read_text()

    def write(self, relative: str, text: str) -> None:
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def edit(self, relative: str, change: Callable[[str], str]) -> None:
        """Rewrite one file; a change that changes nothing is a mistake in the test, said at once."""
        before = self.read(relative)
        after = change(before)
        if after == before:
            raise LiveError(f"the edit of {relative} changed nothing")
        self.write(relative, after)

    def commit(self, message: str, *, allow_empty: bool = False) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message, *(["--allow-empty"] if allow_empty else []))
        return self.head()

    def revert(self, commit: str) -> str:
        """`git revert --no-edit`: a new commit that undoes `commit`."""
        self.git("revert", "--no-edit", commit)
        return self.head()

    def push(self) -> str:
        """`git push` to the bare repository, by path; returns the pushed commit."""
        self.git("push", "-q", str(self.bare), f"HEAD:refs/heads/{self.branch}")
        return self.head()


AIRFLOW_VALUES = "charts-values/airflow/common.yaml"
AIRFLOW_HELMRELEASE = "apps/base/airflow/helmrelease.yaml"


def desired_state_repository(repo: Path, target: Path) -> Path:
    """`repo`'s desired state copied into `target`, a Git repository of its own on BRANCH (nothing committed yet)."""
    copy_desired_state(repo, target)
    subprocess.run(["git", "init", "-q", "-b", BRANCH, str(target)], check=True, capture_output=True)
    return target


def set_airflow_version(repo: Path, version: str) -> None:
    """What an Airflow bump changes in a working tree: airflowVersion and the image tag in the values, the
    HelmRelease's schema-version annotation, and the Airflow that pyproject.toml pins for the DAG tests."""
    from airflow_gitops import airflow_versions

    current = str(yaml.safe_load((repo / AIRFLOW_VALUES).read_text())["airflowVersion"])
    for path in (AIRFLOW_VALUES, "pyproject.toml"):
        file = repo / path
        file.write_text(file.read_text().replace(f'"{current}"', f'"{version}"').replace(
            f"apache-airflow=={current}", f"apache-airflow=={version}"))
    release = repo / AIRFLOW_HELMRELEASE
    old, new = airflow_versions.schema_version(current), airflow_versions.schema_version(version)
    release.write_text(release.read_text().replace(f'schema-version: "{old}"', f'schema-version: "{new}"'))
