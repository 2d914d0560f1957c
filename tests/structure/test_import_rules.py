"""The package's import rules, read from the source (every `import`, also those inside functions, and every string
that names a module of the package, as `parallel.py` names what its forkserver preloads):

- no import cycle;
- no module imports a higher layer (LAYERS below, lowest first);
- packages that stand side by side in a layer never import each other: `checks/`, `operate/`, `dev/` and `live/`; and the
  three controllers;
- no command module imports another (`commands/_common.py` holds the argument helpers they share: not a command);
- every module belongs to a layer: a new module is placed here on purpose.

A violation names the file, the line and the rule; to fix one, move the code down to where both sides can import it
(as `aws_templates.py` serves `checks/aws.py` and `operate/eks_plan.py`), never import it inside a function.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "airflow_gitops"
ROOT = Path(__file__).resolve().parents[2] / "scripts" / PACKAGE

# Lowest first. A name is a module or a package (all of its modules). Within a layer, a module may import any other,
# except across the groups of SIDE_BY_SIDE.
LAYERS: list[tuple[str, list[str]]] = [
    ("the leaf model", ["model"]),
    ("settings, the policy configuration and text helpers", ["settings", "policy_config", "yamltext", "go_runtime",
                                                              "airflow_versions", "airflow_migration_heads"]),
    ("the source (files, bounds, git)", ["source"]),
    ("the controllers", ["krusty", "kustomize_controller", "helm_controller", "notification_controller"]),
    ("the render of a cluster", ["pipeline", "parallel", "rendered_diff", "aws_templates"]),
    ("checks, operate, the DAG side and the local cluster", ["checks", "operate", "dev", "live"]),
    ("the commands", ["commands"]),
    ("the entry point", ["cli", "__main__", "__init__"]),
]
SIDE_BY_SIDE = [
    ["checks", "operate", "dev", "live"],
    ["kustomize_controller", "helm_controller", "notification_controller"],
]
COMMANDS = "commands"
SHARED_BY_COMMANDS = {"commands._common", "commands"}
_MODULE_NAME = re.compile(rf"{PACKAGE}(\.[A-Za-z_][A-Za-z0-9_]*)+")


@dataclass(frozen=True)
class Import:
    importer: str  # "checks.aws"
    imported: str  # "model"
    file: str
    line: int

    def where(self) -> str:
        return f"{self.file}:{self.line}: {self.importer} imports {self.imported}"


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package by its dotted name below the package ("checks.aws", "checks" for its
    __init__, "__init__" for the package's own)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts.pop()
        found[".".join(parts)] = path
    return found


def _target(name: str, known: dict[str, Path]) -> str | None:
    """The module of the package that `airflow_gitops.x.y[.attribute]` names, or None outside the package."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    parts = name.split(".")[1:]
    while parts:
        if ".".join(parts) in known:
            return ".".join(parts)
        parts.pop()
    return "__init__"


def imports(root: Path = ROOT) -> list[Import]:
    known = modules(root)
    found = []
    for name, path in known.items():
        rel = str(path.relative_to(root.parents[1]))
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the importing module's package
                    anchor = [PACKAGE, *package.split(".")] if package else [PACKAGE]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [f"{base}.{alias.name}" for alias in node.names]
            elif (isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_NAME.fullmatch(node.value)
                  and node.value.removeprefix(PACKAGE + ".") in known):  # a module's name, not `airflow_gitops.conf`
                targets = [node.value]
            for target in targets:
                module = _target(target, known)
                if module is not None and module != name:
                    found.append(Import(name, module, rel, node.lineno))
    return found


def layer_of(module: str) -> int | None:
    top = module.split(".")[0]
    for index, (_, names) in enumerate(LAYERS):
        if module in names or top in names:
            return index
    return None


def _group(module: str, groups: list[str]) -> str | None:
    top = module.split(".")[0]
    return top if top in groups else None


def violations(found: list[Import], known: dict[str, Path]) -> list[str]:
    problems = []
    for module in sorted(known):
        if layer_of(module) is None:
            problems.append(f"{module}: in no layer of tests/structure/test_import_rules.py LAYERS: place it there")
    for imp in found:
        low, high = layer_of(imp.imported), layer_of(imp.importer)
        if low is None or high is None:
            continue
        if low > high:
            problems.append(f"{imp.where()}: an upward import ({LAYERS[high][0]} may not import {LAYERS[low][0]})")
        for groups in SIDE_BY_SIDE:
            a, b = _group(imp.importer, groups), _group(imp.imported, groups)
            if a and b and a != b:
                first, second = sorted((a, b))
                problems.append(f"{imp.where()}: {first}/ and {second}/ stand side by side and never import each other")
        if (imp.importer.startswith(COMMANDS + ".") and imp.imported.startswith(COMMANDS)
                and imp.imported not in SHARED_BY_COMMANDS):
            problems.append(f"{imp.where()}: a command imports another command; move the shared code below")
    problems += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(found)]
    return problems


def cycles(found: list[Import]) -> list[list[str]]:
    """Each strongly connected set of modules (Tarjan), as one cycle through it."""
    graph: dict[str, set[str]] = {}
    for imp in found:
        graph.setdefault(imp.importer, set()).add(imp.imported)
        graph.setdefault(imp.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_through(component, graph) for component in components]


def _cycle_through(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A closed path through the component's first module, for the message."""
    start, members = component[0], set(component)
    paths = [[start]]
    while paths:
        path = paths.pop(0)
        for nxt in sorted(graph[path[-1]] & members):
            if nxt == start:
                return [*path, start]
            if nxt not in path:
                paths.append([*path, nxt])
    return component


def test_the_package_keeps_its_import_rules():
    known = modules()
    problems = violations(imports(), known)
    assert not problems, "import rules broken:\n" + "\n".join(problems)


# --- the test's own checks: each rule catches what it is for -------------------------------------------------------


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "scripts" / PACKAGE
    for rel, text in {"__init__.py": "", **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def _problems(tmp_path: Path, files: dict[str, str]) -> list[str]:
    root = _package(tmp_path, files)
    return violations(imports(root), modules(root))


def test_a_lazy_upward_import_from_the_model_is_caught(tmp_path):
    problems = _problems(tmp_path, {
        "model.py": "def f():\n    from airflow_gitops.source import bounds\n",
        "source/__init__.py": "", "source/bounds.py": "from airflow_gitops.model import f\n"})
    assert any("model imports source.bounds: an upward import" in p for p in problems), problems
    assert any(p.startswith("import cycle: model -> source.bounds -> model") for p in problems), problems


def test_checks_and_operate_never_import_each_other(tmp_path):
    problems = _problems(tmp_path, {
        "checks/__init__.py": "", "checks/aws.py": "",
        "operate/__init__.py": "", "operate/eks_plan.py": "from airflow_gitops.checks import aws\n"})
    assert problems == ["scripts/airflow_gitops/operate/eks_plan.py:1: operate.eks_plan imports checks.aws: "
                        "checks/ and operate/ stand side by side and never import each other"]


def test_a_command_importing_another_is_caught_even_by_a_string(tmp_path):
    problems = _problems(tmp_path, {
        "commands/__init__.py": "", "commands/_common.py": "", "commands/validate.py": "",
        "commands/bench.py": "from airflow_gitops.commands._common import x\n"
                             "PRELOAD = ['airflow_gitops.commands.validate']\n"})
    assert problems == ["scripts/airflow_gitops/commands/bench.py:2: commands.bench imports commands.validate: "
                        "a command imports another command; move the shared code below"]


def test_a_module_in_no_layer_is_caught(tmp_path):
    assert _problems(tmp_path, {"helpers.py": ""}) == [
        "helpers: in no layer of tests/structure/test_import_rules.py LAYERS: place it there"]
