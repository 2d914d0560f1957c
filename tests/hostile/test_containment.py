"""Containment: a pull request cannot make the tool read outside the repository, write outside its output,
pass options to git, or name a path as a cluster."""

from __future__ import annotations

import os
import sys

import pytest

KIND_APPS = "apps/kind/kustomization.yaml"
KIND_CONTROLLERS = "infrastructure/controllers/kind/kustomization.yaml"


def _render(ws):
    return ws.run("render", "kind", "--no-charts")


@pytest.mark.parametrize("entry", ["../../../../outside/canary.yaml", "../../../../outside", "{abs}/canary.yaml"],
                         ids=["relative-file", "relative-folder", "absolute"])
def test_resources_outside_the_repository_are_refused(ws, entry):
    ws.add_resource(KIND_CONTROLLERS, entry.format(abs=ws.outside))
    ws.assert_contained(_render(ws), 1, KIND_CONTROLLERS, "resources[0]", "refused")


@pytest.mark.parametrize("entry", ["https://github.com/fluxcd/flux2-kustomize-helm-example//apps/base?ref=main",
                                   "git::https://example.com/repo.git//x", "github.com/org/repo//base?ref=v1"])
def test_remote_resources_are_refused_offline(ws, entry):
    ws.add_resource(KIND_CONTROLLERS, entry)
    ws.assert_contained(_render(ws), 1, KIND_CONTROLLERS, "resources[0]", "remote")


def test_generator_files_outside_are_refused_in_a_kustomization_spelled_Kustomization(ws):
    folder = ws.repo / "apps/kind"
    text = (folder / "kustomization.yaml").read_text()
    (folder / "kustomization.yaml").unlink()
    text = text.replace("configMapGenerator:\n", f"configMapGenerator:\n  - name: leak\n    files: [x={ws.canary_file}]\n")
    (folder / "Kustomization").write_text(text)
    ws.assert_contained(_render(ws), 1, "apps/kind/Kustomization", "configMapGenerator[0].files[0]")


def test_generator_envs_outside_are_refused(ws):
    ws.write(KIND_APPS, (ws.repo / KIND_APPS).read_text()
             + "secretGenerator:\n  - name: leak\n    envs:\n      - ../../../outside/canary.env\n")
    ws.assert_contained(_render(ws), 1, KIND_APPS, "secretGenerator[0].envs[0]")


def test_patch_path_outside_is_refused_in_kustomization_yml(ws):
    folder = ws.repo / "infrastructure/controllers/kind"
    text = (folder / "kustomization.yaml").read_text()
    (folder / "kustomization.yaml").unlink()
    (folder / "kustomization.yml").write_text(text + "patches:\n  - path: /etc/passwd\n")
    ws.assert_contained(_render(ws), 1, "infrastructure/controllers/kind/kustomization.yml", "patches[0].path",
                        "absolute path")


@pytest.mark.parametrize("field", ["replacements:\n  - path: ../../../../outside/canary.yaml\n",
                                   "openapi:\n  path: ../../../../outside/canary.yaml\n",
                                   "components:\n  - ../../../../outside\n",
                                   "transformers:\n  - |\n    apiVersion: builtin\n    kind: PatchTransformer\n"
                                   "    metadata: {name: leak}\n    path: ../../../../outside/canary.yaml\n"],
                         ids=["replacements", "openapi", "components", "inline-transformer"])
def test_every_path_field_is_checked(ws, field):
    ws.write(KIND_CONTROLLERS, (ws.repo / KIND_CONTROLLERS).read_text() + field)
    ws.assert_contained(_render(ws), 1, KIND_CONTROLLERS, field.split(":")[0], "outside the repository")


def test_helm_chart_inflation_in_a_kustomization_is_refused(ws):
    ws.write(KIND_CONTROLLERS, (ws.repo / KIND_CONTROLLERS).read_text()
             + "helmCharts:\n  - name: x\n    repo: https://example.com\n    valuesFile: /etc/passwd\n")
    ws.assert_contained(_render(ws), 1, KIND_CONTROLLERS, "helmCharts", "HelmRelease")


def test_a_flux_patch_with_a_path_is_refused(ws):
    apps = ws.repo / "clusters/kind/apps.yaml"
    apps.write_text(apps.read_text() + "  patches:\n    - path: /etc/passwd\n      target: {kind: HelmRelease}\n")
    ws.assert_contained(_render(ws), 1, "clusters/kind/apps.yaml", "spec.patches[0]", "Kustomization flux-system/apps")


def test_a_symlinked_manifest_leading_outside_is_refused_and_not_followed(ws):
    os.symlink(ws.canary_file, ws.repo / "infrastructure/controllers/base/leak.yaml")
    ws.add_resource(KIND_CONTROLLERS, "../base/leak.yaml")
    ws.assert_contained(_render(ws), 1, "infrastructure/controllers/base/leak.yaml", "symlink")


def test_a_symlinked_folder_as_kustomization_path_is_refused(ws):
    os.symlink(ws.outside, ws.repo / "apps/leak")
    apps = ws.repo / "clusters/kind/apps.yaml"
    apps.write_text(apps.read_text().replace("path: ./apps/kind", "path: ./apps/leak"))
    ws.assert_contained(_render(ws), 1, "apps/leak", "clusters/kind/apps.yaml", "spec.path")


def test_a_symlinked_kustomization_file_is_refused(ws):
    target = ws.repo / KIND_APPS
    target.unlink()
    os.symlink(ws.outside / "kustomization.yaml", target)
    ws.assert_contained(_render(ws), 1, KIND_APPS, "symlink")


def test_links_outside_the_folders_the_tool_reads_are_not_its_business(ws):
    # A local venv (.venv, .venv-checkov) is full of links to the host's Python: nothing the tool reads.
    (ws.repo / ".venv-tool/bin").mkdir(parents=True)
    os.symlink(sys.executable, ws.repo / ".venv-tool/bin/python3")
    outcome = ws.run("validate", "kind")
    assert outcome.code == 0 and ".venv-tool" not in outcome.text, outcome.text[-3000:]


def test_object_names_never_escape_the_output_folder(ws):
    ws.write("infrastructure/controllers/base/escape.yaml",
             "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ../../../outside/pwned, namespace: /tmp}\n")
    ws.add_resource("infrastructure/controllers/base/kustomization.yaml", "escape.yaml")
    outcome = ws.run("render", "kind", "--no-charts", "-o", str(ws.out))
    ws.assert_contained(outcome, 0, "objects to")
    written = [p for p in ws.out.rglob("*") if p.is_file()]
    assert written and all(ws.out in p.resolve().parents for p in written)
    assert not (ws.outside / "pwned.yaml").exists()


def test_diff_base_is_a_commit_never_a_git_option(ws):
    ws.git_commit()
    trap = ws.outside / "truncated"
    outcome = ws.run("diff", "kind", f"--base=--output={trap}")
    ws.assert_contained(outcome, 2, "is not a commit")
    assert not trap.exists()


@pytest.mark.parametrize("cluster", ["../apps", "/etc", "kind/../eks", "all"])
def test_the_cluster_argument_is_a_folder_name_not_a_path(ws, cluster):
    ws.assert_contained(ws.run("render", cluster, "--no-charts"), 2, "is not a cluster", "clusters/")


def test_a_post_renderer_patch_with_a_path_is_refused():
    # In process: post-rendering runs only where the chart renders, and CI has no chart.
    from airflow_gitops.helm_controller.render import post_render_patches
    from airflow_gitops.model import RenderError, Resource

    hr = Resource({"kind": "HelmRelease", "metadata": {"name": "airflow", "namespace": "airflow"},
                   "spec": {"postRenderers": [{"kustomize": {"patches": [
                       {"patch": "[]", "target": {"kind": "Deployment"}},
                       {"path": "/etc/passwd", "target": {"kind": "Deployment"}}]}}]}},
                  "apps/base/airflow/helmrelease.yaml", "Kustomization flux-system/apps")
    with pytest.raises(RenderError) as refused:
        post_render_patches(hr)
    assert str(refused.value).startswith("apps/base/airflow/helmrelease.yaml: HelmRelease airflow/airflow: "
                                         "spec.postRenderers[0].kustomize.patches[1]: unknown field(s) path")


def test_dot_dot_after_a_symlink_is_resolved_as_the_os_does(ws):
    # Lexically (as kustomize joins paths) apps/kind/up/../outside/canary.yaml stays inside, and exists; a
    # reader that follows `up` to the repository root first leaves it with `..`. Both readings must stay in.
    os.symlink("../..", ws.repo / "apps/kind/up")
    ws.write("apps/kind/outside/canary.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: decoy}\n")
    ws.write(KIND_APPS, (ws.repo / KIND_APPS).read_text().replace("resources:\n",
                                                                   "resources:\n  - up/../outside/canary.yaml\n"))
    ws.assert_contained(_render(ws), 1, KIND_APPS, "resources[0]", "symlink")
