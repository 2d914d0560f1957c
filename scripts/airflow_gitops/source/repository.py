"""The repository as Flux's source for a cluster: one folder per cluster under clusters/ (the bootstrap path)."""

from __future__ import annotations

import shutil
from pathlib import Path

DESIRED_STATE = ("clusters", "infrastructure", "apps", "charts-values", "dags", "pyproject.toml")
"""What a copy of the repository holds: the desired state, and the pins and policies its checks read."""


def cluster_names(repo: Path) -> list[str]:
    folder = repo / "clusters"
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def copy_desired_state(repo: Path, target: Path) -> Path:
    """`repo`'s desired state (DESIRED_STATE) copied into `target` (a test's copy to break, a cluster's Git).
    Symbolic links stay links, as Git holds them: a link a pull request adds is judged by the tool's containment
    check in the copy too, never read through while copying."""
    target.mkdir(parents=True, exist_ok=True)
    for part in DESIRED_STATE:
        source = repo / part
        if source.is_dir() and not source.is_symlink():
            shutil.copytree(source, target / part, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, target / part, follow_symlinks=False)
    return target
