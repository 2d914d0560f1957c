"""helm-controller starts on a HelmRelease while kustomize-controller still builds what it depends on: the
reconcile step shows a build that finished early, applied out of order to a scratch state, and the render process
answers the later render from a render sent ahead only when the request is the very same. A real Helm render of
the small test charts and a real kustomize, so it runs in CI."""

from __future__ import annotations

import time

import pytest
from airflow_gitops.helm_controller import render_process
from airflow_gitops.kustomize_controller import reconcile
from airflow_gitops.model import ClusterState
from airflow_gitops.settings import Settings
from airflow_gitops.source.provenance import SourceIndex

from tests.helpers import REPO

TESTDATA = REPO / "tests" / "testdata"
ECHO = TESTDATA / "charts" / "tpl-echo"
# `plain` depends on `apps` (tests/testdata/build/clusters/dev/apps.yaml).
BUILD_CASE = TESTDATA / "build"
LIMITS = render_process.RenderLimits(timeout_s=60, memory_bytes=2048 * 1024 * 1024, max_output_bytes=1 << 20)


@pytest.fixture
def renderer(monkeypatch):
    sent = []
    real_send = render_process.render_child.send
    monkeypatch.setattr(render_process.render_child, "send", lambda fd, request: (sent.append(request),
                                                                                   real_send(fd, request)))
    renderer = render_process.Renderer()
    renderer.sent = sent
    yield renderer
    renderer.stop()


def _greeting(manifests: dict[str, str]) -> str:
    return manifests["tpl-echo/templates/configmap.yaml"].split("greeting: ")[1].strip()


def test_the_render_sent_ahead_answers_the_same_request_without_a_second_render(renderer):
    renderer.prefetch(ECHO, "digest", {"greeting": "ahead"}, "echo", "apps", LIMITS)
    manifests = renderer.render(ECHO, "digest", {"greeting": "ahead"}, "echo", "apps", LIMITS)
    assert _greeting(manifests) == '"ahead"'
    assert len(renderer.sent) == 1


def test_a_wrong_guess_is_dropped_and_the_request_rendered(renderer):
    renderer.prefetch(ECHO, "digest", {"greeting": "guess"}, "echo", "apps", LIMITS)
    manifests = renderer.render(ECHO, "digest", {"greeting": "asked"}, "echo", "apps", LIMITS)
    assert _greeting(manifests) == '"asked"'
    assert len(renderer.sent) == 2


def test_a_guess_the_chart_refuses_is_nobodys_error(renderer):
    renderer.prefetch(ECHO, "digest", {"greeting": '{{ fail "bad guess" }}'}, "echo", "apps", LIMITS)
    assert _greeting(renderer.render(ECHO, "digest", {"greeting": "fine"}, "echo", "apps", LIMITS)) == '"fine"'


def test_the_same_request_refused_is_reported_as_from_a_render_of_its_own(renderer):
    values = {"greeting": '{{ fail "no greeting" }}'}
    renderer.prefetch(ECHO, "digest", values, "echo", "apps", LIMITS)
    with pytest.raises(render_process.RenderRefused, match="no greeting"):
        renderer.render(ECHO, "digest", values, "echo", "apps", LIMITS)


def test_one_guess_at_a_time(renderer):
    renderer.prefetch(ECHO, "digest", {"greeting": "first"}, "echo", "apps", LIMITS)
    renderer.prefetch(ECHO, "digest", {"greeting": "second"}, "echo", "apps", LIMITS)
    assert len(renderer.sent) == 1
    assert _greeting(renderer.render(ECHO, "digest", {"greeting": "first"}, "echo", "apps", LIMITS)) == '"first"'


def _apply(tmp_path, hook=None) -> ClusterState:
    settings = Settings(repo=BUILD_CASE, cache_dir=tmp_path / "cache")
    index = SourceIndex(settings.repo)
    state = ClusterState("dev")
    reconcile.apply_kustomizations(settings, index, state, index.sandbox(), hook)
    return state


def test_a_build_done_early_is_shown_applied_out_of_order_while_the_state_keeps_dependson_order(tmp_path,
                                                                                                  monkeypatch):
    real_build = reconcile.kustomize_build

    def slow_apps(folder, spec):
        if spec.get("targetNamespace") == "web":  # `apps`, which `plain` depends on
            time.sleep(0.5)
        return real_build(folder, spec)

    monkeypatch.setattr(reconcile, "kustomize_build", slow_apps)
    told = []
    state = _apply(tmp_path, lambda scratch, added: told.append((scratch, added)))

    [(scratch, added)] = told
    assert {r.applied_by for r in added} == {"Kustomization flux-system/plain"}
    appliers = [r.applied_by for r in scratch.resources]
    assert "Kustomization flux-system/apps" not in appliers  # still building when `plain` was shown
    assert appliers[-len(added):] == ["Kustomization flux-system/plain"] * len(added)
    # The state itself: `apps` before `plain`, exactly as without the hook.
    assert [r.obj for r in state.resources] == [r.obj for r in _apply(tmp_path).resources]
    applied = [r.applied_by for r in state.resources]
    assert applied.index("Kustomization flux-system/apps") < applied.index("Kustomization flux-system/plain")
