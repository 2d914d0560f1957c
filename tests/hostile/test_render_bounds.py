"""Render bounds: charts run values through `tpl`, so a value from the pull request is a template of its own, run by
the Helm SDK (Go) with no bound of its own. Each render runs in a child process that the tool stops at its time limit
or its memory cap (helm_controller/render_process.py): the finding names the HelmRelease, its values files and the
field, says which limit was hit and how to raise it; the other releases and clusters still report. Small limits,
given as options, keep each test to seconds."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from airflow_gitops.helm_controller import render_process
from airflow_gitops.settings import CHARTS_ENV, RENDER_MEMORY_ENV, RENDER_TIMEOUT_ENV, parse_chart_overrides

from tests.helpers import REPO, skip_for

CHARTS = REPO / "tests" / "testdata" / "charts"
# Runs its `greeting` value through tpl (a chart made for these tests); `tiny` renders next to it.
CHART_OPTIONS = ["--chart", f"tpl-echo={CHARTS / 'tpl-echo'}", "--chart", f"tiny={CHARTS / 'tiny'}"]
ECHO_VALUES = "charts-values/echo/kind.yaml"
# 10^10 turns of an empty loop: minutes of CPU in constant memory.
LOOP = "{{ range until 100000 }}{{ range until 100000 }}{{ end }}{{ end }}"
# A value that runs itself through tpl: Go's stack grows (to 4 GB here, unbounded) until Go gives up.
RECURSION = "{{ tpl .Values.greeting . }}"
TIME_ADVICE = ("(a loop in a template, or in a value the chart runs through `tpl`? If the chart really needs longer: "
               f"--render-timeout SECONDS or {RENDER_TIMEOUT_ENV})")
MEMORY_ADVICE = ("(a template, or a value the chart runs through `tpl`, that grows without end? If the chart really "
                 f"needs more: --render-memory MIB or {RENDER_MEMORY_ENV})")

_ECHO_KUSTOMIZATION = """\
resources:
  - helmreleases.yaml
configMapGenerator:
  - name: echo-values
    files:
      - values.yaml=../../../charts-values/echo/kind.yaml
configurations:
  - ../../base/airflow/kustomizeconfig.yaml
"""
_ECHO_RELEASES = """\
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: echo
spec:
  interval: 10m
  chart:
    spec:
      chart: tpl-echo
      version: 0.1.0
      sourceRef: {kind: HelmRepository, name: apache-airflow, namespace: flux-system}
  valuesFrom:
    - kind: ConfigMap
      name: echo-values
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: tiny
spec:
  interval: 10m
  chart:
    spec:
      chart: tiny
      version: 0.1.0
      sourceRef: {kind: HelmRepository, name: apache-airflow, namespace: flux-system}
  values:
    greeting: still rendered
"""


def _with_echo_release(ws, greeting: str) -> None:
    """Two more releases on kind: `echo`, whose values file holds `greeting`, and its neighbour `tiny`."""
    ws.write("apps/kind/echo/kustomization.yaml", _ECHO_KUSTOMIZATION)
    ws.write("apps/kind/echo/helmreleases.yaml", _ECHO_RELEASES)
    ws.write(ECHO_VALUES, f"greeting: {_quoted(greeting)}\n")
    ws.add_resource("apps/kind/kustomization.yaml", "echo")


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _finding(message: str, advice: str, files: str = ECHO_VALUES, fields: str = "spec.valuesFrom") -> str:
    """The finding line as `render` prints it (on stderr); `validate` prefixes it with `<cluster>: `."""
    return f"{files}: HelmRelease airflow/echo: {fields}: chart tpl-echo 0.1.0: {message} {advice}\n"


def _summary(outcome, cluster: str) -> str:
    """The last line of a cluster's `validate` report: `<cluster>: N objects checked, N error(s), ...`."""
    return next(line for line in outcome.out.splitlines() if line.startswith(f"{cluster}: ") and "objects checked" in line)


def test_a_tpl_loop_in_a_values_file_is_stopped_at_the_time_limit(ws):
    _with_echo_release(ws, LOOP)
    started = time.monotonic()
    outcome = ws.run("validate", "all", *CHART_OPTIONS, "--render-timeout", "2")
    ws.assert_contained(outcome, 1)
    assert time.monotonic() - started < 25
    assert "\nkind: " + _finding("the render took over 2 s and was stopped", TIME_ADVICE) in "\n" + outcome.out
    assert ", 1 error(s), " in _summary(outcome, "kind")
    assert ", 0 error(s), " in _summary(outcome, "eks")


def test_a_runaway_tpl_recursion_is_stopped_at_the_memory_cap(ws):
    _with_echo_release(ws, RECURSION)
    outcome = ws.run("validate", "kind", *CHART_OPTIONS, "--render-memory", "512")
    ws.assert_contained(outcome, 1)
    assert "\nkind: " + _finding("the render needed more than its 512 MiB memory cap and was stopped",
                                 MEMORY_ADVICE) in "\n" + outcome.out


def test_the_neighbour_still_renders_and_nothing_of_the_stopped_release_is_written(ws):
    _with_echo_release(ws, LOOP)
    outcome = ws.run("render", "kind", *CHART_OPTIONS, "--render-timeout", "2", "-o", str(ws.out))
    ws.assert_contained(outcome, 1)
    assert _finding("the render took over 2 s and was stopped", TIME_ADVICE) in outcome.err
    assert (ws.out / "ConfigMap" / "airflow--tiny.yaml").is_file()
    assert not (ws.out / "ConfigMap" / "airflow--echo.yaml").exists()


def test_a_loop_in_inline_values_names_the_helmrelease_file_and_spec_values(ws):
    _with_echo_release(ws, "hello")
    ws.write("apps/kind/echo/helmreleases.yaml", _ECHO_RELEASES.replace(
        "      name: echo-values\n", f"      name: echo-values\n  values:\n    greeting: {_quoted(LOOP)}\n", 1))
    outcome = ws.run("render", "kind", *CHART_OPTIONS, "--render-timeout", "2")
    ws.assert_contained(outcome, 1)
    assert _finding("the render took over 2 s and was stopped", TIME_ADVICE,
                    files=f"{ECHO_VALUES}, apps/kind/echo/helmreleases.yaml",
                    fields="spec.valuesFrom, spec.values") in outcome.err


def test_the_limits_come_from_the_environment_too(ws):
    _with_echo_release(ws, LOOP)
    outcome = ws.run("render", "kind", *CHART_OPTIONS, env={RENDER_TIMEOUT_ENV: "1.5"})
    ws.assert_contained(outcome, 1, "the render took over 1.5 s and was stopped")


def test_an_option_beats_the_environment_which_beats_the_default(monkeypatch):
    from argparse import Namespace

    from airflow_gitops.settings import DEFAULT_RENDER_MEMORY_MIB, DEFAULT_RENDER_TIMEOUT_S, Settings

    monkeypatch.delenv(RENDER_TIMEOUT_ENV, raising=False)
    monkeypatch.delenv(RENDER_MEMORY_ENV, raising=False)
    default = Settings.from_args(Namespace(repo=str(REPO)))
    assert (default.render_timeout_s, default.render_memory_mib) == (DEFAULT_RENDER_TIMEOUT_S, DEFAULT_RENDER_MEMORY_MIB)
    monkeypatch.setenv(RENDER_TIMEOUT_ENV, "5")
    monkeypatch.setenv(RENDER_MEMORY_ENV, "300")
    by_env = Settings.from_args(Namespace(repo=str(REPO)))
    assert (by_env.render_timeout_s, by_env.render_memory_mib) == (5.0, 300)
    by_option = Settings.from_args(Namespace(repo=str(REPO), render_timeout="7.5", render_memory="400"))
    assert (by_option.render_timeout_s, by_option.render_memory_mib) == (7.5, 400)


def test_a_bad_limit_is_a_usage_error(ws):
    outcome = ws.run("render", "kind", "--render-memory", "lots")
    ws.assert_contained(outcome, 2, "--render-memory: expected a positive number of MiB, a whole number, got 'lots'")


def test_a_diff_of_a_tree_whose_render_was_stopped_is_refused(ws):
    _with_echo_release(ws, "hello")
    ws.git_commit()
    ws.write(ECHO_VALUES, f"greeting: {_quoted(LOOP)}\n")
    outcome = ws.run("diff", "kind", "--base", "main", *CHART_OPTIONS, "--render-timeout", "2")
    ws.assert_contained(outcome, 2, "the render took over 2 s and was stopped", "no diff is shown")


def test_a_real_render_passes_under_the_default_limits(ws):
    _with_echo_release(ws, "hello from {{ .Release.Name }}")
    outcome = ws.run("render", "kind", *CHART_OPTIONS)
    ws.assert_contained(outcome, 0)
    assert "greeting: hello from echo" in outcome.out and "greeting: still rendered" in outcome.out


def _official_chart() -> Path:
    chart = parse_chart_overrides(os.environ.get(CHARTS_ENV, "")).get("airflow")
    if chart is None:
        skip_for("chart", f"set {CHARTS_ENV}=airflow=PATH to run a `tpl` of the official Airflow chart")
    return chart


def test_a_loop_through_a_tpl_of_the_official_chart_is_stopped(ws):
    # dag-processor-deployment.yaml: `args: {{ tpl (toYaml .Values.dagProcessor.args) . | nindent 12 }}`.
    chart = _official_chart()
    values = "charts-values/airflow/kind.yaml"
    (ws.repo / values).write_text((ws.repo / values).read_text() + f"dagProcessor:\n  args: [{_quoted(LOOP)}]\n")
    outcome = ws.run("validate", "all", "--chart", f"airflow={chart}", "--render-timeout", "10", timeout=90)
    ws.assert_contained(outcome, 1)
    files = ("charts-values/airflow/common.yaml, charts-values/airflow/kind.yaml, "
             "charts-values/airflow/schema-rollback.yaml")
    stopped = next(line for line in outcome.out.splitlines() if "the render took over" in line)
    assert stopped.startswith(f"kind: {files}: HelmRelease airflow/airflow: spec.valuesFrom: chart airflow ")
    assert stopped.endswith(f": the render took over 10 s and was stopped {TIME_ADVICE}")
    assert ", 1 error(s), " in _summary(outcome, "kind")
    assert ", 0 error(s), " in _summary(outcome, "eks")


# In process: the render process itself.

LIMITS = render_process.RenderLimits(timeout_s=60, memory_bytes=2048 * 1024 * 1024, max_output_bytes=4096)


def test_an_answer_over_the_output_bound_is_dropped_and_the_next_render_works():
    renderer = render_process.Renderer()
    try:
        with pytest.raises(render_process.RenderLimitExceeded, match="over the 4,096-byte bound") as stopped:
            renderer.render(CHARTS / "tpl-echo", "digest", {"greeting": "x" * 10_000}, "echo", "apps", LIMITS)
        assert stopped.value.limit == "output"
        manifests = renderer.render(CHARTS / "tpl-echo", "digest", {"greeting": "small"}, "echo", "apps", LIMITS)
        assert 'greeting: "small"' in manifests["tpl-echo/templates/configmap.yaml"]
    finally:
        renderer.stop()


def test_a_chart_that_refuses_the_values_keeps_the_render_process():
    renderer = render_process.Renderer()
    try:
        with pytest.raises(render_process.RenderRefused, match="no greeting"):
            renderer.render(CHARTS / "tpl-echo", "digest", {"greeting": '{{ fail "no greeting" }}'}, "echo", "apps",
                            LIMITS)
        pid = renderer._proc.pid
        renderer.render(CHARTS / "tpl-echo", "digest", {"greeting": "hello"}, "echo", "apps", LIMITS)
        assert renderer._proc.pid == pid
    finally:
        renderer.stop()


def test_a_chart_changed_in_place_is_loaded_again(tmp_path):
    # The render process keeps charts loaded by path; a new content digest (as the chart cache computes) reloads.
    chart = shutil.copytree(CHARTS / "tpl-echo", tmp_path / "tpl-echo")
    template = chart / "templates" / "configmap.yaml"
    renderer = render_process.Renderer()
    try:
        first = renderer.render(chart, "before", {"greeting": "hi"}, "echo", "apps", LIMITS)
        template.write_text(template.read_text().replace("greeting:", "changed:"))
        assert renderer.render(chart, "before", {"greeting": "hi"}, "echo", "apps", LIMITS) == first
        second = renderer.render(chart, "after", {"greeting": "hi"}, "echo", "apps", LIMITS)
        assert 'changed: "hi"' in second["tpl-echo/templates/configmap.yaml"]
    finally:
        renderer.stop()


def test_the_render_process_dies_with_the_tool():
    # A tool killed mid-render (SIGKILL: no atexit) must not leave a render looping on: PR_SET_PDEATHSIG.
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from airflow_gitops.helm_controller import render_process as rp\n"
        "r = rp.Renderer()\n"
        "r.start()\n"
        "print(r._proc.pid, flush=True)\n"
        f"r.render(Path({str(CHARTS / 'tpl-echo')!r}), 'digest', {{'greeting': {LOOP!r}}}, 'echo', 'apps',\n"
        "         rp.RenderLimits(600, 2 << 30, 1 << 20))\n"
    )
    tool = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO / "scripts")})
    child = int(tool.stdout.readline())
    time.sleep(1.0)  # the loop is running
    tool.send_signal(signal.SIGKILL)
    tool.wait(timeout=10)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and _state(child) != "Z" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{child}").exists() or _state(child) == "Z", "the render process outlived the tool"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"
