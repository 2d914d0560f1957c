"""`diff` shows a multi-line string (airflow.cfg, pod_template_file.yaml, values files) line by line with a few lines
of context, whatever it holds, so a one-setting change reads as one changed line and nothing else."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from airflow_gitops.cli import main
from airflow_gitops.rendered_diff import BLOCK_HEADER, MASK, NO_FINAL_NEWLINE, as_text, differing, masked, unified

from tests.gitops.test_rollback_and_diff import git
from tests.helpers import airflow_release, edit, skip_for

VALUES = "charts-values/airflow/common.yaml"
AIRFLOW_CONFIG = "ConfigMap/airflow/airflow-config"


def sections(out: str) -> dict[str, list[str]]:
    """Diff lines per object (by its working-tree name), file headers left out."""
    found: dict[str, list[str]] = {}
    current = None
    for line in out.splitlines():
        if line.startswith("+++ working-tree/"):
            current = found.setdefault(line.removeprefix("+++ working-tree/"), [])
        elif current is not None and not line.startswith("--- "):
            current.append(line)
    return found


def changes(lines: list[str]) -> list[str]:
    return [line for line in lines if line[:1] in "+-"]


def hunk_headers(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("@@ ")]


def diff_of(repo: Path, capsys) -> dict[str, list[str]]:
    capsys.readouterr()
    assert main(["diff", "kind", "--base", "HEAD", "--repo", str(repo)]) == 1
    return sections(capsys.readouterr().out)


@pytest.fixture
def history(repo_copy) -> Path:
    git(repo_copy, "init", "-q", "-b", "main")
    git(repo_copy, "add", "-A")
    git(repo_copy, "commit", "-qm", "base")
    return repo_copy


@pytest.fixture
def chart():
    release = airflow_release("kind")
    if release.unrendered_reason:
        skip_for("chart", f"chart checks not run: {release.unrendered_reason}")


# --- real rendering of the official chart ---------------------------------------------------------------------

def test_one_airflow_config_change_shows_only_its_line_of_airflow_cfg(chart, history, capsys):
    edit(history, VALUES, "refresh_interval: 30", "refresh_interval: 20")
    config = diff_of(history, capsys)[AIRFLOW_CONFIG]
    assert changes(config) == ["-| refresh_interval = 30", "+| refresh_interval = 20"]
    assert hunk_headers(config) == ['@@ -31,7 +31,7 @@ data["airflow.cfg"]']
    assert len(config) == 1 + 3 + 2 + 3  # one hunk: three lines of context either side, not the whole file


def test_a_tag_bump_shows_only_the_tag_lines_of_airflow_cfg_and_pod_template_file(chart, history, capsys):
    edit(history, VALUES, 'defaultAirflowTag: "3.3.2"', 'defaultAirflowTag: "3.3.3"')
    config = diff_of(history, capsys)[AIRFLOW_CONFIG]
    assert changes(config) == ["-| worker_container_tag = 3.3.2", "+| worker_container_tag = 3.3.3",
                               "-|       image: apache/airflow:3.3.2", "+|       image: apache/airflow:3.3.3"]
    headers = hunk_headers(config)
    assert [header.split(" @@ ")[1] for header in headers] == ['data["airflow.cfg"]', 'data["pod_template_file.yaml"]']
    assert len(config) == 2 * (1 + 3 + 2 + 3)


# --- chart-free: the values ConfigMap through the CLI, and synthetic objects ----------------------------------

def test_a_values_change_shows_only_its_line_and_the_hash_suffix(history, capsys):
    edit(history, VALUES, "refresh_interval: 30", "refresh_interval: 20")
    found = diff_of(history, capsys)
    values = next(lines for name, lines in found.items() if name.startswith("ConfigMap/airflow/airflow-values-common"))
    changed = changes(values)
    assert [line[:1] for line in changed] == ["-", "+", "-", "+"]
    assert changed[0].startswith("-  name: airflow-values-common-") and changed[1].startswith("+  name: ")
    assert changed[2:] == ["-|     refresh_interval: 30", "+|     refresh_interval: 20"]
    assert hunk_headers(values)[-1].endswith(' @@ data["values.yaml"]')


def configmap(text: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"},
            "data": {"airflow.cfg": text, "plain": "one line"}}


def diff_lines(old: str, new: str) -> list[str]:
    lines = unified({"ConfigMap/n/c": as_text(configmap(old))}, {"ConfigMap/n/c": as_text(configmap(new))}, "HEAD")
    return [line.rstrip("\n") for line in lines]


BASE = "[core]\nparallelism = 32\ndags_folder = /opt/airflow/dags\n\n[logging]\nlevel = INFO\n"

TRICKY = {
    "trailing space": ("level = INFO", "level = INFO ", ['-| level = INFO', '+|~ "level = INFO "']),
    "tab instead of spaces": ("parallelism = 32", "parallelism\t= 32",
                              ['-| parallelism = 32', '+|~ "parallelism\\t= 32"']),
    "escape sequence": ("level = INFO", "level = \x1b[31mINFO", ['-| level = INFO', '+|~ "level = \\x1b[31mINFO"']),
    "invisible character": ("level = INFO", "level = IN\u200bFO", ['-| level = INFO', '+|~ "level = IN\\u200bFO"']),
    "looks like a diff header": ("[logging]", "--- a/airflow.cfg", ['-| [logging]', '+| --- a/airflow.cfg']),
    "looks like a hunk header": ("[logging]", "@@ -1 +1 @@", ['-| [logging]', '+| @@ -1 +1 @@']),
    "very long line": ("dags_folder = /opt/airflow/dags", "dags_folder = /" + "x" * 5000,
                       ['-| dags_folder = /opt/airflow/dags', '+| dags_folder = /' + "x" * 5000]),
}


@pytest.mark.parametrize(("old", "new", "expected"), TRICKY.values(), ids=TRICKY.keys())
def test_a_tricky_line_change_shows_that_line_and_nothing_else(old, new, expected):
    lines = diff_lines(BASE, BASE.replace(old, new))
    assert changes(lines[2:]) == expected
    # The reader sees which text the lines belong to: in the hunk header, or as context when the block starts there.
    assert lines[2].endswith(' @@ data["airflow.cfg"]') or ' #| data["airflow.cfg"]' in lines[3:]
    assert sum(1 for line in lines if line.startswith(("--- ", "+++ "))) == 2


def test_a_crlf_file_diffs_line_by_line():
    old = BASE.replace("\n", "\r\n")
    lines = diff_lines(old, old.replace("INFO", "DEBUG"))
    assert changes(lines[2:]) == ['-|~ "level = INFO\\r"', '+|~ "level = DEBUG\\r"']


def test_line_ending_changes_are_shown():
    lines = diff_lines(BASE, BASE.replace("\n", "\r\n", 1))
    assert changes(lines[2:]) == ["-| [core]", '+|~ "[core]\\r"']
    lines = diff_lines(BASE, BASE.rstrip("\n"))
    assert changes(lines[2:]) == [f"+{NO_FINAL_NEWLINE}"]


def test_a_multi_line_string_becomes_multi_line_and_back():
    lines = diff_lines("one line\n", "two\nlines\n")
    assert changes(lines[2:]) == ["-| one line", "+| two", "+| lines"]


def decoded(text: str, path: str) -> str:
    """The string a block shows, read back from the diff text alone: the format loses nothing."""
    block = text.split(f"{BLOCK_HEADER}{path}\n", 1)[1].split(f"\n{BLOCK_HEADER}", 1)[0].split("\n")
    lines, final_newline = [], True
    for line in filter(None, block):
        if line == NO_FINAL_NEWLINE:
            final_newline = False
        elif line.startswith('|~ "'):
            lines.append(ast.literal_eval(line[3:]))
        else:
            assert line == "|" or line.startswith("| ")
            lines.append(line[2:])
    return "\n".join(lines) + ("\n" if final_newline else "")


@pytest.mark.parametrize("text", [
    BASE, BASE.rstrip("\n"), BASE.replace("\n", "\r\n"), "a\n\n\n", "\n", " \n\t\n", 'say "\\n" \\\n\\x41\n',
    "tab\there\x00nul\x7fdel\u2028sep\u00a0nbsp\U0001F600\n", "|~ \"fake\"\n| \n#| data.x\n#\\ no newline\n"])
def test_every_string_reads_back_exactly_from_its_block(text):
    obj = {"kind": "ConfigMap", "data": {"a.b": text, "z": [{"args": text}]}}
    shown = as_text(obj)
    assert decoded(shown, 'data["a.b"]') == text
    assert decoded(shown, "data.z[0].args") == text


def test_the_yaml_part_points_at_each_block():
    shown = as_text({"kind": "ConfigMap", "data": {"airflow.cfg": "a\nb\n", "plain": "c"}})
    assert "  airflow.cfg: !text 'data[\"airflow.cfg\"]'\n  plain: c\n" in shown
    assert f'{BLOCK_HEADER}data["airflow.cfg"]\n| a\n| b\n' in shown


def test_a_multi_line_secret_value_stays_masked():
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
              "stringData": {"connection": "postgresql://airflow:hunter2@db\nsecond line\n"}, "data": {"k": "aGkK"}}
    shown = as_text(masked(secret))
    assert "hunter2" not in shown and "second line" not in shown and "aGkK" not in shown
    assert shown.count(MASK) == 2


def test_the_object_count_ignores_text_that_imitates_a_file_header():
    old, new = as_text(configmap("a\n")), as_text(configmap("+++ b\n++ c\n"))
    assert differing({"x": old, "y": old}, {"x": new, "y": old}) == 1
    assert not any(line.startswith("+++ ") for line in unified({"x": old}, {"x": new}, "HEAD")[2:])


def test_a_line_separator_inside_a_line_does_not_split_it():
    lines = diff_lines(BASE, BASE.replace("level = INFO", "level = IN\u2028FO\x0c"))
    assert changes(lines[2:]) == ['-| level = INFO', '+|~ "level = IN\\u2028FO\\x0c"']
