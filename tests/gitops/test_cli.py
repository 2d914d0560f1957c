"""The command line the Makefile calls: exit codes and output users rely on."""

from __future__ import annotations

import re

import yaml
from airflow_gitops.cli import main

from tests.helpers import CLUSTERS, REPO, render, schemas_dir, skip_for


def test_render_prints_a_yaml_stream_with_sources(capsys):
    assert main(["render", "kind", "--no-charts", "--repo", str(REPO)]) == 0
    out = capsys.readouterr().out
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert {"HelmRelease", "Kustomization", "Cluster", "HelmRepository"} <= {d["kind"] for d in docs}
    assert "# Source: apps/base/airflow/helmrelease.yaml" in out


def test_render_to_a_folder(tmp_path, capsys):
    assert main(["render", "eks", "--no-charts", "--repo", str(REPO), "-o", str(tmp_path)]) == 0
    assert (tmp_path / "HelmRelease" / "airflow--airflow.yaml").is_file()
    assert (tmp_path / "ExternalSecret" / "airflow--airflow-metadata-db.yaml").is_file()


def test_values_prints_the_composed_values(capsys):
    assert main(["values", "eks", "airflow", "--repo", str(REPO)]) == 0
    values = yaml.safe_load(capsys.readouterr().out)
    assert values["executor"] == "KubernetesExecutor" and values["dags"]["gitSync"]["sshKeySecret"]


def _validate_args(repo) -> list[str]:
    return ["validate", "all", "--repo", str(repo)] + (["--schemas", str(schemas_dir())] if schemas_dir() else [])


def test_validate_all_passes(capsys):
    assert main(_validate_args(REPO)) == 0
    out = capsys.readouterr().out
    assert "kind: " in out and "eks: " in out and "0 error(s)" in out


def test_with_every_chart_at_hand_validate_renders_and_validates_everything(need_schemas, capsys):
    """What CI runs (.ci/run gives every package of ../shared/charts): nothing unrendered, nothing unvalidated."""
    state = {cluster: render(cluster) for cluster in CLUSTERS}
    missing = [f"{r.helmrelease.ref}: {r.unrendered_reason}" for s in state.values() for r in s.releases
               if r.unrendered_reason]
    if missing:
        skip_for("chart", "; ".join(missing))
    assert main([*_validate_args(REPO), "--require-charts"]) == 0
    out = capsys.readouterr().out
    for cluster in CLUSTERS:
        assert re.search(rf"^{cluster}: \d+ objects checked, 0 error\(s\), 0 unvalidated, 0 release\(s\) not rendered$",
                         out, re.M), out[-3000:]


def test_a_chart_that_is_missing_is_not_rendered_and_fails_require_charts(tmp_path, capsys):
    """A chart that really is missing (a path that does not exist, an empty cache, no network here): reported, never
    passed as valid; --require-charts makes it an error."""
    missing = ["--chart", f"cert-manager={tmp_path}/absent/cert-manager-v1.19.1.tgz", "--cache-dir", str(tmp_path)]
    args = ["validate", "eks", "--repo", str(REPO), *missing] + (["--schemas", str(schemas_dir())] if schemas_dir() else [])
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"eks: NOT RENDERED (its objects are not validated): HelmRelease cert-manager/cert-manager: local chart " \
           f"{tmp_path}/absent/cert-manager-v1.19.1.tgz does not exist" in out
    assert re.search(r"^eks: \d+ objects checked, \d+ error\(s\), \d+ unvalidated, [1-9]\d* release\(s\) not rendered$",
                     out, re.M), out[-3000:]
    assert main([*args, "--require-charts"]) == 1
    assert ("eks: infrastructure/controllers/eks/cert-manager.yaml: HelmRelease cert-manager/cert-manager: spec.chart: "
            f"chart not rendered: local chart {tmp_path}/absent/cert-manager-v1.19.1.tgz does not exist"
            in capsys.readouterr().out)


def _unvalidated(out: str, cluster: str) -> int:
    line = next(line for line in out.splitlines() if line.startswith(f"{cluster}: ") and "objects checked" in line)
    return int(re.search(r", (\d+) unvalidated,", line)[1])


def test_validate_says_what_it_did_not_validate(repo_copy, capsys):
    assert main(_validate_args(repo_copy)) == 0
    before = _unvalidated(capsys.readouterr().out, "eks")
    # ServiceMonitor (Prometheus Operator): no cluster here installs its CRD, and no schema folder holds it.
    (repo_copy / "infrastructure/configs/eks/service-monitor.yaml").write_text(
        "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\n"
        "metadata: {name: airflow-statsd, namespace: airflow}\nspec: {endpoints: [{port: metrics}]}\n")
    kustomization = repo_copy / "infrastructure/configs/eks/kustomization.yaml"
    kustomization.write_text(kustomization.read_text().replace("  - node-pools.yaml\n",
                                                               "  - node-pools.yaml\n  - service-monitor.yaml\n"))
    # infra-configs waits (wait: true), and the readiness policy wants every custom resource kind covered.
    flux_ks = repo_copy / "clusters/eks/infrastructure.yaml"
    flux_ks.write_text(flux_ks.read_text().replace("  healthCheckExprs:\n", "  healthCheckExprs:\n"
                                                   "    - {apiVersion: monitoring.coreos.com/v1, kind: ServiceMonitor, "
                                                   "current: 'true'}\n"))
    assert main(_validate_args(repo_copy)) == 0, "an unvalidated object is not an error"
    out = capsys.readouterr().out
    assert "[unvalidated] infrastructure/configs/eks/service-monitor.yaml" in out
    assert _unvalidated(out, "eks") == before + 1
    closing = out.splitlines()[-1]
    assert closing.startswith("NOT CHECKED: ") and "ServiceMonitor.monitoring.coreos.com" in closing
