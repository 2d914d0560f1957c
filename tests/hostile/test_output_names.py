"""Issue 16, class 5, "names in output": object, file, namespace and cluster names, and text of the policy table,
are escaped wherever `validate`, `diff` and `render` print them (model.escaped). A name can't start a line of its own
(`::error::` for the Actions runner, `+++ ` for a diff), close a code fence, or write a terminal escape.

Each row of NAMES is a hostile string; each of PLACEMENTS puts every one of them where a pull request can: an
object's name, its namespace, a manifest's file name, an exemption's reason. Each command's whole output must hold
the name escaped (so it was printed) and never raw."""

from __future__ import annotations

import json
import re

import pytest

from tests.hostile.harness import Workspace

CONFIGS = "infrastructure/configs/kind"

# (id, the hostile string, how it must show escaped)
NAMES = [
    ("newline-workflow-command", "x\n::error file=a::pwned", "x\\n::error file=a::pwned"),
    ("carriage-return", "x\r::warning::pwned", "x\\r::warning::pwned"),
    ("terminal-escape", "x\x1b[2J\x1b]0;title\x07", "x\\x1b[2J\\x1b]0;title\\x07"),
    ("line-separator", "x\u2028::notice::pwned", "x\\u2028::notice::pwned"),
    ("bidi-override", "x\u202egnp.yaml", "x\\u202egnp.yaml"),
    ("fence", "x\n```\n::stop-commands::t", "x\\n\\x60\\x60\\x60\\n::stop-commands::t"),
    ("diff-header", "x\n+++ working-tree/Secret/airflow/fake", "x\\n+++ working-tree/Secret/airflow/fake"),
]


def yaml_string(text: str) -> str:
    """A double-quoted YAML scalar holding `text` exactly."""
    return '"' + text.encode("unicode_escape").decode().replace('"', '\\"') + '"'


def configmap(name: str, namespace: str = "airflow") -> str:
    """A ConfigMap that is a finding (a password in a plain ConfigMap), so that `validate` names it."""
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {yaml_string(name)}\n  namespace: " \
           f"{yaml_string(namespace)}\ndata: {{password: hunter2hunter2}}\n"


def as_object_names(ws: Workspace) -> None:
    ws.write(f"{CONFIGS}/hostile.yaml", "---\n".join(configmap(name) for _, name, _ in NAMES))
    ws.add_resource(f"{CONFIGS}/kustomization.yaml", "hostile.yaml")


def as_namespaces(ws: Workspace) -> None:
    ws.write(f"{CONFIGS}/hostile.yaml", "---\n".join(configmap(f"cm-{i}", name) for i, (_, name, _) in
                                                    enumerate(NAMES)))
    ws.add_resource(f"{CONFIGS}/kustomization.yaml", "hostile.yaml")


def as_file_names(ws: Workspace) -> None:
    """Manifests whose YAML is broken, so that every command names the file."""
    for _, name, _ in NAMES:
        (ws.repo / CONFIGS / f"{name.replace('/', '_')}.yaml").write_text("data: [unclosed\n")


def as_exemption_reasons(ws: Workspace) -> None:
    path = ws.repo / "pyproject.toml"
    text = path.read_text()
    reason = json.dumps(" ".join(name for _, name, _ in NAMES))[1:-1]  # JSON's escapes are TOML's
    old = 'kind = "a single laptop'
    assert old in text
    path.write_text(text.replace(old, f'kind = "{reason} a single laptop', 1))


PLACEMENTS = {"object-name": as_object_names, "namespace": as_namespaces, "file-name": as_file_names,
              "exemption-reason": as_exemption_reasons}
COMMANDS = {"validate": ["validate", "kind"], "diff": ["diff", "kind", "--base", "main"],
            "render": ["render", "kind", "--no-charts"]}
# What no output line may do. `render` prints objects as YAML, whose own quoting holds what they contain (a ConfigMap's
# text may start a line with anything): only the control-character rule applies to it.
UNSAFE = [
    ("a line that starts with a workflow command", re.compile(r"^\s*::", re.M)),
    ("a control or format character other than newline", re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029"
                                                                   r"\u200b-\u200f\u202a-\u202e\u2066-\u2069]")),
    ("a line that opens or closes a code fence", re.compile(r"^\s*(```|~~~)", re.M)),
    ("a forged diff header", re.compile(r"^\+\+\+ working-tree/Secret/airflow/fake", re.M)),
]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("placement", PLACEMENTS)
def test_hostile_names_are_escaped_in_every_output(ws, placement, command):
    ws.git_commit()
    PLACEMENTS[placement](ws)
    outcome = ws.run(*COMMANDS[command])
    assert outcome.code in (0, 1, 2) and "Traceback" not in outcome.text, outcome.text[-3000:]
    for what, pattern in UNSAFE[1:2] if command == "render" else UNSAFE:
        found = pattern.search(outcome.text)
        assert found is None, f"{what}: {outcome.text[max(0, found.start() - 200):found.end() + 200]!r}"
    if command == "render" and placement != "file-name":
        return  # render prints objects as YAML, and no policy table: only the file names of its findings are its own
    printed = [escaped for _, _, escaped in NAMES if escaped in outcome.text]
    assert printed, f"no hostile name printed at all, so this proves nothing:\n{outcome.text[-3000:]}"


@pytest.mark.parametrize("id_, name, shown", NAMES, ids=[n[0] for n in NAMES])
def test_escaped_turns_each_name_into_one_safe_line(id_, name, shown):
    from airflow_gitops.model import Finding, escaped

    assert escaped(name, name=True) == shown
    line = str(Finding("error", name, f"ConfigMap airflow/{name}", name, f"message about {name}"))
    assert "\n" not in line and not any(pattern.search(line) for _, pattern in UNSAFE)
