"""The chart cache object (helm_controller/chart.py) and the engine's warnings through logging."""

from __future__ import annotations

import logging
import os

import pytest
from airflow_gitops.cli import configure_logging
from airflow_gitops.helm_controller import chart as chart_module
from airflow_gitops.helm_controller.chart import ChartCache, ChartUnavailable
from airflow_gitops.model import WARNING, ClusterState, Resource
from airflow_gitops.policy_config import PolicyConfig
from airflow_gitops.settings import CHARTS_ENV, Settings, parse_chart_overrides

from tests.helpers import REPO, skip_for

OCI_URL = "oci://registry.example.invalid/charts"
HTTPS_URL = "https://charts.example.org"
ALLOWED = PolicyConfig(allowed_helm_repositories=(HTTPS_URL,), allowed_oci_repositories=(OCI_URL,))


def helmrelease(chart: str, version: str, source: str = "charts") -> Resource:
    obj = {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
           "metadata": {"name": chart, "namespace": "apps"},
           "spec": {"chart": {"spec": {"chart": chart, "version": version,
                                       "sourceRef": {"kind": "HelmRepository", "name": source}}}}}
    return Resource(obj, "apps/release.yaml", "Kustomization flux-system/apps")


def cluster(url: str) -> ClusterState:
    repository = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
                  "metadata": {"name": "charts", "namespace": "apps"},
                  "spec": {"url": url, **({"type": "oci"} if url.startswith("oci://") else {})}}
    return ClusterState("test", resources=[Resource(repository, "apps/sources.yaml", "Kustomization flux-system/apps")])


def test_a_chart_that_cannot_be_had_is_remembered_by_its_cache_only(tmp_path, monkeypatch):
    # The pull itself is replaced (a mock: this machine has no chart repository to reach) to count the attempts.
    attempts = []

    def failing_pull(name, version, url, destination):
        attempts.append(url)
        raise ChartUnavailable(f"chart {name} {version} from {url} could not be fetched")

    monkeypatch.setattr(chart_module, "_pull", failing_pull)
    settings = Settings(repo=REPO, cache_dir=tmp_path)
    cache = ChartCache()
    for _ in range(2):
        with pytest.raises(ChartUnavailable, match="could not be fetched"):
            cache.load(settings, cluster(HTTPS_URL), helmrelease("demo", "1.0.0"), ALLOWED)
    assert attempts == [HTTPS_URL]
    assert list(cache.unavailable) == [("demo", "1.0.0", HTTPS_URL)]
    assert ChartCache().unavailable == {}


@pytest.mark.parametrize("url, message", [
    ("https://charts.example.org/other", "not fetched: the URL of HelmRepository apps/charts is not in "
                                         "allowed-helm-repositories"),
    ("https://user:token@charts.example.org", "not fetched"),
    (OCI_URL, r"is not rendered offline"),
])
def test_a_chart_from_a_repository_the_policy_does_not_allow_is_never_pulled(tmp_path, monkeypatch, url, message):
    monkeypatch.setattr(chart_module, "_pull", lambda *args: pytest.fail(f"pulled from {url}"))
    with pytest.raises(ChartUnavailable, match=message):
        ChartCache().load(Settings(repo=REPO, cache_dir=tmp_path), cluster(url), helmrelease("demo", "1.0.0"),
                          ALLOWED)


@pytest.mark.parametrize("chart, version", [("../../../outside/chart", "1.0.0"), ("demo", "../../x"),
                                            ("demo", "1.0.0/../../x"), ("..", "1.0.0")])
def test_a_chart_name_or_version_is_never_a_path(tmp_path, monkeypatch, chart, version):
    monkeypatch.setattr(chart_module, "_pull", lambda *args: pytest.fail("pulled"))
    with pytest.raises(ChartUnavailable, match="not a chart name and version"):
        ChartCache().load(Settings(repo=REPO, cache_dir=tmp_path), cluster(HTTPS_URL), helmrelease(chart, version),
                          ALLOWED)


def test_a_helmrepository_not_in_the_cluster_is_named(tmp_path):
    with pytest.raises(ChartUnavailable, match="HelmRepository elsewhere is not applied by this cluster"):
        ChartCache().load(Settings(repo=REPO, cache_dir=tmp_path), cluster(HTTPS_URL),
                          helmrelease("demo", "1.0.0", "elsewhere"), ALLOWED)


def test_the_cli_prints_engine_warnings_on_stderr(capsys):
    configure_logging()
    configure_logging()  # idempotent: one handler, one line
    logging.getLogger("airflow_gitops.helm_controller.chart").warning("a local chart differs")
    assert capsys.readouterr().err == "WARNING: a local chart differs\n"


def test_a_local_chart_of_another_version_warns_once_per_cache(caplog, tmp_path):
    local = parse_chart_overrides(os.environ.get(CHARTS_ENV, "")).get("airflow")
    if local is None:
        skip_for("chart", f"set {CHARTS_ENV}=airflow=PATH to check the local-chart warning")
    settings = Settings(repo=REPO, local_charts={"airflow": local}, cache_dir=tmp_path)
    cache, state = ChartCache(), ClusterState("test")
    release = helmrelease("airflow", "0.0.1")
    with caplog.at_level(logging.WARNING, logger="airflow_gitops"):
        assert cache.load(settings, state, release, ALLOWED) is cache.load(settings, state, release, ALLOWED)
    assert [r.getMessage() for r in caplog.records if r.name == "airflow_gitops.helm_controller.chart"] == [
        f"rendering HelmRelease apps/airflow with local chart airflow {cache.loaded[local].version} from {local}, "
        "but the manifests pin airflow 0.0.1: output may differ from what Flux installs"]
    assert [(f.severity, f.field) for f in state.findings] == [(WARNING, "spec.chart.spec.version")] * 2
