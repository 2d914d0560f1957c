"""The one harness of the hostile-input suite: the CLI as a subprocess under `ulimit -v` and a timeout, a
repository copy with canary files planted outside it, and the checks every case makes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from airflow_gitops.source.repository import copy_desired_state

from tests.helpers import REPO, schemas_dir

# Unique per run: if it shows up in any output, something outside the repository was read.
CANARY = f"canary-{uuid.uuid4().hex}"
# Python, libyaml and the Go runtime of the Helm SDK fit well within it; an expanded alias bomb would not.
MEMORY_LIMIT_MB = 4096
TIMEOUT_S = 30


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


class Workspace:
    """tmp/repo: a git repository holding a copy of the desired state; tmp/outside: canaries, which no run may
    read or change; tmp/out: the only place a run may write (besides the repository)."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.repo = tmp / "repo"
        self.outside = tmp / "outside"
        self.out = tmp / "out"
        self.cache = tmp / "cache"
        copy_desired_state(REPO, self.repo)
        self.outside.mkdir()
        self.out.mkdir()
        self.canary_file = self.outside / "canary.yaml"
        self.canary_file.write_text(
            f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {CANARY}}}\ndata: {{secret: {CANARY}}}\n")
        (self.outside / "canary.env").write_text(f"SECRET={CANARY}\n")
        (self.outside / "kustomization.yaml").write_text("resources: [canary.yaml]\n")
        self._before = self.snapshot()

    def git_commit(self, message: str = "base") -> None:
        git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=self.repo, check=True)
        subprocess.run(["git", "add", "-A"], cwd=self.repo, check=True)
        subprocess.run([*git, "commit", "-q", "-m", message], cwd=self.repo, check=True)

    def write(self, path: str, text: str) -> Path:
        target = self.repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return target

    def add_resource(self, kustomization: str, resource: str) -> None:
        file = self.repo / kustomization
        file.write_text(file.read_text().replace("resources:\n", f"resources:\n  - {resource}\n", 1))

    def snapshot(self) -> dict[str, str]:
        """Every file under tmp except the repository copy and the output folder, with its content hash."""
        seen = {}
        for path in sorted(self.tmp.rglob("*")):
            if any(folder in (path, *path.parents) for folder in (self.repo, self.out, self.cache)):
                continue
            seen[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        return seen

    def run(self, *args: str, memory_mb: int = MEMORY_LIMIT_MB, timeout: int = TIMEOUT_S,
            env: dict[str, str] | None = None) -> Outcome:
        """`airflow-gitops ARGS` in the repository copy, under `ulimit -v` and a timeout; `env` adds variables."""
        extra = env or {}
        env = {k: v for k, v in os.environ.items() if k not in ("AIRFLOW_GITOPS_CHARTS", "AIRFLOW_GITOPS_DEBUG")}
        env.update(extra)
        env["PYTHONPATH"] = str(REPO / "scripts")
        env["AIRFLOW_GITOPS_CACHE"] = str(self.cache)
        if schemas_dir():
            env["AIRFLOW_GITOPS_SCHEMAS"] = str(schemas_dir())
        command = ["bash", "-c", f'ulimit -v {memory_mb * 1024}; exec "$@"', "bash",
                   sys.executable, "-m", "airflow_gitops", *args]
        proc = subprocess.run(command, cwd=self.repo, env=env, capture_output=True, text=True, timeout=timeout,
                              errors="replace")
        return Outcome(proc.returncode, proc.stdout, proc.stderr)

    def assert_contained(self, outcome: Outcome, code: int, *names: str) -> None:
        """The exit code; every name (file, field) in the output; no traceback; no canary; nothing changed
        outside the repository and the output folder."""
        assert outcome.code == code, f"exit {outcome.code}, expected {code}:\n{outcome.text[-3000:]}"
        for name in names:
            assert name in outcome.text, f"{name!r} not named in:\n{outcome.text[-3000:]}"
        assert "Traceback" not in outcome.text, outcome.text[-3000:]
        assert CANARY not in outcome.text, "a file outside the repository was read"
        assert self.snapshot() == self._before, "a file outside the repository or output was created or changed"
