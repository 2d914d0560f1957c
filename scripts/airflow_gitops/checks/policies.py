"""The repository's own rules, on top of schemas. Each check returns findings; none stops at the first."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from airflow_gitops.helm_controller.api import HelmRelease
from airflow_gitops.model import (
    ERROR,
    WORKLOAD_KINDS,
    Finding,
    ReleaseRender,
    Resource,
    field_path,
    mapping,
    pod_templates,
)
from airflow_gitops.notification_controller.api import Receiver
from airflow_gitops.policy_config import PolicyConfig
from airflow_gitops.source.api import HelmChart
from airflow_gitops.source.bounds import load_yaml

EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
POD_TEMPLATE_KEY = "pod_template_file.yaml"
# Chart values that would put a secret in Git; each has a *SecretName/secret alternative.
SECRET_VALUES = [
    ("fernetKey",), ("webserverSecretKey",), ("apiSecretKey",), ("jwtSecret",),
    ("data", "metadataConnection", "pass"), ("data", "resultBackendConnection", "pass"),
    ("dags", "gitSync", "sshKey"), ("createUserJob", "defaultUser", "password"),
    ("webserver", "defaultUser", "password"), ("registry", "connection", "pass"), ("redis", "password"),
]


def finding(resource: Resource, path: list[Any] | str, message: str, check: str) -> Finding:
    where = path if isinstance(path, str) else field_path(path)
    return Finding(ERROR, resource.location, resource.ref, where, message, check)


# --- chart versions ---------------------------------------------------------------------------------

def exact_chart_versions(resources: list[Resource]) -> list[Finding]:
    findings = []
    for r in resources:
        if r.kind == "HelmRelease" and (chart := HelmRelease.parse(r).chart) is not None:
            version, path = chart.version, ["spec", "chart", "spec", "version"]
        elif r.kind == "HelmChart":
            version, path = HelmChart.parse(r).version, ["spec", "version"]
        else:
            continue
        if not EXACT_VERSION.match(version):
            shown = repr(version) if version else "no version (Flux installs the newest)"
            findings.append(finding(r, path, f"{shown} is not an exact chart version: a range makes a revert "
                                             "no downgrade; pin e.g. \"1.22.0\"", "exact-chart-version"))
    return findings


# --- images -----------------------------------------------------------------------------------------

# Kinds that define no pod, however large: not walked for pod specs.
NO_PODS = {"CustomResourceDefinition", "ConfigMap", "Secret"}
POD_KINDS = ("Pod", "PodTemplate", *WORKLOAD_KINDS, "CronJob")


def pod_specs(resource: Resource) -> Iterator[tuple[list[Any], dict[str, Any]]]:
    """(path, pod spec) of every pod an object makes: every kind Kubernetes makes pods for (model.pod_templates: Pod,
    PodTemplate, the workloads, ReplicationController, CronJob), and any custom resource that carries a pod spec (a
    mapping with a `containers` list, such as a CloudNativePG Pooler's spec.template.spec), which its operator turns
    into pods."""
    if resource.kind in POD_KINDS:
        for path, _, spec in pod_templates(resource):
            yield path, spec
    elif resource.kind not in NO_PODS:
        yield from _embedded_pod_specs(resource.obj, [])


def _embedded_pod_specs(node: Any, path: list[Any]) -> Iterator[tuple[list[Any], dict[str, Any]]]:
    if isinstance(node, dict):
        if isinstance(node.get("containers"), list) and all(isinstance(c, dict) for c in node["containers"]):
            yield path, node
            return
        for key, value in node.items():
            yield from _embedded_pod_specs(value, [*path, key])
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _embedded_pod_specs(value, [*path, index])


def containers(resource: Resource) -> Iterator[tuple[list[Any], dict[str, Any]]]:
    for path, spec in pod_specs(resource):
        for key in ("initContainers", "containers", "ephemeralContainers"):
            for index, container in enumerate(spec.get(key) or []):
                if isinstance(container, dict):
                    yield [*path, key, index], container


def images(resource: Resource) -> Iterator[tuple[list[Any], str]]:
    """(path, image) of every container of an object ("" when it names none), and the image fields of operators'
    custom resources: a CloudNativePG Cluster's spec.imageName, an ImageCatalog's spec.images[].image. A custom
    resource's pod template may leave a container's image to its operator (a Pooler's pgbouncer)."""
    custom = resource.kind not in POD_KINDS
    for path, container in containers(resource):
        image = str(container.get("image") or "")
        if image or not custom:
            yield [*path, "image"], image
    if resource.api_version.startswith("postgresql.cnpg.io/"):
        spec = mapping(resource.obj.get("spec"))
        if resource.kind == "Cluster" and spec.get("imageName"):
            yield ["spec", "imageName"], str(spec["imageName"])
        if resource.kind in ("ImageCatalog", "ClusterImageCatalog"):
            for index, entry in enumerate(spec.get("images") or []):
                if isinstance(entry, dict) and entry.get("image"):
                    yield ["spec", "images", index, "image"], str(entry["image"])


def pod_template_resources(resources: list[Resource]) -> list[Resource]:
    """The KubernetesExecutor's worker pod template, kept in the chart's `<release>-config` ConfigMap."""
    found = []
    for r in resources:
        if r.kind == "ConfigMap" and POD_TEMPLATE_KEY in mapping(r.obj.get("data")):
            pod = load_yaml(r.obj["data"][POD_TEMPLATE_KEY])
            if isinstance(pod, dict):
                found.append(Resource(pod, r.source_file, r.applied_by,
                                      f"{r.template} data.{POD_TEMPLATE_KEY}" if r.template else None))
    return found


def image_problem(image: str) -> str | None:
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image {image!r} has no tag: it means :latest, which a revert cannot roll back"
    if last.rsplit(":", 1)[1] == "latest":
        return f"image {image!r} uses :latest, which a revert cannot roll back"
    return None


def image_tags(resources: list[Resource]) -> list[Finding]:
    findings = []
    for r in resources:
        for path, image in images(r):
            problem = image_problem(image)
            if problem:
                findings.append(finding(r, path, problem, "image-tag"))
    return findings


# --- secrets ----------------------------------------------------------------------------------------

def plaintext_secrets(git_resources: list[Resource]) -> list[Finding]:
    """A Secret from Git must be SOPS-encrypted (a top-level `sops:` block); otherwise use an ExternalSecret."""
    return [
        finding(r, "data" if "data" in r.obj else "stringData",
                "plaintext Secret in Git: encrypt it with SOPS or make it an ExternalSecret", "plaintext-secret")
        for r in git_resources
        if r.kind == "Secret" and r.api_version == "v1" and "sops" not in r.obj
    ]


def values_secrets(release: ReleaseRender, values_file_of) -> list[Finding]:
    findings = []
    for secret_path in SECRET_VALUES:
        node: Any = release.values
        for part in secret_path:
            node = node.get(part) if isinstance(node, dict) else None
        if node not in (None, ""):
            findings.append(Finding(ERROR, values_file_of(list(secret_path)), f"values of {release.helmrelease.ref}",
                                    ".".join(secret_path), "a secret in plain values: name a Secret instead "
                                    "(e.g. fernetKeySecretName, dags.gitSync.sshKeySecret)", "plaintext-secret"))
    return findings


def _strings(node: Any, path: list[Any]) -> Iterator[tuple[list[Any], str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, [*path, key])
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, [*path, index])


# --- the Airflow release contract -------------------------------------------------------------------

def _get(values: dict[str, Any], dotted: str) -> Any:
    node: Any = values
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def airflow_contract(release: ReleaseRender, config: PolicyConfig, values_file_of) -> list[Finding]:
    values = release.values
    expected: list[tuple[str, Any, str]] = [
        ("executor", "KubernetesExecutor", "tasks run as pods; no Celery"),
        ("dags.gitSync.enabled", True, "DAGs reach the pods through git-sync"),
        ("dags.gitSync.subPath", "dags", "only dags/ is on the DAG path"),
        ("migrateDatabaseJob.useHelmHooks", False, "hooks never run under Flux; pods would wait forever"),
        ("migrateDatabaseJob.applyCustomEnv", False, "the chart's documented setting for Flux/Argo CD"),
        ("createUserJob.useHelmHooks", False, "hooks never run under Flux"),
        ("createUserJob.applyCustomEnv", False, "the chart's documented setting for Flux/Argo CD"),
        ("postgresql.enabled", False, "the metadata DB is managed outside the chart"),
        ("redis.enabled", False, "nothing Celery-related may render"),
    ]
    if config.airflow_version:
        expected += [
            ("airflowVersion", config.airflow_version, "the Airflow the tests install (pyproject.toml)"),
            ("defaultAirflowTag", config.airflow_version, "the Airflow the tests install (pyproject.toml)"),
        ]
    named = [
        ("data.metadataSecretName", "the DB connection Secret made outside the chart"),
        ("fernetKeySecretName", "the chart's fernet Secret is a pre-install-only hook"),
        ("apiSecretKeySecretName", "otherwise regenerated on every render"),
        ("jwtSecretName", "otherwise regenerated on every render"),
        ("dags.gitSync.repo", "git-sync needs this repository's URL"),
        ("dags.gitSync.branch", "git-sync follows the branch Flux follows"),
    ]
    findings = []
    for dotted, want, why in expected:
        got = _get(values, dotted)
        if got != want:
            findings.append(Finding(ERROR, values_file_of(dotted.split(".")), f"values of {release.helmrelease.ref}",
                                    dotted, f"must be {want!r} ({why}); got {got!r}", "airflow-contract"))
    for dotted, why in named:
        if not _get(values, dotted):
            findings.append(Finding(ERROR, values_file_of(dotted.split(".")), f"values of {release.helmrelease.ref}",
                                    dotted, f"must be set ({why})", "airflow-contract"))
    ref = _get(values, "dags.gitSync.ref")
    if ref != _get(values, "dags.gitSync.branch"):
        findings.append(Finding(ERROR, values_file_of(["dags", "gitSync", "ref"]), f"values of {release.helmrelease.ref}",
                                "dags.gitSync.ref", f"must equal dags.gitSync.branch (git-sync v4 checks out ref); "
                                f"got {ref!r}", "airflow-contract"))
    for r in release.objects:
        component = mapping(mapping(r.obj.get("metadata")).get("labels")).get("component")
        celery = component in ("redis", "flower") or (component == "worker" and r.kind in ("Deployment", "StatefulSet"))
        if celery or r.name.endswith("-broker-url"):
            findings.append(finding(r, "metadata.labels.component", "Celery/Redis object rendered with the "
                                    "KubernetesExecutor", "airflow-contract"))
    return findings


# --- resources --------------------------------------------------------------------------------------

def resource_requests(resources: list[Resource]) -> list[Finding]:
    findings = []
    for r in resources:
        for path, container in containers(r):
            requests = mapping(container.get("resources")).get("requests") or {}
            missing = [k for k in ("cpu", "memory") if k not in requests]
            if missing:
                findings.append(finding(r, [*path, "resources", "requests"],
                                        f"container {container.get('name')!r} requests no {' or '.join(missing)}",
                                        "resource-requests"))
    return findings


# --- cluster folders --------------------------------------------------------------------------------

def cluster_folder(root_resources: list[Resource]) -> list[Finding]:
    """clusters/<cluster>/ holds Flux Kustomizations and the cluster-vars ConfigMap they substitute from."""
    return [
        finding(r, "kind", "clusters/<cluster>/ holds only Flux Kustomizations and the cluster-vars ConfigMap; "
                           "put this object under infrastructure/ or apps/", "cluster-folder")
        for r in root_resources
        if "/flux-system/" not in r.source_file
        and not (r.kind == "Kustomization" and r.api_version.startswith("kustomize.toolkit.fluxcd.io/"))
        and not (r.kind == "ConfigMap" and r.name == "cluster-vars")
    ]


# --- where referenced Secrets come from -------------------------------------------------------------

# Named only so that the chart renders no Celery broker Secret; the KubernetesExecutor never reads it.
UNREAD_SECRET_VALUES = {"brokerUrlSecretName"}


def referenced_secrets(git_resources: list[Resource], releases: list[ReleaseRender], values_file_of
                       ) -> list[tuple[str, str, str, str, str]]:
    """(namespace, secret, file, object, field) for every Secret the desired state reads by name."""
    found = []
    for r in git_resources:
        spec = mapping(r.obj.get("spec"))
        if r.kind == "Cluster" and r.api_version.startswith("postgresql.cnpg.io/"):
            initdb = mapping(mapping(spec.get("bootstrap")).get("initdb")).get("secret") or {}
            if initdb.get("name"):
                found.append((r.namespace, initdb["name"], r.location, r.ref, "spec.bootstrap.initdb.secret.name"))
            for index, role in enumerate(mapping(spec.get("managed")).get("roles") or []):
                name = mapping(role.get("passwordSecret")).get("name")
                if name:
                    found.append((r.namespace, name, r.location, r.ref,
                                  f"spec.managed.roles[{index}].passwordSecret.name"))
        if r.kind == "Receiver" and (token := Receiver.parse(r).secret_name):
            found.append((r.namespace, token, r.location, r.ref, "spec.secretRef.name"))
    for release in releases:
        for path, name in _secret_names(release.values):
            found.append((release.namespace, name, values_file_of(release, path),
                          f"values of {release.helmrelease.ref}", field_path(path)))
    return found


def _secret_names(values: dict[str, Any]) -> Iterator[tuple[list[Any], str]]:
    for path, value in _strings(values, []):
        key, parent = path[-1], path[-2] if len(path) > 1 else None
        if not value or not isinstance(key, str) or key in UNREAD_SECRET_VALUES:
            continue
        if key in ("secretName", "sshKeySecret", "credentialsSecret") or key.endswith("SecretName") or (
            key == "name" and parent == "secretKeyRef"
        ):
            yield path, value


def secrets_have_a_source(git_resources: list[Resource], releases: list[ReleaseRender], values_file_of
                          ) -> list[Finding]:
    """On clusters whose secrets come from External Secrets, every Secret read by name is an ExternalSecret's
    target (or a SOPS-encrypted Secret in Git): otherwise pods wait forever for a Secret nobody makes."""
    targets = {(r.namespace, mapping(mapping(r.obj.get("spec")).get("target")).get("name") or r.name)
               for r in git_resources if r.kind == "ExternalSecret"}
    targets |= {(r.namespace, r.name) for r in git_resources if r.kind == "Secret"}
    return [
        Finding(ERROR, file, obj, where,
                f"reads Secret {namespace}/{name}, which no ExternalSecret in this cluster creates", "secret-source")
        for namespace, name, file, obj, where in referenced_secrets(git_resources, releases, values_file_of)
        if (namespace, name) not in targets
    ]
