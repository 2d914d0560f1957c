"""Issue 16, class 1: every source Flux would fetch is judged, and the tool never fetches from an unknown place.

The rule (checks/sources.py): Flux fetches only from the cluster's own repository (GitRepository flux-system/flux-system,
written by bootstrap only) and from URLs the policy configuration allows, Git, Helm and OCI alike; references are
resolved as Flux resolves them (the namespace defaults to the referring object's); a URL never holds credentials.

Each row of VARIANTS is a mutation of a copy of the repository that Flux would apply; each must be a `source-origin`
finding naming the file, the object and the field. The socket tests prove the "never fetched" half by observation:
a listener on 127.0.0.1 stands where a pull request points a chart repository, and must see no connection."""

from __future__ import annotations

import socket
import textwrap
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from airflow_gitops.checks import sources
from airflow_gitops.model import Resource
from airflow_gitops.pipeline import render_cluster
from airflow_gitops.policy_config import PolicyConfig

from tests.helpers import edit, make_settings
from tests.hostile.harness import Workspace

SOURCES = "infrastructure/controllers/base/sources.yaml"
CONTROLLERS = "infrastructure/controllers/base"
AIRFLOW_HR = "apps/base/airflow/helmrelease.yaml"
CNPG_HR = "infrastructure/controllers/base/cloudnative-pg.yaml"


def add(repo: Path, folder: str, name: str, text: str) -> None:
    (repo / folder / name).write_text(textwrap.dedent(text))
    edit(repo, f"{folder}/kustomization.yaml", "resources:\n", f"resources:\n  - {name}\n")


def kustomization(namespace: str, source: str, name: str = "extra") -> str:
    """A Flux Kustomization; `source` is its sourceRef in flow style (`{kind: GitRepository, name: x}`)."""
    return f"""
        apiVersion: kustomize.toolkit.fluxcd.io/v1
        kind: Kustomization
        metadata:
          name: {name}
          namespace: {namespace}
        spec:
          interval: 10m
          path: ./apps/base
          prune: true
          sourceRef: {source}
        """


def source(kind: str, name: str, namespace: str, spec: str) -> str:
    """A Flux source; `spec` its spec fields in flow style (`url: x, ref: {branch: main}`)."""
    return f"""
        apiVersion: source.toolkit.fluxcd.io/v1
        kind: {kind}
        metadata:
          name: {name}
          namespace: {namespace}
        spec: {{interval: 1h, {spec}}}
        """


@dataclass
class Variant:
    id: str
    mutate: Callable[[Path], None]
    # (file, object, field, message pattern) of the finding that must be there.
    file: str
    object: str
    field: str
    message: str


def url(new: str, old: str = "url: https://airflow.apache.org") -> Callable[[Path], None]:
    return lambda repo: edit(repo, SOURCES, old, f"url: {new}")


VARIANTS = [
    # Chart repositories: the URL is judged, exactly, and never with credentials.
    Variant("helm-unlisted-host", url("https://charts.evil.example"), SOURCES, "HelmRepository flux-system/apache-airflow",
            "spec.url", "not in allowed-helm-repositories"),
    Variant("helm-look-alike-host", url("https://airflow.apache.org.evil.example"), SOURCES,
            "HelmRepository flux-system/apache-airflow", "spec.url", "not in allowed-helm-repositories"),
    Variant("helm-user-part-trick", url("https://airflow.apache.org@evil.example"), SOURCES,
            "HelmRepository flux-system/apache-airflow", "spec.url", "holds a user name"),
    Variant("helm-other-path", url("https://airflow.apache.org/evil"), SOURCES,
            "HelmRepository flux-system/apache-airflow", "spec.url", "not in allowed-helm-repositories"),
    Variant("helm-plain-http", url("http://airflow.apache.org"), SOURCES, "HelmRepository flux-system/apache-airflow",
            "spec.url", "not in allowed-helm-repositories"),
    Variant("helm-password", url("https://user:hunter2@airflow.apache.org"), SOURCES,
            "HelmRepository flux-system/apache-airflow", "spec.url", r"'https://\*\*\*@airflow.apache.org' holds a password"),
    Variant("helm-token-as-user", url("https://ghp_0123456789abcdefghijklmnopqrstuvwxyzAB@airflow.apache.org"), SOURCES,
            "HelmRepository flux-system/apache-airflow", "spec.url", "holds a user name"),
    Variant("helm-oci-type", lambda repo: edit(repo, SOURCES, "  url: https://airflow.apache.org",
                                               "  type: oci\n  url: oci://ghcr.io/evil/charts"),
            SOURCES, "HelmRepository flux-system/apache-airflow", "spec.url", "not in allowed-oci-repositories"),
    # Sources of Kustomizations, Git and OCI alike; a Bucket or ExternalArtifact has no allowlist.
    Variant("git-unlisted", lambda repo: add(repo, CONTROLLERS, "extra.yaml", source(
        "GitRepository", "extra", "flux-system", "url: 'https://github.com/evil/repo', ref: {branch: main}") +
        "---" + kustomization(
        "flux-system", "{kind: GitRepository, name: extra}")),
        f"{CONTROLLERS}/extra.yaml", "GitRepository flux-system/extra", "spec.url", "not in allowed-git-sources"),
    Variant("git-ssh-password", lambda repo: add(repo, CONTROLLERS, "extra.yaml", source(
        "GitRepository", "extra", "flux-system", "url: 'ssh://git:secret@github.com/airflow-gitops/airflow-gitops', "
                                                 "ref: {branch: main}")),
        f"{CONTROLLERS}/extra.yaml", "GitRepository flux-system/extra", "spec.url", "holds a password"),
    Variant("oci-unlisted", lambda repo: add(repo, CONTROLLERS, "extra.yaml", source(
        "OCIRepository", "extra", "flux-system", "url: 'oci://ghcr.io/evil/manifests', ref: {tag: 1.0.0}") +
        "---" + kustomization(
        "flux-system", "{kind: OCIRepository, name: extra}")),
        f"{CONTROLLERS}/extra.yaml", "OCIRepository flux-system/extra", "spec.url", "not in allowed-oci-repositories"),
    Variant("bucket", lambda repo: add(repo, CONTROLLERS, "extra.yaml", source(
        "Bucket", "extra", "flux-system", "bucketName: b, endpoint: s3.evil.example")),
        f"{CONTROLLERS}/extra.yaml", "Bucket flux-system/extra", "spec.endpoint", "no allowlist"),
    Variant("external-artifact-reference", lambda repo: add(repo, CONTROLLERS, "extra.yaml", kustomization(
        "flux-system", "{kind: ExternalArtifact, name: extra}")),
        f"{CONTROLLERS}/extra.yaml", "Kustomization flux-system/extra", "spec.sourceRef", "not in this cluster's Git"),
    # References resolved as Flux resolves them: a source of the same name in another namespace is another source.
    Variant("look-alike-namespace-default", lambda repo: add(repo, CONTROLLERS, "extra.yaml", kustomization(
        "airflow", "{kind: GitRepository, name: flux-system}")),
        f"{CONTROLLERS}/extra.yaml", "Kustomization airflow/extra", "spec.sourceRef",
        "GitRepository airflow/flux-system is not in this cluster's Git state.*own repository is GitRepository "
        "flux-system/flux-system"),
    Variant("look-alike-namespace-explicit", lambda repo: add(repo, CONTROLLERS, "extra.yaml", kustomization(
        "flux-system", "{kind: GitRepository, name: flux-system, namespace: airflow}")),
        f"{CONTROLLERS}/extra.yaml", "Kustomization flux-system/extra", "spec.sourceRef",
        "GitRepository airflow/flux-system is not in this cluster's Git state"),
    Variant("look-alike-with-its-own-url", lambda repo: add(repo, CONTROLLERS, "extra.yaml", source(
        "GitRepository", "flux-system", "airflow", "url: 'https://github.com/evil/repo', ref: {branch: main}") +
        "---" + kustomization(
        "airflow", "{kind: GitRepository, name: flux-system}")),
        f"{CONTROLLERS}/extra.yaml", "GitRepository airflow/flux-system", "spec.url", "not in allowed-git-sources"),
    Variant("chart-source-namespace-dropped", lambda repo: edit(
        repo, AIRFLOW_HR, "        name: apache-airflow\n        namespace: flux-system\n",
        "        name: apache-airflow\n"),
        AIRFLOW_HR, "HelmRelease airflow/airflow", "spec.chart.spec.sourceRef",
        "HelmRepository airflow/apache-airflow is not in this cluster's Git state.*flux-system/apache-airflow is "
        "another source"),
    Variant("chart-source-wrong-kind", lambda repo: edit(repo, CNPG_HR, "        kind: HelmRepository",
                                                         "        kind: OCIRepository"),
            CNPG_HR, "HelmRelease cnpg-system/cloudnative-pg", "spec.chart.spec.sourceRef.kind",
            "'OCIRepository' is not a source"),
    Variant("chart-ref-oci-unlisted", lambda repo: add(repo, CONTROLLERS, "extra.yaml", source(
        "OCIRepository", "podinfo", "cnpg-system", "url: 'oci://ghcr.io/evil/podinfo', ref: {tag: 6.0.0}") + """
        ---
        apiVersion: helm.toolkit.fluxcd.io/v2
        kind: HelmRelease
        metadata: {name: podinfo, namespace: cnpg-system}
        spec:
          interval: 1h
          chartRef: {kind: OCIRepository, name: podinfo}
        """), f"{CONTROLLERS}/extra.yaml", "OCIRepository cnpg-system/podinfo", "spec.url",
        "not in allowed-oci-repositories"),
    Variant("helmchart-source-missing", lambda repo: add(repo, CONTROLLERS, "extra.yaml", """
        apiVersion: source.toolkit.fluxcd.io/v1
        kind: HelmChart
        metadata: {name: podinfo, namespace: cnpg-system}
        spec:
          interval: 1h
          chart: podinfo
          version: 6.0.0
          sourceRef: {kind: HelmRepository, name: cloudnative-pg}
        """), f"{CONTROLLERS}/extra.yaml", "HelmChart cnpg-system/podinfo", "spec.sourceRef",
        "HelmRepository cnpg-system/cloudnative-pg is not in this cluster's Git state.*flux-system/cloudnative-pg "
        "is another source"),
    Variant("git-include-missing", lambda repo: add(repo, CONTROLLERS, "extra.yaml", source(
        "GitRepository", "extra", "flux-system", "url: 'https://github.com/airflow-gitops/airflow-gitops', "
                                                 "ref: {branch: main}, include: [{repository: {name: other}}]")),
        f"{CONTROLLERS}/extra.yaml", "GitRepository flux-system/extra", "spec.include[0].repository",
        "GitRepository flux-system/other is not in this cluster's Git state"),
    # The cluster's own repository, and what applies it, come from bootstrap only.
    Variant("bootstrap-gitrepository-elsewhere", lambda repo: add(repo, CONTROLLERS, "extra.yaml", source(
        "GitRepository", "flux-system", "flux-system", "url: 'https://github.com/airflow-gitops/airflow-gitops', "
                                                       "ref: {branch: main}")),
        f"{CONTROLLERS}/extra.yaml", "GitRepository flux-system/flux-system", "metadata.name",
        "only flux bootstrap"),
    Variant("bootstrap-kustomization-elsewhere", lambda repo: add(repo, CONTROLLERS, "extra.yaml", kustomization(
        "flux-system", "{kind: GitRepository, name: flux-system}", name="flux-system")),
        f"{CONTROLLERS}/extra.yaml", "Kustomization flux-system/flux-system", "metadata.name", "only flux bootstrap"),
]


def source_findings(repo: Path, cluster: str = "kind") -> list[str]:
    """The rule on the cluster as Flux applies it from Git (charts are not needed for these variants)."""
    state = render_cluster(make_settings(repo), cluster, charts=False)
    return [str(f) for f in sources.sources(state.all_resources, PolicyConfig.load(repo), cluster)]


def test_the_repository_keeps_the_rule():
    from tests.helpers import REPO

    for cluster in ("kind", "eks"):
        assert source_findings(REPO, cluster) == []


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.id for v in VARIANTS])
def test_every_source_variant_is_refused(repo_copy, variant):
    import re

    variant.mutate(repo_copy)
    found = source_findings(repo_copy)
    prefix = f"{variant.file}: {variant.object}: {variant.field}: "
    assert [line for line in found if line.startswith(prefix) and re.search(variant.message, line)], found


def test_a_look_alike_source_is_not_rendered_from_this_repository(repo_copy):
    """Before, a Kustomization naming `GitRepository/flux-system` from another namespace rendered the local path: what
    Flux fetches is another repository."""
    add(repo_copy, CONTROLLERS, "extra.yaml", kustomization(
        "airflow", "{kind: GitRepository, name: flux-system}"))
    state = render_cluster(make_settings(repo_copy), "kind", charts=False)
    assert [r for r in state.resources if r.applied_by == "Kustomization airflow/extra"] == []
    assert [f for f in state.findings if f.object == "Kustomization airflow/extra" and "not this repository" in f.message]


def test_a_source_in_chart_output_is_judged_too():
    chart_object = Resource({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                             "metadata": {"name": "x", "namespace": "airflow"},
                             "spec": {"url": "https://github.com/evil/repo"}},
                            "apps/base/airflow/helmrelease.yaml", "HelmRelease airflow/airflow", "airflow/templates/x.yaml")
    found = [str(f) for f in sources.sources([chart_object], PolicyConfig.load(make_settings().repo), "kind")]
    assert found == ["apps/base/airflow/helmrelease.yaml (airflow/templates/x.yaml): GitRepository airflow/x: spec.url: "
                     "'https://github.com/evil/repo' is not in allowed-git-sources in pyproject.toml "
                     "(https://github.com/airflow-gitops/airflow-gitops.git): Flux would fetch from a place nobody "
                     "approved"]


@pytest.mark.parametrize("url, allowed", [
    ("https://github.com/airflow-gitops/airflow-gitops.git", True),
    ("https://github.com/airflow-gitops/airflow-gitops", True),
    ("ssh://git@github.com/airflow-gitops/airflow-gitops.git", True),
    ("git@github.com:airflow-gitops/airflow-gitops.git", True),
    ("https://GitHub.com/airflow-gitops/airflow-gitops/", True),
    ("https://github.com/airflow-gitops/airflow-gitops-evil", False),
    ("https://github.com.evil.example/airflow-gitops/airflow-gitops", False),
    ("https://x-access-token:t@github.com/airflow-gitops/airflow-gitops", False),
    ("https://token@github.com/airflow-gitops/airflow-gitops", False),
])
def test_git_urls_compare_as_one_repository(url, allowed):
    from tests.helpers import REPO

    assert PolicyConfig.load(REPO).source_url_allowed("git", url) is allowed


# --- never fetched: observed, not argued ------------------------------------------------------------------------

class Listener:
    """A TCP listener on 127.0.0.1 that records every connection made to it: where a pull request points a chart
    repository. Any client, Python or Go (the Helm SDK), that tries the URL shows up here."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(peer)
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


def point_the_airflow_chart_at(ws: Workspace, url_: str) -> None:
    edit(ws.repo, SOURCES, "url: https://airflow.apache.org", f"url: {url_}")


def test_a_chart_repository_the_pull_request_chose_is_never_contacted(ws, listener):
    url_ = f"https://127.0.0.1:{listener.port}"
    point_the_airflow_chart_at(ws, url_)
    for command in (["validate", "kind"], ["render", "kind"]):
        outcome = ws.run(*command)
        assert outcome.code in (0, 1), outcome.text[-3000:]
        assert "Traceback" not in outcome.text
        assert listener.connections == [], f"`{' '.join(command)}` connected to {url_}"
    outcome = ws.run("validate", "kind")
    assert f"{SOURCES}: HelmRepository flux-system/apache-airflow: spec.url: {url_!r} is not in " \
           "allowed-helm-repositories" in outcome.out
    assert "not fetched: the URL of HelmRepository flux-system/apache-airflow is not in allowed-helm-repositories" \
           in outcome.out


def test_the_listener_sees_a_connection_when_the_policy_allows_the_url(ws, listener):
    """The control: the same run, with the URL on the allowlist, does connect. So the test above can fail."""
    url_ = f"https://127.0.0.1:{listener.port}"
    point_the_airflow_chart_at(ws, url_)
    edit(ws.repo, "pyproject.toml", 'allowed-helm-repositories = [\n', f'allowed-helm-repositories = [\n  "{url_}",\n')
    ws.run("render", "kind")
    assert listener.connections, "the allowed URL was not tried: the listener cannot tell a fetch from none"
