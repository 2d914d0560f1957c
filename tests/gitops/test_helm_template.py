"""Every release of both clusters rendered by the real Helm CLI, object for object equal to the tool's render.

The tool renders charts with the Helm SDK (helm-python-sdk) in a render process; helm-controller renders them with
the Helm library it links. This compares the tool with `helm template` of helm.sh/helm/v4 at the version
helm-controller v1.6.4 (Flux 2.9.5) requires, v4.2.4, built from its Go module by `make live-tools`
(`airflow_gitops.live.tools.find_tool("helm")`), or the binary AIRFLOW_GITOPS_HELM names (its version is checked).
Without it the tests skip and say so; under .ci/run (AIRFLOW_GITOPS_REQUIRE_LIVE_TOOLS=1) they fail instead.

Each `helm template` gets what the tool's render got: the chart (the same package), the composed values (as JSON, as
the tool sends them), the release name and namespace, and the Kubernetes version and API versions the tool's render
sees (read back from the tool's own render of tests/testdata/charts/capabilities).

The one normalisation, written down and tested below: `helm template` prints each object as the chart wrote it,
while Helm's kube client, when helm-controller installs, sets the release namespace on every namespaced object that
names none (helm.sh/helm/v4 pkg/kube client.go, `Build`: the resource builder's NamespaceParam(...).DefaultNamespace()).
The tool shows objects as installed, so the Helm side gets the same: the release namespace on each object of a
namespaced kind without one. Whether a kind is namespaced is taken from the Kubernetes API's built-in kinds
(CLUSTER_SCOPED_BUILTINS) and from the `scope` of the CRDs the cluster applies, never from the tool; a kind known to
neither fails the test. No release here has postRenderers (asserted), so the tool's objects are the chart's.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import tarfile
from functools import lru_cache
from pathlib import Path

import pytest
import yaml
from airflow_gitops.helm_controller import render_process
from airflow_gitops.helm_controller.api import HelmRelease
from airflow_gitops.helm_controller.chart import ChartCache, ChartUnavailable
from airflow_gitops.helm_controller.render import render_limits
from airflow_gitops.helm_controller.render_cache import chart_digest
from airflow_gitops.model import ReleaseRender
from airflow_gitops.source.bounds import load_yaml_all
from airflow_gitops.source.provenance import SourceIndex

from tests.helpers import REPO, make_settings, render, skip_for

# helm-controller v1.6.4's go.mod: helm.sh/helm/v4 v4.2.4.
HELM_VERSION = "v4.2.4"
HELM_ENV = "AIRFLOW_GITOPS_HELM"
CAPABILITIES_CHART = REPO / "tests" / "testdata" / "charts" / "capabilities"
# The cluster-scoped kinds of the Kubernetes API (`kubectl api-resources --namespaced=false`, Kubernetes 1.35).
CLUSTER_SCOPED_BUILTINS = {
    "APIService", "CertificateSigningRequest", "ClusterRole", "ClusterRoleBinding", "ClusterTrustBundle",
    "ComponentStatus", "CSIDriver", "CSINode", "CustomResourceDefinition", "DeviceClass", "FlowSchema",
    "IngressClass", "IPAddress", "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding",
    "MutatingWebhookConfiguration", "Namespace", "Node", "PersistentVolume", "PriorityClass",
    "PriorityLevelConfiguration", "ResourceSlice", "RuntimeClass", "SelfSubjectAccessReview",
    "SelfSubjectReview", "SelfSubjectRulesReview", "ServiceCIDR", "StorageClass", "StorageVersionMigration",
    "SubjectAccessReview", "TokenReview", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration", "VolumeAttachment", "VolumeAttributesClass",
}
NAMESPACED_BUILTINS = {
    "Binding", "ConfigMap", "ControllerRevision", "CronJob", "CSIStorageCapacity", "DaemonSet", "Deployment",
    "Endpoints", "EndpointSlice", "Event", "HorizontalPodAutoscaler", "Ingress", "Job", "Lease", "LimitRange",
    "LocalSubjectAccessReview", "NetworkPolicy", "PersistentVolumeClaim", "Pod", "PodDisruptionBudget",
    "PodTemplate", "ReplicaSet", "ReplicationController", "ResourceClaim", "ResourceClaimTemplate", "ResourceQuota",
    "Role", "RoleBinding", "Secret", "Service", "ServiceAccount", "StatefulSet",
}


def helm_binary() -> Path | None:
    """The helm CLI: AIRFLOW_GITOPS_HELM if set, else the one `make live-tools` built, else None."""
    if os.environ.get(HELM_ENV):
        return Path(os.environ[HELM_ENV])
    try:
        from airflow_gitops.live.tools import find_tool
    except ImportError:  # the live-tools module is not in this tree
        return None
    return find_tool("helm")


@pytest.fixture(scope="module")
def helm(tmp_path_factory) -> Path:
    path = helm_binary()
    if path is None or not path.is_file():
        skip_for("live-tools", f"helm is not built: `make live-tools` builds helm {HELM_VERSION} (or point {HELM_ENV} "
                               "at one); the comparison with the real Helm did not run")
    version = subprocess.run([str(path), "version", "--template", "{{.Version}}"], capture_output=True, text=True,
                             timeout=60, env=helm_env(tmp_path_factory.mktemp("helm"))).stdout.strip()
    assert version == HELM_VERSION, f"{path} is Helm {version!r}; helm-controller v1.6.4 renders with {HELM_VERSION}"
    return path


def helm_env(home: Path) -> dict[str, str]:
    """No user configuration, no repository index, no network: helm reads only what the command names."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELM_")}
    for name in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[name] = str(home / name.lower())
    return env


def without_missing_disabled_subcharts(chart: Path, values: dict, workdir: Path) -> Path:
    """The chart, or a copy of it whose Chart.yaml no longer lists the subcharts it lacks and the values leave off.

    The packages in ../shared leave out subcharts whose condition this repository leaves off (../shared/README.md).
    The Helm CLI refuses such a chart before it renders anything (helm.sh/helm/v4 pkg/cmd/install.go: CheckDependencies
    of every dependency, enabled or not); helm-controller renders through pkg/action and has no such check (nothing in
    helm-controller v1.6.4 internal/action calls it), and a disabled subchart renders nothing either way. Any missing
    subchart that the values do enable fails the test instead."""
    with tarfile.open(chart) as archive:
        archive.extractall(workdir / "chart", filter="data")
    (folder,) = (workdir / "chart").iterdir()
    meta = yaml.safe_load((folder / "Chart.yaml").read_text())
    present = {p.name for p in (folder / "charts").iterdir()} if (folder / "charts").is_dir() else set()
    defaults = yaml.safe_load((folder / "values.yaml").read_text()) if (folder / "values.yaml").is_file() else {}
    kept = []
    for dependency in meta.get("dependencies") or []:
        if any(name.startswith(f"{dependency['name']}-") or name == dependency["name"] for name in present):
            kept.append(dependency)
            continue
        condition = dependency.get("condition")
        enabled = condition and any(lookup(merged(defaults or {}, values), path.strip().split("."))
                                    for path in condition.split(","))
        assert condition and not enabled, (
            f"{chart.name} lacks subchart {dependency['name']}, which the values do not switch off ({condition})")
    meta["dependencies"] = kept
    (folder / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return folder


def merged(base: dict, top: dict) -> dict:
    result = dict(base)
    for key, value in top.items():
        result[key] = merged(result[key], value) if isinstance(value, dict) and isinstance(result.get(key), dict) \
            else value
    return result


def lookup(values: dict, path: list[str]):
    for key in path:
        if not isinstance(values, dict):
            return None
        values = values.get(key)
    return values


def helm_template(helm: Path, chart: Path, name: str, namespace: str, values: dict, kube_version: str,
                  api_versions: list[str], workdir: Path) -> str:
    if chart.is_file():
        chart = without_missing_disabled_subcharts(chart, values, workdir / f"{namespace}-{name}")
    values_file = workdir / f"{namespace}-{name}-values.json"
    values_file.write_text(json.dumps(values))
    argv = [str(helm), "template", name, str(chart), "--namespace", namespace, "--values", str(values_file),
            "--kube-version", kube_version]
    for api_version in api_versions:
        argv += ["--api-versions", api_version]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=helm_env(workdir))
    assert done.returncode == 0, f"helm template {name} failed: {done.stderr.strip()[-2000:]}"
    return done.stdout


@lru_cache(maxsize=1)
def tool_capabilities() -> tuple[str, tuple[str, ...], str]:
    """The Kubernetes version, API versions and Helm version a chart sees in the tool's render."""
    settings = make_settings()
    manifests = render_process.RENDERER.render(CAPABILITIES_CHART, chart_digest(CAPABILITIES_CHART), {}, "probe",
                                               "default", render_limits(settings))
    data = load_yaml_all(manifests["capabilities/templates/capabilities.yaml"], "capabilities")[0]["data"]
    return data["kubeVersion"], tuple(json.loads(data["apiVersions"])), data["helmVersion"]


def scopes(cluster: str) -> dict[str, bool]:
    """Kind -> namespaced, from the CRDs this cluster applies (Git and chart output)."""
    state = render(cluster)
    everything = [*state.resources, *(o for release in state.releases for o in release.objects)]
    return {o.obj["spec"]["names"]["kind"]: o.obj["spec"].get("scope") == "Namespaced"
            for o in everything if o.kind == "CustomResourceDefinition"}


def as_installed(objects: list[dict], namespace: str, crd_scopes: dict[str, bool]) -> list[dict]:
    """`helm template`'s objects as Helm's kube client installs them: the release namespace on each object of a
    namespaced kind that names none. A kind of unknown scope is an error, never a guess."""
    installed = []
    for obj in objects:
        kind = obj.get("kind")
        if kind in CLUSTER_SCOPED_BUILTINS or crd_scopes.get(kind) is False:
            namespaced = False
        elif kind in NAMESPACED_BUILTINS or crd_scopes.get(kind) is True:
            namespaced = True
        else:
            raise AssertionError(f"kind {kind} is neither a built-in kind listed here nor a CRD the cluster applies")
        if namespaced and not (obj.get("metadata") or {}).get("namespace"):
            obj = {**obj, "metadata": {**(obj.get("metadata") or {}), "namespace": namespace}}
        installed.append(obj)
    return installed


def identity(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('apiVersion')} {obj.get('kind')} {meta.get('namespace', '')}/{meta.get('name')}"


def differences(helm_objects: list[dict], tool_objects: list[dict]) -> list[str]:
    """Every object only one side has, and a diff of every object both have but differently."""
    by_id: dict[str, list[list[dict]]] = {}
    for side, objects in enumerate((helm_objects, tool_objects)):
        for obj in objects:
            by_id.setdefault(identity(obj), [[], []])[side].append(obj)
    found = []
    for key, (helm_side, tool_side) in sorted(by_id.items()):
        if len(helm_side) != len(tool_side):
            found.append(f"{key}: helm template renders it {len(helm_side)} time(s), the tool {len(tool_side)}")
            continue
        for ours, theirs in zip(tool_side, helm_side, strict=True):
            if ours != theirs:
                diff = difflib.unified_diff(yaml.safe_dump(theirs, sort_keys=True).splitlines(),
                                            yaml.safe_dump(ours, sort_keys=True).splitlines(),
                                            "helm template", "airflow-gitops", lineterm="", n=2)
                found.append(f"{key}:\n" + "\n".join(diff))
    return found


def chart_path(release: ReleaseRender, cluster: str) -> Path:
    settings = make_settings()
    charts = ChartCache()
    return charts.path_of(charts.load(settings, render(cluster), release.helmrelease, SourceIndex(REPO).policies))


def rendered_releases(cluster: str) -> list[ReleaseRender]:
    releases = render(cluster).releases
    missing = [f"{r.helmrelease.ref}: {r.unrendered_reason}" for r in releases if r.unrendered_reason]
    if missing:
        skip_for("chart", "not compared with helm template: " + "; ".join(missing))
    return releases


def test_helm_template_sees_the_cluster_the_tool_renders_for(helm, tmp_path):
    kube_version, api_versions, _ = tool_capabilities()
    text = helm_template(helm, CAPABILITIES_CHART, "probe", "default", {}, kube_version, list(api_versions), tmp_path)
    data = load_yaml_all(text, "helm template")[0]["data"]
    assert data["kubeVersion"] == kube_version
    # `--api-versions` adds to the CLI's built-in list, so names may repeat: charts ask `.APIVersions.Has`, a set.
    assert set(json.loads(data["apiVersions"])) == set(api_versions)
    assert data["helmVersion"].startswith(tool_capabilities()[2]), "the SDK and the CLI are the same Helm minor"


def test_every_release_renders_in_helm_template_as_in_the_tool(helm, cluster, tmp_path):
    kube_version, api_versions, _ = tool_capabilities()
    crd_scopes = scopes(cluster)
    compared, problems = [], []
    for release in rendered_releases(cluster):
        hr = HelmRelease.parse(release.helmrelease)
        assert not hr.post_renderer_patches and not hr.post_renderer_images, \
            f"{hr.resource.ref} has postRenderers: compare after them (helm template --post-renderer)"
        try:
            chart = chart_path(release, cluster)
        except ChartUnavailable as reason:
            pytest.fail(f"{hr.resource.ref}: the tool rendered a chart this test cannot find: {reason}")
        text = helm_template(helm, chart, release.release_name, release.namespace, release.values, kube_version,
                             list(api_versions), tmp_path)
        theirs = as_installed(load_yaml_all(text, f"helm template {release.release_name}", kubernetes=True),
                              release.namespace, crd_scopes)
        ours = [o.obj for o in release.objects]
        assert ours, f"{hr.resource.ref}: the tool rendered no object"
        problems += [f"{hr.resource.ref} ({chart.name}): {d}" for d in differences(theirs, ours)]
        compared.append(f"{hr.resource.ref}: {len(ours)} objects")
    print(f"{cluster}: equal to helm template {HELM_VERSION}: " + ", ".join(compared))
    assert problems == [], "\n\n".join(problems)


# --- the comparison's own parts ------------------------------------------------------------------------------------

def test_the_release_namespace_is_set_only_on_namespaced_objects_without_one():
    objects = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}},
               {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "other"}},
               {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "c"}},
               {"apiVersion": "cert-manager.io/v1", "kind": "Issuer", "metadata": {"name": "d"}},
               {"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": "e"}}]
    installed = as_installed(objects, "ns", {"Issuer": True, "ClusterIssuer": False})
    assert [o["metadata"].get("namespace") for o in installed] == ["ns", "other", None, "ns", None]
    assert "namespace" not in objects[0]["metadata"], "the input is left as it was"


def test_a_kind_of_unknown_scope_fails_the_comparison():
    with pytest.raises(AssertionError, match="kind Widget is neither"):
        as_installed([{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}], "ns", {})


def test_the_comparison_reports_missing_extra_and_changed_objects():
    a = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "ns"}, "data": {"k": "1"}}
    b = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "ns"}}
    changed = {**a, "data": {"k": "2"}}
    assert differences([a, b], [a, b]) == []
    found = differences([a, b], [changed])
    assert found[0].startswith("v1 ConfigMap ns/a:\n--- helm template\n+++ airflow-gitops") and "+  k: '2'" in found[0]
    assert found[1] == "v1 ConfigMap ns/b: helm template renders it 1 time(s), the tool 0"
