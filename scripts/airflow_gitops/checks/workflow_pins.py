"""What CI runs is pinned (issue 16, class 5), beyond `uses:` (supply_chain.pinned_actions):

- every container a workflow runs in or beside (`jobs.<job>.container`, `jobs.<job>.services.<name>`, as a string or
  its `image`) is pinned by digest (`@sha256:` and 64 hex): a tag can be moved to another image by the registry's
  owner, a digest cannot;
- every install a workflow step or `.ci/run` runs itself is pinned: `apt-get install`/`apt install` names each package
  with `=<version>` (apt then checks it against the archive's signed hashes), `pip install` installs from a
  `--require-hashes` file (or only the repository itself, `--no-deps`), npm installs with `npm ci` from a lockfile
  (never `npm install <package>` or `npx`), and no script is piped from the network into a shell.

What the Makefile and the scripts install in CI (CI=true) is pinned the same way, and tested
(tests/hostile/test_ci_pins.py)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from airflow_gitops.model import ERROR, Finding, mapping
from airflow_gitops.source import bounds

CHECK = "pinned-actions"
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
# A shell command's words, after splitting a line at `&&`, `||`, `;` and `|`.
_SEPARATORS = re.compile(r"&&|\|\||;|\|")
# A line that names no installer installs nothing: only such lines are split into commands (shlex is the cost here).
_INSTALLERS = re.compile(r"\b(apt-get|apt|pip3?|python3?|npm|npx|yarn|pnpm|curl|wget)\b")
_CURL_TO_SHELL = re.compile(r"\b(curl|wget)\b[^|]*\|\s*(sudo\s+)?(ba|z|da)?sh\b")
APT_OPTIONS_WITH_VALUE = {"-o", "-t", "--target-release", "-c", "--config-file"}


def container_pins(workflow: dict[str, Any], rel: str) -> list[Finding]:
    findings = []
    for job_name, job in mapping(workflow.get("jobs")).items():
        job = mapping(job)
        places = [("container", job.get("container"))]
        places += [(f"services.{name}", service) for name, service in mapping(job.get("services")).items()]
        for where, spec in places:
            image = spec if isinstance(spec, str) else mapping(spec).get("image")
            if spec is None or image is None:
                continue
            field = f"jobs.{job_name}.{where}" + ("" if isinstance(spec, str) else ".image")
            if not isinstance(image, str) or not DIGEST.search(image):
                findings.append(Finding(ERROR, rel, f"job {job_name}", field, f"image {image!r} is not pinned by "
                                        "digest (write `image:tag@sha256:<64 hex>`): a tag can be moved to another "
                                        "image", CHECK))
    return findings


def install_problem(command: str) -> str | None:
    """Why one shell command installs something unpinned, or None."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        words = command.split()
    while words and (words[0] in ("sudo", "env", "timeout") or "=" in words[0] or words[0].isdigit()):
        words = words[1:]
    if not words:
        return None
    tool = Path(words[0]).name
    args = words[1:]
    if tool in ("apt-get", "apt") and args[:1] == ["install"] or tool in ("apt-get", "apt") and "install" in args:
        packages, skip = [], False
        for arg in args[args.index("install") + 1:]:
            if skip:
                skip = False
            elif arg in APT_OPTIONS_WITH_VALUE:
                skip = True
            elif not arg.startswith("-"):
                packages.append(arg)
        loose = [p for p in packages if "=" not in p and not p.startswith(("$", "./", "/"))]
        return f"apt installs {', '.join(loose)} without an exact version (write `name=<version>`)" if loose else None
    if tool in ("pip", "pip3") or tool.startswith("python") and args[:2] == ["-m", "pip"]:
        if tool.startswith("python"):
            args = args[2:]
        if "install" not in args:
            return None
        rest = args[args.index("install") + 1:]
        if "--require-hashes" in rest:
            return None
        targets = [a for a in rest if not a.startswith("-")]
        if "--no-deps" in rest and all(t in (".", "./") for t in targets):
            return None
        return ("pip installs without --require-hashes: install from a hash-locked file "
                "(`pip install --require-hashes -r .ci/requirements/<name>.txt`)")
    if tool == "npm" and args[:1] in (["install"], ["i"], ["add"]) or tool in ("npx", "yarn", "pnpm"):
        return f"`{tool} {' '.join(args[:2])}` resolves packages at install time: use `npm ci` with a lockfile"
    return None


def run_lines(rel: str, lines: list[str]) -> list[Finding]:
    """Every line of a workflow or script that installs something unpinned."""
    findings = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if text.startswith("#") or not _INSTALLERS.search(text):
            continue
        if _CURL_TO_SHELL.search(text):
            findings.append(Finding(ERROR, rel, "(file)", f"line {number}", "a script from the network piped into a "
                                    "shell runs whatever the server sends: download a pinned release and check its "
                                    "sha256", CHECK))
            continue
        for command in _SEPARATORS.split(re.sub(r"^(-\s+)?run:\s*\|?", "", text)):
            problem = install_problem(command.strip())
            if problem:
                findings.append(Finding(ERROR, rel, "(file)", f"line {number}", problem, CHECK))
    return findings


def pinned_ci(repo: Path, workflow_files: list[Path]) -> list[Finding]:
    """Containers by digest and pinned installs in every workflow, and pinned installs in `.ci/run`."""
    findings = []
    for file in workflow_files:
        rel = str(file.relative_to(repo))
        try:
            text = bounds.read_text(file, rel)
            docs = bounds.load_yaml_all(text, rel)
        except yaml.YAMLError as error:
            findings.append(Finding(ERROR, rel, "(workflow)", "(file)", f"unreadable: {error}", CHECK))
            continue
        for doc in docs:
            if isinstance(doc, dict):
                findings += container_pins(doc, rel)
        findings += run_lines(rel, text.splitlines())
    entry = repo / ".ci" / "run"
    if entry.is_file():
        findings += run_lines(".ci/run", entry.read_text(encoding="utf-8", errors="replace").splitlines())
    return findings
