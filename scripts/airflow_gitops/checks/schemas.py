"""Schemas: Kubernetes (kubernetes-validate), CRDs (Flux, CloudNativePG, External Secrets) and the chart's values.

Every error is reported, not just the first (jsonschema's iter_errors)."""

from __future__ import annotations

import json
import re
import urllib.request
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry
from referencing import Resource as SchemaResource

from airflow_gitops.model import ERROR, UNVALIDATED, Finding, ReleaseRender, Resource, field_path, mapping
from airflow_gitops.settings import SCHEMAS_ENV, Settings
from airflow_gitops.source import bounds

# Fetched on a networked machine when no schema folder is given; ../shared/schemas holds the same files.
PINNED_SCHEMA_URLS = {
    "flux-v2.9/helm.toolkit.fluxcd.io_helmreleases.yaml":
        "https://raw.githubusercontent.com/fluxcd/helm-controller/v1.6.0/config/crd/bases/helm.toolkit.fluxcd.io_helmreleases.yaml",
    "flux-v2.9/kustomize.toolkit.fluxcd.io_kustomizations.yaml":
        "https://raw.githubusercontent.com/fluxcd/kustomize-controller/v1.9.0/config/crd/bases/kustomize.toolkit.fluxcd.io_kustomizations.yaml",
    **{f"flux-v2.9/source.toolkit.fluxcd.io_{kind}.yaml":
       f"https://raw.githubusercontent.com/fluxcd/source-controller/v1.9.0/config/crd/bases/source.toolkit.fluxcd.io_{kind}.yaml"
       for kind in ("gitrepositories", "helmrepositories", "helmcharts", "ocirepositories", "buckets",
                    "externalartifacts")},
    **{f"flux-v2.9/notification.toolkit.fluxcd.io_{kind}.yaml":
       f"https://raw.githubusercontent.com/fluxcd/notification-controller/v1.9.0/config/crd/bases/notification.toolkit.fluxcd.io_{kind}.yaml"
       for kind in ("alerts", "providers", "receivers")},
    **{f"cloudnative-pg-v1.30/postgresql.cnpg.io_{kind}.yaml":
       f"https://raw.githubusercontent.com/cloudnative-pg/cloudnative-pg/release-1.30/config/crd/bases/postgresql.cnpg.io_{kind}.yaml"
       for kind in ("clusters", "backups", "scheduledbackups", "poolers", "databases")},
    # The plugin that runs: chart plugin-barman-cloud 0.6.0 deploys v0.12.0 (infrastructure/controllers/eks).
    "cloudnative-pg-v1.30/barmancloud.cnpg.io_objectstores.yaml":
        "https://raw.githubusercontent.com/cloudnative-pg/plugin-barman-cloud/v0.12.0/config/crd/bases/barmancloud.cnpg.io_objectstores.yaml",
    **{f"external-secrets-v2.9/external-secrets.io_{kind}.yaml":
       f"https://raw.githubusercontent.com/external-secrets/external-secrets/helm-chart-2.9.0/config/crds/bases/external-secrets.io_{kind}.yaml"
       for kind in ("externalsecrets", "secretstores", "clustersecretstores")},
    "eksctl-v0.230/clusterconfig.schema.json":
        "https://raw.githubusercontent.com/eksctl-io/eksctl/v0.230.0/pkg/apis/eksctl.io/v1alpha5/assets/schema.json",
}


def schemas_dir(settings: Settings) -> Path:
    """The given schema folder, or the cache, filled from the pinned URLs on a networked machine."""
    if settings.schemas_dir:
        if not settings.schemas_dir.is_dir():
            raise SystemExit(f"schema folder {settings.schemas_dir} does not exist")
        return settings.schemas_dir
    cached = settings.cache_dir / "schemas"
    missing = [name for name in PINNED_SCHEMA_URLS if not (cached / name).exists()]
    for name in missing:
        try:
            with urllib.request.urlopen(PINNED_SCHEMA_URLS[name], timeout=20) as response:
                data = response.read()
        except OSError as error:
            raise SystemExit(
                f"no schema folder given and {PINNED_SCHEMA_URLS[name]} could not be fetched ({error}). "
                f"Point --schemas or {SCHEMAS_ENV} at a folder of CRDs (in this workplace: ../shared/schemas)."
            ) from error
        (cached / name).parent.mkdir(parents=True, exist_ok=True)
        (cached / name).write_bytes(data)
    return cached


def _openapi_to_jsonschema(schema: dict[str, Any]) -> dict[str, Any]:
    """A CRD's structural OpenAPI v3 schema, made strict: unknown fields are errors, as with
    `kubectl apply --validate=strict`, so a misspelled field never passes silently."""
    if not isinstance(schema, dict):
        return schema
    result = {k: v for k, v in schema.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    if schema.get("x-kubernetes-int-or-string"):
        result = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    if "properties" in schema:
        result["properties"] = {k: _openapi_to_jsonschema(v) for k, v in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            result["additionalProperties"] = False
    if isinstance(schema.get("additionalProperties"), dict):
        result["additionalProperties"] = _openapi_to_jsonschema(schema["additionalProperties"])
    if isinstance(schema.get("items"), dict):
        result["items"] = _openapi_to_jsonschema(schema["items"])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            result[key] = [_openapi_to_jsonschema(s) for s in schema[key]]
    if schema.get("nullable") and "type" in result:
        result["type"] = [result["type"], "null"]
    return result


class CRDSchemas:
    def __init__(self, folder: Path):
        self.folder = folder
        # (group, version, kind) -> (json schema, served, deprecated, source file)
        self.versions: dict[tuple[str, str, str], tuple[dict[str, Any], bool, bool, str]] = {}
        self.kinds: dict[tuple[str, str], list[str]] = {}
        for file in sorted(folder.rglob("*.yaml")):
            # The C loader: the External Secrets CRDs alone are 25,000 lines.
            for doc in yaml.load_all(file.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                spec = doc["spec"]
                kind = spec["names"]["kind"]
                for version in spec.get("versions") or []:
                    openapi = mapping(version.get("schema")).get("openAPIV3Schema") or {}
                    key = (spec["group"], version["name"], kind)
                    self.versions[key] = (_openapi_to_jsonschema(openapi), bool(version.get("served", True)),
                                          bool(version.get("deprecated")), str(file.relative_to(folder)))
                    if version.get("served", True):
                        self.kinds.setdefault((spec["group"], kind), []).append(version["name"])

    @property
    def groups(self) -> set[str]:
        return {group for group, _, _ in self.versions}


@lru_cache(maxsize=4)
def crd_schemas(folder: Path) -> CRDSchemas:
    return CRDSchemas(folder)


class KubernetesSchemas:
    """Strict JSON schemas of the built-in kinds, from the kubernetes-validate package."""

    def __init__(self, version: str):
        import kubernetes_validate.utils as kv

        supported = [v for v in kv.all_versions() if kv.major_minor(v) <= kv.major_minor(version)]
        if not supported:
            raise SystemExit(f"kubernetes-validate has no schemas for Kubernetes {version}")
        self.version = kv.major_minor(supported[-1])
        import importlib.resources

        self.folder = Path(str(importlib.resources.files("kubernetes_validate"))) / "kubernetes-json-schema" / (
            f"v{supported[-1]}-local-strict")
        definitions = json.loads((self.folder / "_definitions.json").read_text())
        self.registry = SchemaResource.from_contents(definitions) @ Registry()
        self._validators: dict[str, Any] = {}

    def validator(self, api_version: str, kind: str):
        group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
        name = f"{kind.lower()}-{group_version}.json"
        if name not in self._validators:
            file = self.folder / name
            if not file.exists():
                self._validators[name] = None
            else:
                schema = json.loads(file.read_text())
                registry = SchemaResource.from_contents(schema) @ self.registry
                self._validators[name] = jsonschema.Draft202012Validator(schema, registry=registry)
        return self._validators[name]


@lru_cache(maxsize=8)
def kubernetes_schemas(version: str) -> KubernetesSchemas:
    return KubernetesSchemas(version)


BUILTIN_GROUP_SUFFIXES = (".k8s.io",)
BUILTIN_GROUPS = {"", "apps", "batch", "policy", "autoscaling"}


# Fields of `format: byte`: the API server decodes them as Go's encoding/json decodes []byte, standard base64 with
# padding (base64.StdEncoding); a JSON schema validator does not check formats.
BYTE_FIELDS = {("v1", "Secret"): "data", ("v1", "ConfigMap"): "binaryData"}
BASE64 = re.compile(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")


def byte_fields(resource: Resource) -> list[Finding]:
    """A Secret's data and a ConfigMap's binaryData are base64: a value that is not is refused by the API server, so
    it is a schema finding here (a SOPS-encrypted Secret's values are ciphertext until Flux decrypts them)."""
    key = BYTE_FIELDS.get((resource.api_version, resource.kind))
    values = resource.obj.get(key) if key and "sops" not in resource.obj else None
    if not isinstance(values, dict):
        return []
    return [Finding(ERROR, resource.location, resource.ref, f"{key}.{name}",
                    "not base64 (standard alphabet, padded): the API server refuses the object", "schema")
            for name, value in values.items()
            if isinstance(value, str) and not BASE64.match("".join(value.split()))]


def validate_resource(resource: Resource, kube: KubernetesSchemas, crds: CRDSchemas) -> list[Finding]:
    obj = resource.obj
    api_version, kind = resource.api_version, resource.kind
    where = resource.location
    if not api_version or not kind:
        return [Finding(ERROR, where, resource.ref, "apiVersion" if not api_version else "kind",
                        "missing: every object needs apiVersion and kind", "schema")]
    group, _, version = api_version.rpartition("/")
    if group in crds.groups:
        entry = crds.versions.get((group, version, kind))
        if entry is None or not entry[1]:
            served = crds.kinds.get((group, kind))
            hint = (f"served versions of {kind}: {', '.join(group + '/' + v for v in served)}" if served
                    else f"no kind {kind} in group {group}")
            return [Finding(ERROR, where, resource.ref, "apiVersion",
                            f"{api_version} is not served by the installed CRDs ({hint})", "schema")]
        schema, _, deprecated, crd_file = entry
        findings = _errors(jsonschema.Draft202012Validator(schema), obj, resource, f"CRD {crd_file}")
        if deprecated:
            findings.append(Finding(ERROR, where, resource.ref, "apiVersion",
                                    f"{api_version} {kind} is deprecated; use "
                                    f"{', '.join(group + '/' + v for v in crds.kinds.get((group, kind), []))}",
                                    "schema"))
        return findings
    validator = kube.validator(api_version, kind)
    if validator is not None:
        return _errors(validator, obj, resource, f"Kubernetes {kube.version}")
    if group in BUILTIN_GROUPS or group.endswith(BUILTIN_GROUP_SUFFIXES):
        return [Finding(ERROR, where, resource.ref, "apiVersion",
                        f"Kubernetes {kube.version} has no {kind} in {api_version} (removed or misspelled?)",
                        "schema")]
    return [Finding(UNVALIDATED, where, resource.ref, "apiVersion",
                    f"no schema for CRD {kind}.{group} {version}: not validated; add its CRD to the schema "
                    f"folder ({crds.folder})", "schema")]


def _errors(validator, obj: dict[str, Any], resource: Resource, against: str) -> list[Finding]:
    findings = []
    for error in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        message = error.message if len(error.message) < 300 else error.message[:300] + "..."
        findings.append(Finding(ERROR, resource.location, resource.ref, field_path(list(error.absolute_path)),
                                f"{message} (schema: {against})", "schema"))
    return findings


def values_schema_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("airflow-chart-*/values.schema.json"))


def validate_values(release: ReleaseRender, folder: Path | None, repo: Path) -> list[Finding]:
    """The composed values against the pinned chart's own schema (when the chart is at hand) and the
    schema folder's, plus the top-level keys, which the chart's schema root does not restrict."""
    if release.chart_name != "airflow":
        return []
    schemas: list[tuple[str, dict[str, Any]]] = []
    if release.chart_schema:
        schemas.append((f"chart {release.chart_name} values.schema.json", release.chart_schema))
    for file in values_schema_files(folder) if folder else []:
        schemas.append((f"{file.parent.name}/{file.name}", json.loads(file.read_text())))
    findings: list[Finding] = []
    seen: set[tuple[str, str]] = set()
    for label, schema in schemas:
        for error in jsonschema.Draft7Validator(schema).iter_errors(release.values):
            path = list(error.absolute_path)
            reported = (field_path(path), error.message)
            if reported in seen:
                continue
            seen.add(reported)
            findings.append(Finding(ERROR, values_file_of(release, path, repo), f"values of {release.helmrelease.ref}",
                                    field_path(path), f"{error.message[:300]} (schema: {label})", "values-schema"))
    known = set(release.chart_values_keys or ())
    for _, schema in schemas:
        known |= set(mapping(schema.get("properties")).keys())
    if known:
        for key in sorted(set(release.values) - known):
            findings.append(Finding(ERROR, values_file_of(release, [key], repo), f"values of {release.helmrelease.ref}",
                                    key, f"unknown top-level key: chart {release.chart_name} has no value {key!r}",
                                    "values-keys"))
    return findings


def values_file_of(release: ReleaseRender, path: list[Any], repo: Path) -> str:
    """The last values file (merge order) that sets `path`; else the HelmRelease (inline values)."""
    for file in reversed(release.values_files):
        node: Any = _load_values_file(str(repo / file))
        for part in path:
            if isinstance(node, dict) and part in node or isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            else:
                break
        else:
            return file
    for file in reversed(release.values_files):
        top = _load_values_file(str(repo / file))
        if isinstance(top, dict) and path and path[0] in top:
            return file
    return release.helmrelease.source_file


@lru_cache(maxsize=64)
def _load_values_file(file: str) -> Any:
    try:
        return bounds.load_file_document(Path(file), file)
    except yaml.YAMLError:
        return None
