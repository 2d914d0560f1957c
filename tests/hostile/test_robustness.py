"""Robustness: bombs, huge and deep input, bad encodings and duplicates end in a clear error that names the
file, within the memory and time the harness allows, and exit codes never lie."""

from __future__ import annotations

import pytest
from airflow_gitops import cli

VALUES = "charts-values/airflow/common.yaml"
CONTROLLERS_BASE = "infrastructure/controllers/base"


def _alias_bomb() -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


def _manifest(ws, name: str, text: str) -> str:
    path = f"{CONTROLLERS_BASE}/{name}"
    ws.write(path, text)
    ws.add_resource(f"{CONTROLLERS_BASE}/kustomization.yaml", name)
    return path


def test_an_alias_bomb_in_a_values_file(ws):
    (ws.repo / VALUES).write_text((ws.repo / VALUES).read_text() + "bomb:\n  " + _alias_bomb().replace("\n", "\n  "))
    ws.assert_contained(ws.run("validate", "kind"), 1, VALUES, "alias bomb")


def test_an_alias_bomb_in_a_manifest(ws):
    path = _manifest(ws, "bomb.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n  "
                     + _alias_bomb().replace("\n", "\n  "))
    ws.assert_contained(ws.run("render", "kind", "--no-charts"), 1, path, "alias bomb")


def test_100k_deep_nesting_does_not_crash_libyaml(ws):
    path = _manifest(ws, "deep.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\ndata:\n  x: "
                     + "[" * 100_000 + "]" * 100_000 + "\n")
    ws.assert_contained(ws.run("render", "kind", "--no-charts"), 1, path, "nesting deeper than 100")


def test_5k_deep_values_are_bounded_before_the_merge(ws):
    (ws.repo / VALUES).write_text((ws.repo / VALUES).read_text()
                                  + "deep: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n")
    ws.assert_contained(ws.run("validate", "kind"), 1, VALUES, "nesting deeper than 100")


def test_a_50_mb_value_is_over_the_file_bound(ws):
    with (ws.repo / VALUES).open("a") as values:
        values.write("huge: " + "x" * (50 * 1024 * 1024) + "\n")
    ws.assert_contained(ws.run("validate", "kind"), 1, VALUES, "bound")


def test_100k_objects_in_one_file_are_over_the_document_bound(ws):
    path = _manifest(ws, "many.yaml", "".join(f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}}}\n"
                                              for i in range(100_000)))
    ws.assert_contained(ws.run("render", "kind", "--no-charts"), 1, path, "YAML documents")


def test_a_file_that_is_not_utf8(ws):
    path = f"{CONTROLLERS_BASE}/latin1.yaml"
    (ws.repo / path).write_bytes("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: caf\xe9}\n".encode("latin-1"))
    ws.add_resource(f"{CONTROLLERS_BASE}/kustomization.yaml", "latin1.yaml")
    ws.assert_contained(ws.run("render", "kind", "--no-charts"), 1, path, "not UTF-8")


def test_a_duplicate_key_is_reported_with_its_line(ws):
    path = _manifest(ws, "dup.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dup\n  name: other\n")
    ws.assert_contained(ws.run("render", "kind", "--no-charts"), 1, path, "line 5",
                        "mapping key 'name' already defined at line 4")


def test_two_kustomizations_owning_one_namespace(ws):
    ws.write("apps/kind/namespace.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: airflow}\n")
    ws.add_resource("apps/kind/kustomization.yaml", "namespace.yaml")
    ws.assert_contained(ws.run("validate", "kind"), 1, "Namespace airflow", "Kustomization flux-system/apps",
                        "Kustomization flux-system/infra-controllers", "apps/kind/namespace.yaml",
                        f"{CONTROLLERS_BASE}/namespaces.yaml")


def test_a_configmap_over_one_mebibyte(ws):
    path = _manifest(ws, "big.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big, namespace: default}\n"
                     f"data:\n  blob: {'x' * (1024 * 1024 + 1)}\n")
    ws.assert_contained(ws.run("validate", "kind"), 1, path, "ConfigMap default/big", "1,048,576-byte")


def test_a_cluster_added_by_the_pull_request_diffs_as_all_added(ws):
    ws.git_commit()
    (ws.repo / "clusters/kind").rename(ws.repo / "clusters/kind2")
    outcome = ws.run("diff", "kind2", "--base", "main")
    ws.assert_contained(outcome, 1, "--- /dev/null", "+++ working-tree/HelmRelease/airflow/airflow")
    assert "--- main/" not in outcome.out


def test_a_cluster_removed_by_the_pull_request_diffs_as_all_removed(ws):
    ws.git_commit()
    (ws.repo / "clusters/kind").rename(ws.repo / "clusters/kind2")
    outcome = ws.run("diff", "kind", "--base", "main")
    ws.assert_contained(outcome, 1, "--- main/HelmRelease/airflow/airflow", "+++ /dev/null")
    assert "+++ working-tree/" not in outcome.out


def test_diff_of_an_unchanged_tree_exits_0(ws):
    ws.git_commit()
    ws.assert_contained(ws.run("diff", "kind", "--base", "main"), 0, "0 object(s) differ")


def test_diff_refuses_a_tree_that_reads_outside_with_exit_2(ws):
    ws.git_commit()
    ws.add_resource("infrastructure/controllers/kind/kustomization.yaml", str(ws.canary_file))
    ws.assert_contained(ws.run("diff", "kind", "--base", "main"), 2, "absolute path", "no diff is shown")


@pytest.mark.parametrize("command", [["validate", "nowhere"], ["values", "kind", "nothing"], ["render", "nowhere"]])
def test_errors_exit_2_in_every_subcommand(ws, command):
    ws.assert_contained(ws.run(*command), 2, "error")


def test_an_unexpected_crash_exits_2_with_one_line(monkeypatch, capsys):
    # In process: the guard in cli.main, with a handler that fails as a bug would.
    def broken(args):
        raise KeyError("spec")

    monkeypatch.setattr("airflow_gitops.commands.render.run", broken)
    assert cli.main(["render", "kind"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error" in err and "KeyError" in err and "Traceback" not in err


def test_an_alias_bomb_outside_the_usual_folders_is_read_by_the_bounded_loader_before_kustomize(ws):
    # extra/ is not among the folders indexed up front: kustomize must still never be the first to parse it.
    ws.write("extra/bomb.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n  "
             + _alias_bomb().replace("\n", "\n  "))
    ws.add_resource("infrastructure/controllers/kind/kustomization.yaml", "../../../extra/bomb.yaml")
    ws.assert_contained(ws.run("render", "kind", "--no-charts"), 1, "extra/bomb.yaml", "alias bomb", "not built")


def test_a_subprocess_over_its_wall_clock_is_stopped(monkeypatch):
    # In process, with a small bound: the same code runs kustomize for every build.
    from airflow_gitops.model import RenderError
    from airflow_gitops.source import bounds

    monkeypatch.setattr(bounds, "SUBPROCESS_TIMEOUT_S", 1)
    with pytest.raises(RenderError, match="kustomize build apps/kind: took over 1 s"):
        bounds.run_bounded(["sleep", "10"], "kustomize build apps/kind")


def test_a_subprocess_over_its_output_cap_is_stopped_by_the_kernel(monkeypatch):
    from airflow_gitops.model import RenderError
    from airflow_gitops.source import bounds

    monkeypatch.setattr(bounds, "MAX_OUTPUT_BYTES", 4096)
    with pytest.raises(RenderError, match="kustomize build apps/kind: output over the 4,096-byte bound"):
        bounds.run_bounded(["bash", "-c", "sleep 0.2; head -c 1000000 /dev/zero"], "kustomize build apps/kind")


def test_a_flow_style_alias_bomb_after_quoted_keys(ws):
    # `"key":*alias` needs no space after the colon in flow style.
    bomb = '{"a0":&a0 [1,1,1,1,1,1,1,1,1,1]' + "".join(
        f', "a{i}":&a{i} [' + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)) + "}"
    path = _manifest(ws, "flow-bomb.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: flow-bomb}\n"
                     f"data: {bomb}\n")
    ws.assert_contained(ws.run("render", "kind", "--no-charts"), 1, path, "alias bomb")


BACKTRACKING_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: {type: string, pattern: "^(a+)+$"}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w, namespace: cnpg-system}
spec: {size: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!}
"""


def test_a_backtracking_pattern_in_a_crd_from_git_does_not_stop_validate(ws):
    """The cluster's own CRDs are schemas, and a pull request writes them: `^(a+)+$` on 40 a's and a `!` would take
    a backtracking matcher about 2^40 steps. RE2, as the API server's Go regexp, answers at once."""
    path = _manifest(ws, "widget.yaml", BACKTRACKING_CRD)
    ws.assert_contained(ws.run("validate", "kind"), 1, path, "Widget cnpg-system/w", "spec.size",
                        "does not match '^(a+)+$'")
