"""Every read of the repository's Git history, in one place: a ref resolved to its commit, a commit's tree checked
out, a file as a commit holds it, the commits that changed a file, and any other read a plan needs (`output`).

A ref is always resolved to a SHA (`--end-of-options`, `^{commit}`) before git sees it again, so a ref that a pull
request or a user chose never reaches git as an option (`--output=FILE`)."""

from __future__ import annotations

import dataclasses
import io
import re
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from airflow_gitops.model import RenderError
from airflow_gitops.settings import Settings

# A read of a file or the log; `output` allows longer (a rev-list or diff of a large history).
READ_TIMEOUT_S = 60
OUTPUT_TIMEOUT_S = 120


class GitError(Exception):
    """A git command failed: the message is the command and git's own words."""


def output(repo: Path, *args: str) -> str:
    """The stripped stdout of `git ARGS` in `repo`; GitError with git's stderr when it fails."""
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=OUTPUT_TIMEOUT_S)
    if result.returncode != 0:
        raise GitError(f"git {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout.strip()


def resolve_commit(repo: Path, ref: str) -> str:
    """A commit-ish as its full SHA, never as a git option: `--end-of-options` and `^{commit}`."""
    proc = subprocess.run(["git", "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"],
                          cwd=repo, capture_output=True, text=True)
    sha = proc.stdout.strip()
    if proc.returncode != 0 or not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", sha):
        raise RenderError(f"--base {ref!r} is not a commit of this repository")
    return sha


def show(repo: Path, spec: str) -> str | None:
    """`git show SPEC` (e.g. `<commit>:<path>`): the file's text, or None when that commit has no such file."""
    shown = subprocess.run(["git", "show", spec], cwd=repo, capture_output=True, text=True, timeout=READ_TIMEOUT_S)
    return shown.stdout if shown.returncode == 0 else None


def unmerged_files(repo: Path) -> list[str]:
    """The paths a stopped merge, revert or cherry-pick left in conflict (`git diff --diff-filter=U`)."""
    return subprocess.run(["git", "diff", "--name-only", "--diff-filter=U"], cwd=repo, capture_output=True, text=True,
                          timeout=READ_TIMEOUT_S).stdout.split()


def commits_changing(repo: Path, ref: str, file: str, pattern: str) -> list[str]:
    """The commits at or below `ref` whose diff of `file` adds or removes a line matching `pattern` (`git log
    -G`), newest first; none when git cannot tell."""
    log = subprocess.run(["git", "log", "--format=%H", "-G", pattern, ref, "--", file], cwd=repo,
                         capture_output=True, text=True, timeout=READ_TIMEOUT_S)
    return log.stdout.split()


def checkout(repo: Path, ref: str, into: Path) -> None:
    """The tree of commit-ish `ref` into `into`. `ref` is resolved to a SHA first, so it never reaches git as an
    option (`--output=FILE`); a symlink leading out of the tree is left out, as in the sandbox."""
    sha = resolve_commit(repo, ref)
    archive = subprocess.run(["git", "archive", "--format=tar", sha], cwd=repo, capture_output=True)
    if archive.returncode != 0:
        raise RenderError(f"git archive {ref} ({sha}): {archive.stderr.decode(errors='replace').strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter=_inside_only)


def _inside_only(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
    try:
        return tarfile.data_filter(member, path)
    except tarfile.FilterError:
        return None


@contextmanager
def base_tree(settings: Settings, ref: str) -> Iterator[Settings]:
    """Settings for the tree at `ref`, checked out into a temporary folder: what `diff`, `validate --base` and
    `rollback` compare the working tree with."""
    with tempfile.TemporaryDirectory(prefix="airflow-gitops-base-") as tmp:
        checkout(settings.repo, ref, Path(tmp))
        yield dataclasses.replace(settings, repo=Path(tmp))  # every option (render cache included) carries over
