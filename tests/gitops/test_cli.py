"""The command line the Makefile calls: exit codes and output users rely on."""

from __future__ import annotations

import re

import yaml
from airflow_gitops.cli import main

from tests.helpers import REPO, schemas_dir


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
