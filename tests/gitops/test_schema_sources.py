"""Where validate takes a custom resource's schema from: the CRDs the cluster applies itself (Git, chart output) first,
then the schema folder, then the pinned files from the network, fetched only for what the cluster does not hold.
Offline and without a folder, validate still exits 0 and says, in one closing line, what it could not check."""

from __future__ import annotations

import textwrap

import pytest
import yaml
from airflow_gitops.checks import schemas
from airflow_gitops.checks.validation import validate_cluster
from airflow_gitops.cli import main
from airflow_gitops.model import ERROR, ClusterState, ReleaseRender, Resource
from airflow_gitops.settings import Settings

from tests.helpers import REPO


def widget_crd(field: str, group: str = "example.com", pattern: str | None = None) -> dict:
    """A CRD of kind Widget whose spec takes one string field."""
    prop = {"type": "string", **({"pattern": pattern} if pattern else {})}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"widgets.{group}"},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
                     "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                         "type": "object", "properties": {
                             "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                             "metadata": {"type": "object"},
                             "spec": {"type": "object", "properties": {field: prop}}}}}}]}}


def widget(field: str, value: str = "x") -> Resource:
    return Resource({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "n"},
                     "spec": {field: value}}, "apps/w.yaml", "Kustomization flux-system/apps")


@pytest.fixture(scope="module")
def kube():
    return schemas.kubernetes_schemas("1.35")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No schema folder, and no network for the tool (a proxy where nothing listens), in this process."""
    for name in ("AIRFLOW_GITOPS_SCHEMAS", "AIRFLOW_GITOPS_CHARTS"):
        monkeypatch.delenv(name, raising=False)
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.setenv("AIRFLOW_GITOPS_PARALLEL", "0")  # validate in this process, which has the variables above
    monkeypatch.setattr(schemas, "_network_down", None)
    return tmp_path / "cache"


def test_a_crd_the_cluster_applies_from_git_is_its_schema(kube):
    state = ClusterState("c", [Resource(widget_crd("size"), "infrastructure/crds/widget.yaml", "x")])
    crds = schemas.cluster_crds(state)
    assert schemas.validate_resource(widget("size"), kube, crds) == []
    [finding] = schemas.validate_resource(widget("sise"), kube, crds)
    assert (finding.severity, finding.field) == (ERROR, "spec")
    assert "'sise' was unexpected" in finding.message and "CRD infrastructure/crds/widget.yaml" in finding.message


def test_a_crd_in_a_rendered_chart_is_its_schema(kube):
    hr = Resource({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
                   "metadata": {"name": "widgets", "namespace": "w"}}, "apps/hr.yaml", "x")
    release = ReleaseRender(hr, "widgets", "w", "widget-operator", "1.2.3", {},
                            objects=[Resource(widget_crd("size"), "apps/hr.yaml", "HelmRelease w/widgets")])
    crds = schemas.cluster_crds(ClusterState("c", [hr], [release]))
    [finding] = schemas.validate_resource(widget("sise"), kube, crds)
    assert "chart widget-operator 1.2.3 (HelmRelease w/widgets)" in finding.message


def test_the_clusters_own_crd_wins_over_the_schema_folder(tmp_path, kube):
    folder = tmp_path / "schemas"
    (folder / "widgets").mkdir(parents=True)
    (folder / "widgets/example.com_widgets.yaml").write_text(yaml.safe_dump(widget_crd("old")))
    state = ClusterState("c", [Resource(widget_crd("size"), "infrastructure/crds/widget.yaml", "x")])
    sources = schemas.schema_sources(Settings(repo=REPO, schemas_dir=folder, cache_dir=tmp_path), state)
    assert schemas.validate_resource(widget("size"), kube, sources.crds) == []
    assert schemas.validate_resource(widget("old"), kube, sources.crds) != []
    # Without the cluster's CRD, the folder's is the schema.
    alone = schemas.schema_sources(Settings(repo=REPO, schemas_dir=folder, cache_dir=tmp_path), ClusterState("c"))
    assert schemas.validate_resource(widget("old"), kube, alone.crds) == []


def test_no_pinned_file_is_fetched_for_a_crd_the_cluster_holds():
    helm = widget_crd("x", group="helm.toolkit.fluxcd.io")
    helm["spec"]["names"] |= {"kind": "HelmRelease", "plural": "helmreleases"}
    crds = schemas.CRDSchemas()
    assert crds.add(helm, "clusters/c/flux-system/gotk-components.yaml")
    wanted = [name for name in schemas.PINNED_SCHEMA_URLS if schemas._wanted(name, crds)]
    assert "flux-v2.9/helm.toolkit.fluxcd.io_helmreleases.yaml" not in wanted
    assert "flux-v2.9/kustomize.toolkit.fluxcd.io_kustomizations.yaml" in wanted
    assert "eksctl-v0.230/clusterconfig.schema.json" in wanted


def test_after_one_failed_fetch_the_network_is_not_asked_again(offline, monkeypatch):
    calls = []

    def refuse(url, timeout):
        calls.append(url)
        raise OSError("no route to host")

    monkeypatch.setattr(schemas.urllib.request, "urlopen", refuse)
    names = list(schemas.PINNED_SCHEMA_URLS)[:3]
    assert "no route to host" in schemas.fetch_pinned(offline, names)
    assert "no route to host" in schemas.fetch_pinned(offline, names)
    assert len(calls) == 1 and not offline.exists()


def test_a_crd_whose_schema_cannot_be_applied_is_a_clear_error(kube):
    crd = widget_crd("size")
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["size"]["type"] = "strng"
    crds = schemas.cluster_crds(ClusterState("c", [Resource(crd, "infrastructure/crds/widget.yaml", "x")]))
    [finding] = schemas.validate_resource(widget("size"), kube, crds)
    assert finding.severity == ERROR and finding.file == "apps/w.yaml" and finding.object == "Widget n/w"
    assert "cannot be applied" in finding.message and "infrastructure/crds/widget.yaml" in finding.message


@pytest.mark.parametrize("pattern", ["(unclosed", "^(?=a)a$", r"^(a)\1$"])
def test_a_crd_pattern_the_api_server_refuses_is_an_error(pattern, kube):
    """Go's regexp (RE2) has no lookaround and no backreference; Python's re would have taken them."""
    crds = schemas.cluster_crds(ClusterState("c", [Resource(widget_crd("size", pattern=pattern),
                                                            "infrastructure/crds/widget.yaml", "x")]))
    [finding] = schemas.validate_resource(widget("size", "aa"), kube, crds)
    assert (finding.severity, finding.field) == (ERROR, "spec.size")
    assert "is not a Go (RE2) regular expression" in finding.message


@pytest.mark.parametrize("spec", [None, [], {"group": "example.com"}, {"group": "example.com", "names": "Widget"},
                                  {"group": "example.com", "names": {"kind": "Widget"}, "versions": "v1"},
                                  {"group": "example.com", "names": {"kind": "Widget"},
                                   "versions": [None, {"name": "v1", "schema": []}]}])
def test_a_malformed_crd_is_no_crash(spec, kube):
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "w"},
           "spec": spec}
    crds = schemas.cluster_crds(ClusterState("c", [Resource(crd, "infrastructure/crds/widget.yaml", "x")]))
    # A Widget is never valid by such a CRD: no served version, or no schema; the CRD object itself is checked
    # against Kubernetes' own CustomResourceDefinition schema like every object.
    found = schemas.validate_resource(widget("size"), kube, crds)
    assert found and all(f.severity in (ERROR, "unvalidated") for f in found)


def test_offline_validate_exits_0_and_says_what_it_could_not_check(offline, repo_copy, capsys):
    (repo_copy / "infrastructure/configs/eks/widget.yaml").write_text(textwrap.dedent("""\
        apiVersion: monitoring.coreos.com/v1
        kind: ServiceMonitor
        metadata: {name: airflow-statsd, namespace: airflow}
        spec: {endpoints: [{port: metrics}]}
        """))
    kustomization = repo_copy / "infrastructure/configs/eks/kustomization.yaml"
    kustomization.write_text(kustomization.read_text().replace("  - node-pools.yaml\n",
                                                               "  - node-pools.yaml\n  - widget.yaml\n"))
    flux_ks = repo_copy / "clusters/eks/infrastructure.yaml"
    flux_ks.write_text(flux_ks.read_text().replace("  healthCheckExprs:\n", "  healthCheckExprs:\n"
                                                   "    - {apiVersion: monitoring.coreos.com/v1, kind: ServiceMonitor, "
                                                   "current: 'true'}\n"))
    assert main(["validate", "all", "--repo", str(repo_copy), "--cache-dir", str(offline)]) == 0
    out = capsys.readouterr().out
    assert "eks: [unvalidated] infrastructure/configs/eks/widget.yaml: ServiceMonitor airflow/airflow-statsd" in out
    closing = out.splitlines()[-1]
    assert closing.startswith("NOT CHECKED: ")
    assert "ServiceMonitor.monitoring.coreos.com" in closing and "AIRFLOW_GITOPS_SCHEMAS" in closing
    assert "AIRFLOW_GITOPS_CHARTS" in closing and "here it did not" in closing


def test_offline_validate_still_reports_errors(offline, repo_copy, capsys):
    """Whatever has a schema offline (Kubernetes' own kinds) is still checked: a typo is an error, exit 1."""
    namespaces = repo_copy / "infrastructure/controllers/base/namespaces.yaml"
    namespaces.write_text(namespaces.read_text().replace("metadata:", "metadata:\n  lables: {a: b}", 1))
    assert main(["validate", "kind", "--repo", str(repo_copy), "--cache-dir", str(offline)]) == 1
    assert "lables" in capsys.readouterr().out


def test_without_a_values_schema_the_values_are_unvalidated_not_valid(offline, repo_copy):
    settings = Settings(repo=repo_copy, cache_dir=offline, render_cache=False)
    report = validate_cluster(settings, "kind")
    airflow = next(r for r in report.state.releases if r.helmrelease.name == "airflow")
    assert airflow.unrendered_reason, "offline, with an empty cache and no local chart"
    assert [f.object for f in report.unvalidated if f.check == "values-schema"] == ["values of HelmRelease airflow/airflow"]


def test_a_file_the_server_refuses_costs_that_file_only(offline, monkeypatch):
    calls = []

    def answer(url, timeout):
        calls.append(url)
        raise schemas.urllib.error.HTTPError(url, 404, "Not Found", {}, None)

    monkeypatch.setattr(schemas.urllib.request, "urlopen", answer)
    names = list(schemas.PINNED_SCHEMA_URLS)[:3]
    reason = schemas.fetch_pinned(offline, names)
    assert len(calls) == 3 and reason.count("HTTP 404") == 3
    assert schemas._network_down is None, "a server that answers is a network that works"
