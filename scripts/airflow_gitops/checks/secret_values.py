"""Secret values outside Secrets: chart values (extraSecrets, extraConfigMaps, config, env, extraEnv, connections),
env of containers in Git and in postRenderers patches, and plain ConfigMaps in Git.

Judged by key name (a secret-like key with a literal value) and by value shape (Fernet keys, PEM private keys, AWS
access keys, GitHub/Slack tokens, JWTs), as gitleaks and detect-secrets do. References are not secrets: `${var}`
before substitution, `$(printenv X)`, Secret *names* (`*SecretName`, `secretKeyRef`), Airflow's `*_cmd`/`*_secret`
options (which name where the secret is) and `*_conn_id`."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

from airflow_gitops.checks import policies
from airflow_gitops.checks.supply_chain import patch_documents
from airflow_gitops.helm_controller.api import HelmRelease
from airflow_gitops.model import ERROR, Finding, ReleaseRender, Resource, field_path, mapping
from airflow_gitops.source.bounds import load_yaml_all

CHECK = "secret-value"
# Key names whose literal value is a secret (Airflow options, env names, connection fields, ConfigMap keys).
SECRET_KEY = re.compile(r"(?i)(passw(or)?d|\bpwd\b|_pwd$|secret|token|api[_-]?key|apikey|private[_-]?key|fernet|"
                        r"credential|access[_-]?key|client[_-]?secret|auth[_-]?key|signing[_-]?key|webhook[_-]?url)")
# Key names whose value holds credentials only when it is a URL with a password (connection strings).
CONNECTION_KEY = re.compile(r"(?i)(sql_alchemy_conn|result_backend|broker_url|connection|_conn$|_uri$|^uri$|dsn|"
                            r"_url$|^url$)")
# Names that point at a secret rather than holding one.
REFERENCE_KEY = re.compile(r"(?i)(_conn_id|_id|_arn|_role|_bucket|_region|_file|_path|_name|_ref|"
                           r"secret_?name|secretkeyref|"
                           r"keysecret|existingsecret|envname|secretkey|backend)$")
# Camel-case chart keys that name a Secret or a key of one (`secretName`, `fernetKeySecretName`, `sshKeySecret`).
CHART_REFERENCE_KEY = re.compile(r"^(secretName|secretKey|envName|.*SecretName|.*KeySecret|.*Secret[A-Z]\w*)$")
PLACEHOLDER = re.compile(r"^(\$\{[^}]*\}|\$\([^)]*\)|\{\{.*\}\}|<[^>]*>|\*+|changeme-in-secret)$")
# Values no secret has: booleans, numbers, durations, Python import paths (`[core] secret_mask_adapter`,
# `[logging] secret_mask_exception_args: False`), public keys and certificates.
NOT_A_SECRET = re.compile(r"^((?i:true|false|none|null)|-?\d+(\.\d+)?[smhd]?|[A-Za-z_]\w*(\.[A-Za-z_]\w*)+|"
                          r"(ssh-(rsa|ed25519|dss)|ecdsa-sha2-\S+) .*|-----BEGIN (PUBLIC KEY|CERTIFICATE)-----.*)$", re.S)
SHAPES = [
    ("a PEM private key", re.compile(r"-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----")),
    ("an AWS access key id", re.compile(r"\b(AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b")),
    ("a GitHub token", re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b")),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("a Slack webhook URL", re.compile(r"https://hooks\.slack\.com/services/T[A-Za-z0-9]+/B[A-Za-z0-9]+/[A-Za-z0-9]+")),
    ("a JWT", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")),
]
FERNET_CANDIDATE = re.compile(r"(?<![A-Za-z0-9_\-+/=])[A-Za-z0-9_-]{43}=(?![A-Za-z0-9_\-+/=])")


# --- judging one value ------------------------------------------------------------------------------

def shape(text: str) -> str | None:
    """What a value looks like when it is a secret whatever its key: None when it looks like none."""
    for name, pattern in SHAPES:
        if pattern.search(text):
            return name
    for candidate in FERNET_CANDIDATE.findall(text):
        try:
            if len(base64.urlsafe_b64decode(candidate)) == 32:
                return "a Fernet key (urlsafe base64 of 32 bytes)"
        except (binascii.Error, ValueError):
            continue
    return None


def entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values()) if text else 0.0


def is_reference_key(key: str) -> bool:
    # Airflow's `<option>_cmd` and `<option>_secret` say where a sensitive option's value is (a command, a secrets
    # backend key); `jwt_secret` or `client_secret` are no such pointer, they are the secret.
    pointer = re.match(r"(?i)^(.+)_(cmd|secret)$", key)
    if pointer:
        return bool(SECRET_KEY.search(pointer.group(1)) or CONNECTION_KEY.search(pointer.group(1)))
    return bool(REFERENCE_KEY.search(key) or CHART_REFERENCE_KEY.match(key))


def problem(key: str | None, value: Any) -> str | None:
    """Why `key: value` is a secret in plain text, or None."""
    if not isinstance(value, str):
        value = "" if value is None or isinstance(value, bool) else str(value)
    text = value.strip()
    if not text or PLACEHOLDER.match(text):
        return None
    found = shape(text)
    if found:
        return f"holds {found}"
    if NOT_A_SECRET.match(text) and not (key and re.search(r"(?i)passw(or)?d|pwd", key) and text.isdigit()):
        return None  # but a numeric password is a password
    if key and not is_reference_key(key):
        if SECRET_KEY.search(key):
            return f"a literal value under the secret-like key {key!r}"
        if CONNECTION_KEY.search(key) and _url_password(text):
            return "a connection URL with a password"
        if key.upper().startswith("AIRFLOW_CONN_"):
            return connection_problem(text)
    if key and re.search(r"(?i)(key|salt|signature)$", key) and len(text) >= 24 and entropy(text) >= 4.0:
        return f"a high-entropy literal under {key!r}"
    return None


def _url_password(text: str) -> bool:
    try:
        return bool(urlsplit(text).password)
    except ValueError:
        return False


def connection_problem(text: str) -> str | None:
    """An Airflow connection (AIRFLOW_CONN_* value, JSON or URI) that carries a password, token or key."""
    try:
        conn = json.loads(text)
    except ValueError:
        conn = None
    if isinstance(conn, dict):
        if conn.get("password") not in (None, ""):
            return "an Airflow connection (JSON) with a password"
        extra = conn.get("extra")
        if isinstance(extra, str):
            try:
                extra = json.loads(extra)
            except ValueError:
                extra = {}
        for path, value in _leaves(extra if isinstance(extra, dict) else {}, ["extra"]):
            if problem(str(path[-1]), value):
                return f"an Airflow connection (JSON) with a secret in {field_path(path)}"
        return None
    if _url_password(text):
        return "an Airflow connection URI with a password"
    try:
        query = parse_qsl(urlsplit(text).query)
    except ValueError:
        return None
    for key, value in query:
        if problem(key, value):
            return f"an Airflow connection URI with a secret in its query ({key})"
    return None


def _leaves(node: Any, path: list[Any]) -> Iterator[tuple[list[Any], Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, [*path, key])
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _leaves(value, [*path, index])
    else:
        yield path, node


def env_problems(env: Any, path: list[Any]) -> Iterator[tuple[list[Any], str]]:
    """(path, why) for each literal `value` of an env list that is a secret."""
    for index, item in enumerate(env if isinstance(env, list) else []):
        if not isinstance(item, dict) or "value" not in item:
            continue
        name = str(item.get("name") or "")
        # AIRFLOW__SECTION__KEY is Airflow config key KEY: judge it by that name.
        key = name.split("__")[-1].lower() if name.startswith("AIRFLOW__") else name
        why = problem(key, item.get("value"))
        if why:
            yield [*path, index, "value"], f"env {name}: {why}"


# --- chart values -----------------------------------------------------------------------------------

ENV_KEYS = {"env", "extraEnv", "extraEnvVars"}


def values_secrets(release: ReleaseRender, values_file_of) -> list[Finding]:
    values = release.values if isinstance(release.values, dict) else {}
    ref = f"values of {release.helmrelease.ref}"
    found: list[tuple[list[Any], str]] = []
    for name, spec in (values.get("extraSecrets") or {}).items() if isinstance(values.get("extraSecrets"), dict) else []:
        for key in ("data", "stringData"):
            if isinstance(spec, dict) and spec.get(key):
                found.append((["extraSecrets", name, key], "a Secret's literal data in values: the value lands in Git; "
                              "make the Secret with an ExternalSecret (or SOPS) and reference it by name"))
    for name, spec in (values.get("extraConfigMaps") or {}).items() if isinstance(values.get("extraConfigMaps"), dict) \
            else []:
        data = _yaml_or_dict((spec or {}).get("data") if isinstance(spec, dict) else None)
        for key, value in data.items():
            why = problem(str(key), value)
            if why:
                found.append((["extraConfigMaps", name, "data", key], f"ConfigMap data: {why}"))
    for section, options in (values.get("config") or {}).items() if isinstance(values.get("config"), dict) else []:
        for key, value in (options or {}).items() if isinstance(options, dict) else []:
            why = problem(str(key), value)
            if why:
                found.append((["config", section, key], f"Airflow config [{section}] {key}: {why}; use {key}_secret "
                              "(a secrets backend) or AIRFLOW__SECTION__KEY from a Secret (chart value `secret:`)"))
    for path, node in _leaves_with_lists(values, []):
        if path and path[-1] in ENV_KEYS:
            found += list(env_problems(_parsed(node), path))
        if path and path[-1] == "connections" and isinstance(node, list):
            for index, conn in enumerate(node):
                conn = conn if isinstance(conn, dict) else {}
                checks = [("password", problem("password", conn.get("password"))),
                          ("extra", connection_problem(json.dumps({"extra": conn.get("extra")}))),
                          ("uri", connection_problem(str(conn.get("uri") or "")))]
                found += [([*path, index, key], why) for key, why in checks if why]
    handled = [p[:3] for p, _ in found]

    def reported(path: list[Any]) -> bool:
        return any(path[:len(p)] == p or p[:len(path)] == path for p in handled)

    for path, value in _leaves(values, []):
        # env entries were judged above; a string env that is not YAML (a template) is judged by shape here.
        if not isinstance(value, str) or reported(path) or any(part in ENV_KEYS for part in path[:-1]):
            continue
        found_shape = shape(value)
        if found_shape:
            found.append((path, f"holds {found_shape}"))
    return [Finding(ERROR, values_file_of(path[:1] if path and path[0] in ENV_KEYS else path), ref, field_path(path),
                    f"secret value in plain chart values: {why}", CHECK) for path, why in found]


def _parsed(node: Any) -> Any:
    """A chart value that is YAML in a string (`extraEnv: |`, `extraConfigMaps.*.data: |`), parsed; a string that is
    not YAML (a template) stays as it is and is judged by shape."""
    if not isinstance(node, str) or not node.strip():
        return node
    try:
        docs = load_yaml_all(node)
    except yaml.YAMLError:
        return node
    return docs[0] if docs else None


def _yaml_or_dict(node: Any) -> dict[str, Any]:
    parsed = _parsed(node)
    return parsed if isinstance(parsed, dict) else ({"data": node} if isinstance(node, str) and node.strip() else {})


def _leaves_with_lists(node: Any, path: list[Any]) -> Iterator[tuple[list[Any], Any]]:
    """Every (path, node), containers included, so that env lists are seen whole."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves_with_lists(value, [*path, key])
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _leaves_with_lists(value, [*path, index])


# --- Git manifests ----------------------------------------------------------------------------------

def git_secrets(git_resources: list[Resource], values_configmaps: set[tuple[str, str]]) -> list[Finding]:
    """Container env in every object from Git, env in HelmRelease postRenderers patches, and plain ConfigMaps
    (except the generated values ConfigMaps, which values_secrets judges with the values file's own paths)."""
    findings = []
    for r in git_resources:
        # Every `env` list, not only containers': custom resources carry them too (CNPG Cluster spec.env, ...).
        for path, node in _leaves_with_lists(r.obj, []):
            if path and path[-1] == "env" and not (r.kind == "HelmRelease" and path[:2] == ["spec", "values"]):
                for where, why in env_problems(node, path):  # a HelmRelease's values are judged as values
                    findings.append(policies.finding(r, where, f"secret value in Git: {why}; use "
                                                     "valueFrom.secretKeyRef", CHECK))
        if r.kind == "ConfigMap" and (r.namespace, r.name) not in values_configmaps:
            for key, value in mapping(r.obj.get("data")).items():
                why = problem(str(key), value)
                if why:
                    findings.append(policies.finding(r, ["data", key], f"secret value in a ConfigMap: {why}; "
                                                     "a ConfigMap is plaintext for anyone who can read Git", CHECK))
        if r.kind == "HelmRelease":
            findings += _post_renderer_secrets(r)
    return findings


def _post_renderer_secrets(r: Resource) -> list[Finding]:
    findings = []
    for entry, patch in HelmRelease.parse(r).post_renderer_patches:
        base = f"{entry}.patch"
        for doc in patch_documents(mapping(patch).get("patch")):
            for path, node in _leaves_with_lists(doc, []):
                if path and path[-1] == "env":
                    for where, why in env_problems(node, path):
                        findings.append(policies.finding(r, base, f"postRenderers patch sets {field_path(where)}: "
                                                         f"{why}", CHECK))
                elif isinstance(node, dict) and isinstance(node.get("value"), (dict, list, str)) and \
                        str(node.get("path", "")).rstrip("/-").endswith("/env"):
                    # A JSON 6902 `add` of an env entry or list.
                    value = node["value"] if isinstance(node["value"], list) else [node["value"]]
                    for _, why in env_problems(value, [*path, "value"]):
                        findings.append(policies.finding(r, base, f"postRenderers patch sets {why}", CHECK))
                elif isinstance(node, str) and shape(node) and path and path[-1] != "env":
                    findings.append(policies.finding(r, base, f"postRenderers patch holds {shape(node)}", CHECK))
    return findings
