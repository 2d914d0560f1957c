"""Every pointer into the documentation or the repository resolves:

- a Markdown link of README.md or docs/ (`[text](path#anchor)`) names a file that exists and, with an anchor, a heading
  of that file;
- `see "Heading"` in README.md or a docs/ page names a heading of the same page;
- anywhere in the repository (Markdown, code, comments, manifests), `README "Heading"` names a heading of README.md
  and `docs/<page>.md "Heading"` a heading of that page; `docs/<page>.md` alone names a page that exists;
- a comment or docstring (Python, YAML, shell, Makefile, TOML) that names a repository path (`clusters/...`,
  `scripts/...`, `tests/...`, ...) or a module of the package (`checks/aws.py`) names one that exists.

A failure lists each pointer with its file and line.
"""

from __future__ import annotations

import ast
import io
import re
import subprocess
import tokenize
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "scripts" / "airflow_gitops"

MARKDOWN_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
SEE_HEADING = re.compile(r"\bsee \"([^\"]+)\"", re.I)
README_HEADING = re.compile(r"\bREADME(?:\.md)?,? \"([^\"]+)\"")
DOCS_PAGE = re.compile(r"(?<![\w/.-])(docs/[\w-]+\.md)(?:,? \"([^\"]+)\")?")
# Repository paths as comments name them; templates (`<cluster>`, `${var}`, `*`) and ../shared are not checked.
REPO_PATH = re.compile(r"(?<![\w./-])((?:clusters|infrastructure|apps|charts-values|dags|scripts|tests|docs|\.github|\.ci)"
                       r"/[\w.\-/]*)(.?)")
TEMPLATE_MARKS = "<*{$"
MODULE_PATH = re.compile(r"(?<![\w./-])((?:source|checks|commands|operate|dev|helm_controller|kustomize_controller|"
                         r"notification_controller)/\w+\.py)\b")
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".sh", ".toml", ".cfg", ".txt", ".json", ".cjs"}
COMMENTED = {".yaml", ".yml", ".sh", ".toml"}


@cache
def tracked_files() -> list[Path]:
    """The repository's files as Git lists them (tracked and new, not ignored)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split()
    return [REPO / name for name in listed if (REPO / name).is_file()]


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation but `-` and `_` dropped, spaces as `-`."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@cache
def headings(page: Path) -> dict[str, str]:
    """slug -> heading text of every heading of a Markdown page (outside code fences); repeats get -1, -2, ..."""
    return _headings_of(page.read_text())


def _headings_of(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        match = None if fenced else re.match(r"#{1,6} (.+?)\s*#*$", line)
        if match:
            text = match.group(1)
            anchor, number = slug(text), 0
            while (anchor if not number else f"{anchor}-{number}") in found:
                number += 1
            found[anchor if not number else f"{anchor}-{number}"] = text
    return found


def has_heading(page: Path, title: str) -> bool:
    return slug(title) in headings(page)


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def markdown_problems(page: Path, text: str | None = None) -> list[str]:
    """The broken links and `see "..."` of a page (`text`: its content, when it is not on disk)."""
    text = page.read_text() if text is None else text
    rel = page.relative_to(REPO)
    problems = []
    for match in MARKDOWN_LINK.finditer(text):
        target = match.group(1) or match.group(2)
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        where = f"{rel}:{_line(text, match.start())}: link {target}"
        if not path_part:  # an anchor of this very page
            if anchor not in _headings_of(text):
                problems.append(f"{where}: {rel} has no heading with the anchor #{anchor}")
            continue
        goal = (page.parent / path_part).resolve()
        if not goal.exists():
            problems.append(f"{where}: no such file")
        elif anchor and goal.suffix == ".md" and anchor not in headings(goal):
            problems.append(f"{where}: {goal.relative_to(REPO)} has no heading with the anchor #{anchor}")
    for match in SEE_HEADING.finditer(text):
        if slug(match.group(1)) not in _headings_of(text):
            problems.append(f"{rel}:{_line(text, match.start())}: see \"{match.group(1)}\": no such heading on this "
                            "page (link to the page that has it)")
    return problems


def reference_problems(file: Path, text: str) -> list[str]:
    rel = file.relative_to(REPO)
    problems = []
    for match in README_HEADING.finditer(text):
        if not has_heading(REPO / "README.md", match.group(1)):
            problems.append(f"{rel}:{_line(text, match.start())}: README \"{match.group(1)}\": README.md has no such "
                            "heading")
    for match in DOCS_PAGE.finditer(text):
        page, title = REPO / match.group(1), match.group(2)
        where = f"{rel}:{_line(text, match.start())}: {match.group(0)}"
        if not page.is_file():
            problems.append(f"{where}: no such page")
        elif title and not has_heading(page, title):
            problems.append(f"{where}: {match.group(1)} has no such heading")
    return problems


def comments_of(file: Path, text: str) -> list[tuple[int, str]]:
    """(line, text) of each comment and docstring of a file: what a reader is told, not the code's own data."""
    if file.suffix == ".py":
        found = []
        try:
            for token in tokenize.generate_tokens(io.StringIO(text).readline):
                if token.type == tokenize.COMMENT:
                    found.append((token.start[0], token.string))
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
                    first = node.body[0]
                    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                            and isinstance(first.value.value, str):
                        found.append((first.lineno, first.value.value))
        except (SyntaxError, tokenize.TokenError):
            return []
        return found
    if file.suffix in COMMENTED or file.name in ("Makefile", "run", "CODEOWNERS"):
        return [(number, line[line.index("#"):]) for number, line in enumerate(text.splitlines(), 1)
                if re.match(r"(?:#|.*\s#)", line)]
    if file.suffix == ".md":  # the prose, not the examples of its code blocks
        return [(1, re.sub(r"```.*?```", lambda block: "\n" * block.group(0).count("\n"), text, flags=re.S))]
    return []


def path_problems(file: Path, text: str) -> list[str]:
    rel = file.relative_to(REPO)
    problems = []
    for line, comment in comments_of(file, text):
        for match in REPO_PATH.finditer(comment):
            path, following = match.group(1).rstrip("./-"), match.group(2)
            if following in TEMPLATE_MARKS and following or "/../" in f"/{path}/" or DOCS_PAGE.fullmatch(path):
                continue  # a template (`clusters/<cluster>/`), a path that leaves on purpose, or a page (above)
            if not (REPO / path).exists():
                problems.append(f"{rel}:{line + _line(comment, match.start()) - 1}: {path}: no such path")
        for match in MODULE_PATH.finditer(comment):
            if not (PACKAGE / match.group(1)).exists():
                problems.append(f"{rel}:{line + _line(comment, match.start()) - 1}: {match.group(1)}: no such module "
                                "of the package")
    return problems


def _checked(file: Path) -> bool:
    parts = file.relative_to(REPO).parts
    if parts[0] == "tests" and "testdata" in parts or file == Path(__file__):
        return False  # fixture repositories, their own small worlds; and this file's examples
    return file.suffix in TEXT_SUFFIXES or file.name in ("Makefile", "run", "CODEOWNERS")


def all_problems() -> list[str]:
    problems = []
    for page in pages():
        problems += markdown_problems(page)
    for file in tracked_files():
        if not _checked(file):
            continue
        try:
            text = file.read_text()
        except UnicodeDecodeError:
            continue
        problems += reference_problems(file, text)
        problems += path_problems(file, text)
    return problems


def test_every_link_reference_and_named_path_resolves():
    problems = all_problems()
    assert not problems, f"{len(problems)} pointer(s) lead nowhere:\n" + "\n".join(problems)


# --- the test's own checks -----------------------------------------------------------------------------------------


def test_slugs_follow_github():
    assert slug("Speed: parallel validate and the render cache") == "speed-parallel-validate-and-the-render-cache"
    assert slug("Choices, and why") == "choices-and-why"
    assert slug("`make test` time") == "make-test-time"


def test_a_broken_link_a_missing_heading_and_a_stale_path_are_caught():
    # Never written to disk: the other tests (in other workers too) scan docs/.
    problems = markdown_problems(REPO / "docs" / "_probe.md", "# Probe\n\n[gone](nowhere.md) [bad anchor]"
                                 "(../README.md#no-such-heading) [ok](../README.md) [here](#probe)\n\n"
                                 "see \"Elsewhere\"\n")
    assert [p.split(": ", 2)[1:] for p in problems] == [
        ["link nowhere.md", "no such file"],
        ["link ../README.md#no-such-heading", "README.md has no heading with the anchor #no-such-heading"],
        ["see \"Elsewhere\"", "no such heading on this page (link to the page that has it)"]]
    code = REPO / "scripts" / "probe.py"
    text = ('"""Described in README "No such heading" and docs/nowhere.md."""\n'
            "# kept in scripts/airflow_gitops/localpg.py, see checks/nothing.py\n"
            'PATH = "clusters/knd/apps.yaml"  # data, not a comment: not checked\n')
    problems = reference_problems(code, text) + path_problems(code, text)
    assert problems == [
        'scripts/probe.py:1: README "No such heading": README.md has no such heading',
        "scripts/probe.py:1: docs/nowhere.md: no such page",
        "scripts/probe.py:2: scripts/airflow_gitops/localpg.py: no such path",
        "scripts/probe.py:2: checks/nothing.py: no such module of the package"]
