"""The repository as Flux's source for a cluster: one folder per cluster under clusters/ (the bootstrap path)."""

from __future__ import annotations

from pathlib import Path


def cluster_names(repo: Path) -> list[str]:
    folder = repo / "clusters"
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
