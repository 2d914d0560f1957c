"""The chart cache object (helm_controller/chart.py) and the engine's warnings through logging."""

from __future__ import annotations

import logging
import os

import pytest
from airflow_gitops.cli import configure_logging
from airflow_gitops.helm_controller.chart import ChartCache, ChartUnavailable
from airflow_gitops.model import WARNING, ClusterState, Resource
from airflow_gitops.settings import CHARTS_ENV, Settings, parse_chart_overrides

from tests.helpers import REPO

OCI_URL = "oci://registry.example.invalid/charts"


def helmrelease(chart: str, version: str, source: str = "charts") -> Resource:
    obj = {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
           "metadata": {"name": chart, "namespace": "apps"},
           "spec": {"chart": {"spec": {"chart": chart, "version": version,
                                       "sourceRef": {"kind": "HelmRepository", "name": source}}}}}
    return Resource(obj, "apps/release.yaml", "Kustomization flux-system/apps")


def oci_cluster() -> ClusterState:
    repository = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
                  "metadata": {"name": "charts", "namespace": "apps"}, "spec": {"url": OCI_URL}}
    return ClusterState("test", resources=[Resource(repository, "apps/sources.yaml", "Kustomization flux-system/apps")])


def test_a_chart_that_cannot_be_had_is_remembered_by_its_cache_only(tmp_path):
    settings = Settings(repo=REPO, cache_dir=tmp_path)
    cache = ChartCache()
    with pytest.raises(ChartUnavailable, match=f"OCI HelmRepository {OCI_URL} is not supported"):
        cache.load(settings, oci_cluster(), helmrelease("demo", "1.0.0"))
    assert list(cache.unavailable) == [("demo", "1.0.0", OCI_URL)]
    assert ChartCache().unavailable == {}


def test_a_helmrepository_not_in_the_cluster_is_named(tmp_path):
    with pytest.raises(ChartUnavailable, match="HelmRepository elsewhere is not applied by this cluster"):
        ChartCache().load(Settings(repo=REPO, cache_dir=tmp_path), oci_cluster(), helmrelease("demo", "1.0.0",
                                                                                             "elsewhere"))


def test_the_cli_prints_engine_warnings_on_stderr(capsys):
    configure_logging()
    configure_logging()  # idempotent: one handler, one line
    logging.getLogger("airflow_gitops.helm_controller.chart").warning("a local chart differs")
    assert capsys.readouterr().err == "WARNING: a local chart differs\n"


def test_a_local_chart_of_another_version_warns_once_per_cache(caplog, tmp_path):
    local = parse_chart_overrides(os.environ.get(CHARTS_ENV, "")).get("airflow")
    if local is None:
        pytest.skip(f"CHART NOT AVAILABLE: set {CHARTS_ENV}=airflow=PATH to check the local-chart warning")
    settings = Settings(repo=REPO, local_charts={"airflow": local}, cache_dir=tmp_path)
    cache, state = ChartCache(), ClusterState("test")
    release = helmrelease("airflow", "0.0.1")
    with caplog.at_level(logging.WARNING, logger="airflow_gitops"):
        assert cache.load(settings, state, release) is cache.load(settings, state, release)
    assert [r.getMessage() for r in caplog.records if r.name == "airflow_gitops.helm_controller.chart"] == [
        f"rendering HelmRelease apps/airflow with local chart airflow {cache.loaded[local].version} from {local}, "
        "but the manifests pin airflow 0.0.1: output may differ from what Flux installs"]
    assert [(f.severity, f.field) for f in state.findings] == [(WARNING, "spec.chart.spec.version")] * 2
