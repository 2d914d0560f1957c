"""The render cache: keyed on everything a render reads and nothing else, never trusted blindly, bounded, and off
on request. A real Helm render of the small test chart (tests/testdata/charts/tiny), so it runs in CI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from airflow_gitops.helm_controller import render_cache, render_process
from airflow_gitops.helm_controller.chart import ChartCache
from airflow_gitops.pipeline import render_cluster
from airflow_gitops.settings import RENDER_CACHE_ENV, Settings

from tests.helpers import REPO

TESTDATA = REPO / "tests" / "testdata"
TINY = TESTDATA / "charts" / "tiny"
CASE = TESTDATA / "release-naming"  # a repository whose releases render with the tiny chart
BASE = {"chart": "folder:abc", "values": {"a": 1, "b": {"c": [1, 2]}}, "name": "airflow", "namespace": "airflow",
        "kube_version": "helm-python-sdk 0.2.2"}


def _key(**change) -> str:
    return render_cache.render_key(**{**BASE, **change})


@pytest.mark.parametrize(("field", "value"), [
    ("chart", "folder:abd"), ("values", {"a": 2, "b": {"c": [1, 2]}}), ("values", {"a": 1, "b": {"c": [2, 1]}}),
    ("values", {"a": "1", "b": {"c": [1, 2]}}), ("name", "airflow2"), ("namespace", "other"),
    ("kube_version", "helm-python-sdk 0.2.3"),
])
def test_the_key_changes_with_each_input(field, value):
    assert _key(**{field: value}) != _key()


def test_the_key_does_not_change_otherwise():
    assert _key(values={"b": {"c": [1, 2]}, "a": 1}) == _key()  # mapping order is not content
    assert len(_key()) == 64 and set(_key()) <= set("0123456789abcdef")


def test_the_chart_digest_follows_content_not_location(tmp_path):
    first, second = shutil.copytree(TINY, tmp_path / "one"), shutil.copytree(TINY, tmp_path / "two")
    assert render_cache.chart_digest(first) == render_cache.chart_digest(second)
    (second / "values.yaml").write_text((second / "values.yaml").read_text() + "extra: 1\n")
    assert render_cache.chart_digest(first) != render_cache.chart_digest(second)
    (first / "templates" / "new.yaml").write_text("")
    assert render_cache.chart_digest(first) != render_cache.chart_digest(TINY)


def _settings(tmp_path, enabled: bool = True) -> Settings:
    return Settings(repo=CASE, local_charts={"tiny": TINY}, cache_dir=tmp_path / "cache", render_cache=enabled)


def _objects(settings: Settings) -> list:
    state = render_cluster(settings, "dev", chart_cache=ChartCache())
    rendered = [r for r in state.releases if not r.unrendered_reason]
    assert rendered and not [f for f in state.findings if f.severity == "error"]
    return [(o.obj, o.template) for r in rendered for o in r.objects]


def _entries(tmp_path) -> list[Path]:
    return sorted((tmp_path / "cache" / "renders").glob("??/*.json"))


def _sdk_refuses_to_render(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("rendered although the cache holds this render")

    # Every Helm SDK render goes through the render process (render_process.Renderer.render).
    monkeypatch.setattr(render_process.Renderer, "render", refuse)


def test_an_unchanged_release_comes_from_the_cache(tmp_path, monkeypatch):
    fresh = _objects(_settings(tmp_path))
    assert _entries(tmp_path)
    _sdk_refuses_to_render(monkeypatch)
    assert _objects(_settings(tmp_path)) == fresh


@pytest.mark.parametrize("damage", [
    lambda text: text[: len(text) // 2],  # truncated
    lambda text: "not json",
    lambda text: text.replace('"manifests": {', '"manifests": {"templates/extra.yaml": "kind: Secret", ', 1),
    lambda text: json.dumps({**json.loads(text), "key": "0" * 64}),
])
def test_a_corrupt_entry_is_rendered_again_and_replaced(tmp_path, damage):
    fresh = _objects(_settings(tmp_path))
    entries = _entries(tmp_path)
    sound = {entry: entry.read_text() for entry in entries}
    for entry in entries:
        entry.write_text(damage(entry.read_text()))
    assert _objects(_settings(tmp_path)) == fresh
    assert {entry: entry.read_text() for entry in _entries(tmp_path)} == sound


def test_the_cache_can_be_turned_off(tmp_path, monkeypatch):
    _objects(_settings(tmp_path, enabled=False))
    assert not (tmp_path / "cache" / "renders").exists()
    monkeypatch.setenv(RENDER_CACHE_ENV, "0")
    assert Settings(repo=CASE).render_cache is False
    monkeypatch.setenv(RENDER_CACHE_ENV, "1")
    assert Settings(repo=CASE).render_cache is True


def _render_cli(tmp_path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(REPO / "scripts"), "AIRFLOW_GITOPS_CACHE": str(tmp_path / "cache"),
                   **(env or {})}
    environment.pop("AIRFLOW_GITOPS_CHARTS", None)
    return subprocess.run([sys.executable, "-m", "airflow_gitops", "render", "dev", "--repo", str(CASE),
                           "--chart", f"tiny={TINY}", *extra], capture_output=True, text=True, env=environment,
                          timeout=120)


def test_cold_warm_and_off_print_the_same_render(tmp_path):
    off = _render_cli(tmp_path, "--no-render-cache")
    assert off.returncode == 0 and not (tmp_path / "cache" / "renders").exists(), off.stderr
    off_by_env = _render_cli(tmp_path, env={RENDER_CACHE_ENV: "0"})
    assert not (tmp_path / "cache" / "renders").exists()
    cold = _render_cli(tmp_path)
    assert _entries(tmp_path)
    warm = _render_cli(tmp_path)
    assert off.stdout == off_by_env.stdout == cold.stdout == warm.stdout and "kind: ConfigMap" in off.stdout


def test_the_folder_is_kept_under_its_cap_least_recently_used_first(tmp_path):
    cache = render_cache.RenderCache(tmp_path / "renders", max_bytes=10_000)
    keys = [render_cache.render_key(**{**BASE, "name": f"r{i}"}) for i in range(4)]
    for number, key in enumerate(keys):
        cache.put(key, {"templates/a.yaml": "x" * 3_000})
        os.utime(cache._path(key), (1_000_000 + number, 1_000_000 + number))
        if number == 2:
            assert cache.get(keys[0])  # a hit makes the oldest the most recently used
    assert cache.get(keys[0]) and cache.get(keys[3])
    assert cache.get(keys[1]) is None
    total = sum(p.stat().st_size for p in (tmp_path / "renders").glob("??/*.json"))
    assert total <= 10_000


@pytest.mark.parametrize("key", ["../../etc/passwd", "a" * 63, "A" * 64, "g" * 64])
def test_only_a_hex_digest_names_an_entry(tmp_path, key):
    cache = render_cache.RenderCache(tmp_path / "renders")
    with pytest.raises(ValueError, match="SHA-256"):
        cache.put(key, {})
    assert not (tmp_path / "renders").exists()


def test_a_run_whose_renders_all_come_from_the_cache_starts_no_render_process(tmp_path):
    _objects(_settings(tmp_path))
    render_process.RENDERER.stop()
    _objects(_settings(tmp_path))
    assert render_process.RENDERER._proc is None
    _objects(_settings(tmp_path, enabled=False))
    assert render_process.RENDERER._proc is not None
