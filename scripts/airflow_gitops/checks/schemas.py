"""Schemas: Kubernetes (kubernetes-validate), CRDs (Flux, CloudNativePG, External Secrets) and the chart's values.

A custom resource's schema comes from the first of these that has its CRD, as on the cluster itself:
  1. the CRDs the cluster applies: from Git (clusters/<cluster>/flux-system/gotk-components.yaml, Flux's own) and
     from the rendered charts (CloudNativePG, cert-manager, ...);
  2. the schema folder (--schemas, AIRFLOW_GITOPS_SCHEMAS);
  3. the pinned upstream files below, fetched into the cache, only when no folder is given and only those that
     1 does not hold (with the charts rendered: External Secrets', Karpenter's NodePool, eksctl's ClusterConfig);
     offline they are not had, and what needed them is reported unvalidated, never valid.
The chart's values: its own values.schema.json first (the rendered chart), then the folder's.

Every error is reported, not just the first (jsonschema's iter_errors)."""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import re2
import yaml
from referencing import Registry
from referencing import Resource as SchemaResource

from airflow_gitops.model import (
    ERROR,
    UNVALIDATED,
    ClusterState,
    Finding,
    ReleaseRender,
    Resource,
    field_path,
    mapping,
    sequence,
)
from airflow_gitops.settings import CHARTS_ENV, SCHEMAS_ENV, Settings
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
    # The NodePool that EKS Auto Mode serves: no chart here installs it.
    "karpenter-v1.14/karpenter.sh_nodepools.yaml":
        "https://raw.githubusercontent.com/aws/karpenter-provider-aws/v1.14.0/pkg/apis/crds/karpenter.sh_nodepools.yaml",
    "eksctl-v0.230/clusterconfig.schema.json":
        "https://raw.githubusercontent.com/eksctl-io/eksctl/v0.230.0/pkg/apis/eksctl.io/v1alpha5/assets/schema.json",
}
# A pinned CRD file is named <group>_<plural>.yaml, as in the upstream config/crd/bases folders.
_CRD_FILE = re.compile(r"(?:.*/)?(?P<group>[a-z0-9.-]+)_(?P<plural>[a-z0-9-]+)\.yaml")
FETCH_TIMEOUT_S = 20
# Once one fetch fails, this process asks the network for nothing more: offline, one failure says it all, and
# behind a silent firewall every further try would wait out its timeout.
_network_down: str | None = None


def _openapi_to_jsonschema(schema: Any) -> Any:
    """A CRD's structural OpenAPI v3 schema, made strict: unknown fields are errors, as with
    `kubectl apply --validate=strict`, so a misspelled field never passes silently. Total on any input (a CRD from
    Git may be malformed: the schema check on the CRD object itself reports that), never an exception."""
    if not isinstance(schema, dict):
        return schema
    result = {k: v for k, v in schema.items() if not str(k).startswith("x-kubernetes-") and k != "nullable"}
    if schema.get("x-kubernetes-int-or-string"):
        result = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    if isinstance(schema.get("properties"), dict):
        result["properties"] = {k: _openapi_to_jsonschema(v) for k, v in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            result["additionalProperties"] = False
    if isinstance(schema.get("additionalProperties"), dict):
        result["additionalProperties"] = _openapi_to_jsonschema(schema["additionalProperties"])
    if isinstance(schema.get("items"), dict):
        result["items"] = _openapi_to_jsonschema(schema["items"])
    for key in ("allOf", "anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            result[key] = [_openapi_to_jsonschema(s) for s in schema[key]]
    if schema.get("nullable") and "type" in result:
        result["type"] = [result["type"], "null"]
    return result


# A CRD's `pattern` is a Go regular expression: RE2, which the API server matches in linear time. Python's `re`
# backtracks, so a CRD from a pull request could stop validate with a pattern like `^(a+)+$`; and it accepts what
# the API server refuses (lookarounds, backreferences). So CRD patterns are matched with RE2 itself.
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


@lru_cache(maxsize=1024)
def _re2(pattern: str):
    """The compiled pattern, or the reason RE2 refuses it."""
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as error:
        reason = error.args[0] if error.args else error
        return reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)


def _pattern(validator, pattern, instance, schema):
    if not validator.is_type(instance, "string"):
        return
    compiled = _re2(str(pattern))
    if isinstance(compiled, str):
        yield jsonschema.ValidationError(f"pattern {pattern!r} of the CRD is not a Go (RE2) regular expression, which "
                                         f"the API server requires: {compiled}")
    elif not compiled.search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


CRDValidator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _pattern})


class CRDSchemas:
    """The schema of each custom resource kind, by CRD: the first source added that defines a (group, kind) is its
    schema, as one CRD object per kind exists on a cluster."""

    def __init__(self, folder: Path | None = None):
        self.folder = folder
        # (group, version, kind) -> (json schema or None, served, deprecated, where the CRD came from)
        self.versions: dict[tuple[str, str, str], tuple[dict[str, Any] | None, bool, bool, str]] = {}
        self.kinds: dict[tuple[str, str], list[str]] = {}
        # (group, plural) of every CRD held, to know which pinned files are not needed.
        self.plurals: set[tuple[str, str]] = set()
        # What an object without a schema is told: where its CRD could come from.
        self.missing_hint = f"add its CRD to the schema folder ({folder})" if folder else ""
        if folder is not None:
            for file in sorted(folder.rglob("*.yaml")):
                # The C loader: the External Secrets CRDs alone are 25,000 lines. Trusted files (a folder given).
                for doc in yaml.load_all(file.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
                    self.add(doc, str(file.relative_to(folder)))

    def add(self, doc: Any, source: str) -> bool:
        """The CRD `doc` from `source`, unless its (group, kind) is already held; False when it is not a usable CRD
        (not one, or malformed: the schema check of the CRD object reports why)."""
        if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
            return False
        spec = mapping(doc.get("spec"))
        group, kind = spec.get("group"), mapping(spec.get("names")).get("kind")
        plural = mapping(spec.get("names")).get("plural")
        if not isinstance(group, str) or not isinstance(kind, str) or (group, kind) in self.kinds:
            return False
        for version in sequence(spec.get("versions")):
            version = mapping(version)
            name = version.get("name")
            if not isinstance(name, str):
                continue
            openapi = mapping(mapping(version.get("schema")).get("openAPIV3Schema"))
            served = version.get("served", True) is not False
            # No schema (the API server refuses such a CRD): None, so that its objects are unvalidated, never valid.
            self.versions[(group, name, kind)] = (_openapi_to_jsonschema(openapi) if openapi else None, served,
                                                  version.get("deprecated") is True, source)
            if served:
                self.kinds.setdefault((group, kind), []).append(name)
        self.kinds.setdefault((group, kind), [])
        if isinstance(plural, str):
            self.plurals.add((group, plural))
        return True

    def extend(self, other: CRDSchemas) -> None:
        """Every CRD of `other` whose (group, kind) this does not hold yet."""
        held = set(self.kinds)
        for (group, version, kind), entry in other.versions.items():
            if (group, kind) not in held:
                self.versions[(group, version, kind)] = entry
        for key, served in other.kinds.items():
            if key not in held:
                self.kinds[key] = list(served)
        self.plurals |= other.plurals

    @property
    def groups(self) -> set[str]:
        return {group for group, _, _ in self.versions}


@lru_cache(maxsize=4)
def crd_schemas(folder: Path) -> CRDSchemas:
    return CRDSchemas(folder)


@dataclass
class SchemaSources:
    """Where validate takes its schemas from, for one cluster."""

    crds: CRDSchemas
    # The schema folder given, else the cache of fetched files (when it holds any); None: neither.
    folder: Path | None
    # Why the pinned files could not be fetched, when they could not.
    not_fetched: str | None = None


def cluster_crds(state: ClusterState) -> CRDSchemas:
    """The CRDs the cluster applies itself: from Git first (gotk-components.yaml), then each rendered chart's."""
    crds = CRDSchemas()
    for resource in state.resources:
        crds.add(resource.obj, resource.source_file)
    for release in state.releases:
        for obj in release.objects:
            crds.add(obj.obj, f"chart {release.chart_name} {release.chart_version} ({release.helmrelease.ref})")
    return crds


def schema_sources(settings: Settings, state: ClusterState) -> SchemaSources:
    """The cluster's own CRDs, then the schema folder, else the pinned files the cluster does not hold, fetched."""
    crds = cluster_crds(state)
    if settings.schemas_dir:
        if not settings.schemas_dir.is_dir():
            raise SystemExit(f"schema folder {settings.schemas_dir} does not exist")
        crds.extend(crd_schemas(settings.schemas_dir))
        crds.folder = settings.schemas_dir
        crds.missing_hint = f"add its CRD to the schema folder ({settings.schemas_dir})"
        return SchemaSources(crds, settings.schemas_dir)
    cache = settings.cache_dir / "schemas"
    not_fetched = fetch_pinned(cache, [name for name in PINNED_SCHEMA_URLS if _wanted(name, crds)])
    held = cache.is_dir() and any((cache / name).is_file() for name in PINNED_SCHEMA_URLS)
    if held:
        # What the cluster holds itself stays first (extend keeps it), whatever an earlier run cached.
        crds.extend(crd_schemas(cache))
    crds.missing_hint = f"give its CRD in a schema folder (--schemas or {SCHEMAS_ENV})"
    return SchemaSources(crds, cache if held else None, not_fetched)


def schemas_dir(settings: Settings) -> Path | None:
    """A folder of CRD files, for what reads files rather than the layered CRDs (checks/transitions.py): the schema
    folder given, else the pinned files fetched into the cache (those that could be), else None (offline)."""
    if settings.schemas_dir:
        if not settings.schemas_dir.is_dir():
            raise SystemExit(f"schema folder {settings.schemas_dir} does not exist")
        return settings.schemas_dir
    cache = settings.cache_dir / "schemas"
    fetch_pinned(cache, list(PINNED_SCHEMA_URLS))
    return cache if any((cache / name).is_file() for name in PINNED_SCHEMA_URLS) else None


def _wanted(name: str, crds: CRDSchemas) -> bool:
    """A pinned file is fetched only when the cluster's own CRDs do not already hold what it holds."""
    match = _CRD_FILE.fullmatch(name)
    return match is None or (match["group"], match["plural"]) not in crds.plurals


def fetch_pinned(cache: Path, names: list[str]) -> str | None:
    """Each pinned file in `names` not yet in `cache`, fetched; None when all are there, else why not. A server's
    refusal (HTTP 404) costs that file only; a network that does not answer stops every further try in this
    process (see _network_down)."""
    global _network_down
    refused = []
    for name in names:
        target = cache / name
        if target.is_file():
            continue
        if _network_down is not None:
            return _network_down
        url = PINNED_SCHEMA_URLS[name]
        try:
            with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:
                data = response.read()
        except urllib.error.HTTPError as error:
            refused.append(f"{url}: HTTP {error.code}")
            continue
        except (OSError, ValueError) as error:
            _network_down = f"{url}: {getattr(error, 'reason', None) or error}"
            return _network_down
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written whole, then renamed: the clusters validate in parallel processes that share the cache.
        partial = target.with_name(f".{target.name}.{os.getpid()}")
        partial.write_bytes(data)
        partial.replace(target)
    return "; ".join(refused) or None


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
        schema, _, deprecated, crd_source = entry
        if schema is None:
            return [Finding(UNVALIDATED, where, resource.ref, "apiVersion",
                            f"no schema for CRD {kind}.{group} {version}: its CRD ({crd_source}) has no "
                            "openAPIV3Schema for this version; not validated", "schema")]
        findings = _errors(CRDValidator(schema), obj, resource, f"CRD {crd_source}")
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
    hint = crds.missing_hint or "give its CRD in a schema folder (--schemas or " + SCHEMAS_ENV + ")"
    return [Finding(UNVALIDATED, where, resource.ref, "apiVersion",
                    f"no schema for CRD {kind}.{group} {version}: not validated; {hint}", "schema")]


def _errors(validator, obj: dict[str, Any], resource: Resource, against: str) -> list[Finding]:
    try:
        errors = sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
    except Exception as broken:  # a CRD from Git or a chart whose schema jsonschema cannot apply
        # (an unknown type, a $ref): the API server would refuse that CRD; say so, never a traceback.
        return [Finding(ERROR, resource.location, resource.ref, "(root)",
                        f"not validated: the schema of {against} cannot be applied ({type(broken).__name__}: "
                        f"{str(broken).splitlines()[0][:200] if str(broken) else ''})", "schema")]
    findings = []
    for error in errors:
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
    if not schemas:
        findings.append(Finding(UNVALIDATED, release.helmrelease.source_file, f"values of {release.helmrelease.ref}",
                                "(root)", "not validated against the chart's values schema: the chart did not render "
                                f"(give it with {CHARTS_ENV}) and no schema folder holds airflow-chart-*/"
                                f"values.schema.json (--schemas or {SCHEMAS_ENV})", "values-schema"))
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
