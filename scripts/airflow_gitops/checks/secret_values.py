"""Secrets in plain text outside a Secret, wherever text that reaches the cluster or the logs can hold one.

Two kinds of rule:

- **Shape rules** (`shape`): a value that looks like a private key, a cloud or SaaS token, a webhook URL, a URL with
  a password or with a token in its query is a secret whatever holds it. They run over every string of every object
  that reaches the cluster: objects from Git (annotations, labels, container args and command, source URLs, a Flux
  Provider's address, custom resources, post-build variables, ConfigMap data and binaryData), every chart value
  (config blocks written as YAML, JSON or `key = value` text included) and every object a chart renders. Only a
  Secret's `data`/`stringData` are left out: the plaintext-secret and sops checks own them.
- **Key rules** (`problem`): a literal under a key that names a secret (password, token, fernet_key, ...) where text
  is keyed: env lists (`AIRFLOW__SECTION__KEY` read as its Airflow option), Airflow config, ConfigMap data and
  binaryData, `postBuild.substitute`, Airflow connections, `--flag=value` and `NAME=value` in args and commands,
  `key: value` and `key = value` lines of config blocks, and any chart value.

A reference is not a secret: a Secret's name (`secretName`, `*SecretName`, `secretKeyRef`), a placeholder (`${var}`,
`$(VAR)`, `{{ }}`), a file path, Airflow's `<option>_cmd`/`<option>_secret` (which name where the secret is) and
`*_conn_id`.

Where each part of an input is judged is a table (OBJECT_RULES for Kubernetes objects, VALUES_RULES for chart
values): the first rule whose place matches a field judges that field and everything under it; a string no rule
claims falls to the default judge of the input."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import shlex
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

from airflow_gitops.checks import policies
from airflow_gitops.checks.supply_chain import patch_documents
from airflow_gitops.model import ERROR, Finding, ReleaseRender, Resource, field_path
from airflow_gitops.source.bounds import load_yaml_all

CHECK = "secret-value"
# Key names whose literal value is a secret (Airflow options, env names, connection fields, ConfigMap keys, flags).
SECRET_KEY = re.compile(r"(?i)(passw(or)?d|\bpwd\b|_pwd$|secret|token|api[_-]?key|apikey|private[_-]?key|fernet|"
                        r"credential|access[_-]?key|client[_-]?secret|auth[_-]?key|signing[_-]?key|webhook[_-]?url)")
# Key names whose value holds credentials only when it is a URL with a password (connection strings).
CONNECTION_KEY = re.compile(r"(?i)(sql_alchemy_conn|result_backend|broker_url|connection|_conn$|_uri$|^uri$|dsn|"
                            r"_url$|^url$)")
# Names that point at a secret, or say something about one, rather than holding one (`--secret-namespace`).
REFERENCE_KEY = re.compile(r"(?i)(_conn_id|_id|_arn|_role|_bucket|_region|_file|_path|_name|_ref|_namespace|_type|"
                           r"_mode|_format|_algorithm|"
                           r"secret_?name|secretkeyref|"
                           r"keysecret|existingsecret|envname|secretkey|backend)$")
# Camel-case chart keys that name a Secret or a key of one (`secretName`, `fernetKeySecretName`, `sshKeySecret`).
CHART_REFERENCE_KEY = re.compile(r"^(secretName|secretKey|envName|.*SecretName|.*KeySecret|.*Secret[A-Z]\w*)$")
PLACEHOLDER = re.compile(r"^(\$\{[^}]*\}|\$\([^)]*\)|\{\{.*\}\}|<[^>]*>|\*+|changeme-in-secret)$")
# Values no secret has: booleans, numbers, durations, Python import paths (`[core] secret_mask_adapter`,
# `[logging] secret_mask_exception_args: False`), absolute file paths (they say where a secret is), public keys and
# certificates.
NOT_A_SECRET = re.compile(r"^((?i:true|false|none|null)|-?\d+(\.\d+)?[smhd]?|[A-Za-z_]\w*(\.[A-Za-z_]\w*)+|"
                          r"/[\w./-]*|"
                          r"(ssh-(rsa|ed25519|dss)|ecdsa-sha2-\S+) .*|-----BEGIN (PUBLIC KEY|CERTIFICATE)-----.*)$", re.S)

# (what it is, literals its every match contains, its shape). Each is a published format: the provider's documented
# token prefix or webhook URL. A text holding none of a shape's literals is not searched for it: `in` is much faster
# than a regular expression on the long texts objects carry (CRD descriptions, config files).
Shape = tuple[str, tuple[str, ...], re.Pattern[str]]
SHAPES: list[Shape] = [(what, literals, re.compile(pattern)) for what, literals, pattern in [
    ("a PEM private key", ("PRIVATE KEY",), r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
    ("an AWS access key id", ("AKIA", "ASIA", "ABIA", "ACCA"), r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"),
    ("a GitHub token", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
     r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
    ("a GitLab token", ("glpat-",), r"\bglpat-[A-Za-z0-9_-]{20,}"),
    ("a Slack token", ("xox",), r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    ("a Slack webhook URL", ("hooks.slack.com",),
     r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9]+/[A-Za-z0-9]+/[A-Za-z0-9]+"),
    ("a Discord webhook URL", ("/api/webhooks/",),
     r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/\d+/[A-Za-z0-9_-]+"),
    ("a Microsoft Teams webhook URL", (".webhook.office.com",),
     r"https://[A-Za-z0-9-]+\.webhook\.office\.com/webhookb2/[^\s'\"]+"),
    ("a Google API key", ("AIza",), r"\bAIza[0-9A-Za-z_-]{35}"),
    ("a Stripe secret key", ("k_live_",), r"\b[rs]k_live_[0-9A-Za-z]{24,}"),
    ("an npm token", ("npm_",), r"\bnpm_[A-Za-z0-9]{36}\b"),
    ("a PyPI token", ("pypi-AgE",), r"\bpypi-AgE[A-Za-z0-9_-]{50,}"),
    ("a Vault token", ("hvs.", "hvb.", "hvr."), r"\bhv[sbr]\.[A-Za-z0-9_-]{24,}"),
    ("a JWT", ("eyJ",), r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}"),
]]
FERNET_CANDIDATE = re.compile(r"(?<![A-Za-z0-9_\-+/=])[A-Za-z0-9_-]{43}=(?![A-Za-z0-9_\-+/=])")
URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]+")
# Query parameters that carry a credential besides the secret-like names: Azure SAS `sig`, Google Chat `key`, Azure
# Functions `code`, presigned S3 URLs.
SECRET_QUERY = re.compile(r"(?i)^(sig|signature|key|code|auth|x-amz-signature|x-amz-credential|x-amz-security-token)$")


# --- judging one value ------------------------------------------------------------------------------

@lru_cache(maxsize=1 << 16)
def shape(text: str) -> str | None:
    """What a text looks like when it holds a secret whatever its key: None when it looks like none. Cached: the
    same texts recur (a chart's CRDs in every cluster, descriptions repeated within one)."""
    for what, literals, pattern in SHAPES:
        if any(literal in text for literal in literals) and pattern.search(text):
            return what
    for candidate in _fernet_candidates(text):
        try:
            if len(base64.urlsafe_b64decode(candidate)) == 32:
                return "a Fernet key (urlsafe base64 of 32 bytes)"
        except (binascii.Error, ValueError):
            continue
    for url in _urls(text):
        why = url_problem(url)
        if why:
            return why
    return None


SCHEME = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+.-")


def _fernet_candidates(text: str) -> Iterator[str]:
    """FERNET_CANDIDATE's matches, tried at each `=` (its lookbehind and lookahead see the text around): a scan of
    every position is slow on the long texts objects carry."""
    at = text.find("=", 43)
    while at >= 0:
        match = FERNET_CANDIDATE.match(text, at - 43)
        if match:
            yield match.group(0)
        at = text.find("=", at + 1)


def _urls(text: str) -> Iterator[str]:
    """URL's matches (as findall gives them), tried around each `://`: the scheme backwards, then URL from its
    leftmost possible start."""
    end, at = 0, text.find("://")
    while at >= 0:
        start = at
        while start > end and text[start - 1] in SCHEME:
            start -= 1
        match = next((m for p in range(start, at) if (m := URL.match(text, p))), None)
        if match:
            yield match.group(0)
            end = match.end()
        at = text.find("://", max(at + 3, end))


def url_problem(url: str) -> str | None:
    """A URL that carries a credential: a password, a token as its user, a secret in its query."""
    try:
        parts = urlsplit(url)
        password, user, query = parts.password, parts.username, parse_qsl(parts.query)
    except ValueError:
        return None
    if password and not _placeholder(password):
        return "a URL with a password"
    if user and len(user) >= 20 and re.fullmatch(r"[A-Za-z0-9_-]+", user) and entropy(user) >= 3.5:
        return "a URL with a token as its user"
    for key, value in query:
        if not value or _placeholder(value):
            continue
        if (SECRET_KEY.search(key) and not is_reference_key(key)) or (SECRET_QUERY.match(key) and len(value) >= 8):
            return f"a URL with a secret in its query ({key})"
    return None


def _placeholder(text: str) -> bool:
    return bool(PLACEHOLDER.match(text) or "${" in text or "$(" in text or "{{" in text)


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
        return _json_connection_problem(conn)
    if _url_password(text):
        return "an Airflow connection URI with a password"
    try:
        query = parse_qsl(urlsplit(text).query)
    except ValueError:
        return None
    return next((f"an Airflow connection URI with a secret in its query ({key})" for key, value in query
                 if problem(key, value)), None)


def _json_connection_problem(conn: dict[str, Any]) -> str | None:
    if conn.get("password") not in (None, ""):
        return "an Airflow connection (JSON) with a password"
    extra = conn.get("extra")
    if isinstance(extra, str):
        try:
            extra = json.loads(extra)
        except ValueError:
            extra = {}
    return next((f"an Airflow connection (JSON) with a secret in {field_path(path)}"
                 for path, value in _leaves(extra if isinstance(extra, dict) else {}, ["extra"])
                 if problem(str(path[-1]), value)), None)


def _leaves(node: Any, path: list[Any]) -> Iterator[tuple[list[Any], Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, [*path, key])
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _leaves(value, [*path, index])
    else:
        yield path, node


def env_key(name: str) -> str:
    """The key an env variable is judged by: AIRFLOW__SECTION__KEY is Airflow option KEY."""
    return name.split("__")[-1].lower() if name.startswith("AIRFLOW__") else name


def env_problems(env: Any, path: list[Any]) -> Iterator[tuple[list[Any], str]]:
    """(path, why) for each literal `value` of an env list that is a secret."""
    for index, item in enumerate(env if isinstance(env, list) else []):
        if not isinstance(item, dict) or "value" not in item:
            continue
        name = str(item.get("name") or "")
        why = problem(env_key(name), item.get("value"))
        if why:
            yield [*path, index, "value"], f"env {name}: {why}"


# Flags and shell assignments in an argument: `--password=x`, `-p=x`, `--token x`, `AIRFLOW__CORE__FERNET_KEY=x`.
FLAG_WITH_VALUE = re.compile(r"^--?([A-Za-z][\w.-]*)=(.*)$", re.S)
ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.S)


def argument_problem(text: str) -> str | None:
    """A secret in one argument of a command: by its shape, or as the value of a secret-named flag or variable."""
    found = shape(text)
    if found:
        return f"holds {found}"
    try:
        tokens = shlex.split(text)
    except ValueError:  # an unbalanced quote: the shell would refuse it; judge the words
        tokens = text.split()
    for index, token in enumerate(tokens):
        flag, assignment = FLAG_WITH_VALUE.match(token), ASSIGNMENT.match(token)
        if flag:
            key, value = flag.group(1).replace("-", "_").rsplit(".", 1)[-1], flag.group(2)
        elif assignment:
            key, value = env_key(assignment.group(1)), assignment.group(2)
        elif token.startswith("--") and index + 1 < len(tokens) and not tokens[index + 1].startswith("-"):
            key, value = token[2:].replace("-", "_"), tokens[index + 1]
            if not SECRET_KEY.search(key):
                continue
        else:
            continue
        why = problem(key, value)
        if why:
            return f"{token.split('=', 1)[0]}: {why}"
    return None


# --- structured text: config blocks in strings -------------------------------------------------------

# `key = value` (INI, Python, properties) and `key: value` lines; the value a literal, not an expression.
CONFIG_LINE = re.compile(r"^\s*[\"']?([A-Za-z_][\w.-]*)[\"']?\s*[:=]\s*(.+?)\s*,?\s*$")
LITERAL = re.compile(r"^([\"'])(.*)\1$|^[^\s\"'(){}\[\]$]+$")


def structured(text: str) -> Any:
    """A config block written as YAML or JSON in a string (`extraEnv: |`, `backend_kwargs: '{...}'`), parsed; None
    when the text is no mapping or list (a plain value, a script, a template)."""
    stripped = text.strip()
    if "\n" not in stripped and not stripped.startswith(("{", "[")):
        return None
    try:
        docs = load_yaml_all(text)
    except (yaml.YAMLError, ValueError):
        return None
    return docs[0] if len(docs) == 1 and isinstance(docs[0], (dict, list)) else None


def config_lines(text: str) -> Iterator[tuple[str, str]]:
    """(key, literal) of each `key = value` or `key: value` line of a multi-line text."""
    for line in text.splitlines():
        match = CONFIG_LINE.match(line)
        if match and not line.lstrip().startswith(("#", ";", "//")):
            literal = LITERAL.match(match.group(2))
            if literal:
                yield match.group(1), literal.group(2) if literal.group(1) else match.group(2)


# --- the walker and its tables -----------------------------------------------------------------------

Judged = tuple[list[Any], str, str]  # (field path, why, the text judged)
Judge = Callable[["Walk", Any, list[Any]], Iterator[Judged]]


@dataclass(frozen=True)
class Rule:
    """A place in an input (kinds, and a field pattern: keys, `*` any one field, a leading `**` any fields before)
    and the judge of what is there."""

    kinds: frozenset[str]
    pattern: tuple[str, ...]
    judge: Judge

    def matches(self, kind: str, path: list[Any]) -> bool:
        if self.kinds and kind not in self.kinds:
            return False
        if self.pattern[0] == "**":
            tail = self.pattern[1:]
            return len(path) >= len(tail) and _fits(tail, path[len(path) - len(tail):])
        return len(path) == len(self.pattern) and _fits(self.pattern, path)


def _fits(pattern: tuple[str, ...], path: list[Any]) -> bool:
    return all(want == "*" or want == part for want, part in zip(pattern, path, strict=True))


def rule(kinds: str, pattern: str, judge: Judge) -> Rule:
    """`rule("ConfigMap", "data", judge)`, `rule("*", "**.env", judge)`."""
    return Rule(frozenset() if kinds == "*" else frozenset(kinds.split("|")), tuple(pattern.split(".")), judge)


class Rules:
    """A table of rules, first match wins; indexed by the last key of each pattern, so that a field is compared
    only with the rules that can match it."""

    def __init__(self, rules: list[Rule]):
        self.rules = rules
        self.by_key: dict[str, list[Rule]] = {}
        for entry in rules:
            self.by_key.setdefault(entry.pattern[-1], []).append(entry)

    def find(self, kind: str, path: list[Any]) -> Rule | None:
        if not path or not isinstance(path[-1], str):
            return None
        return next((entry for entry in self.by_key.get(path[-1], ()) if entry.matches(kind, path)), None)


@dataclass(frozen=True)
class Walk:
    """One walk over an input: its kind, its rules, how a string no rule claims is judged, and what the rules need."""

    kind: str
    rules: Rules
    leaf: Callable[[Walk, list[Any], str], Iterator[Judged]]
    # (namespace, name) of the ConfigMaps that hold chart values: judged as values, not as ConfigMaps.
    values_configmaps: frozenset[tuple[str, str]] = frozenset()
    namespace: str = ""
    name: str = ""

    def node(self, node: Any, path: list[Any]) -> Iterator[Judged]:
        """The rule of this field judges it; without one, what is inside is walked."""
        found = self.rules.find(self.kind, path)
        return found.judge(self, node, path) if found is not None else self.inside(node, path)

    def inside(self, node: Any, path: list[Any]) -> Iterator[Judged]:
        if isinstance(node, str):
            yield from self.leaf(self, path, node)
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            yield from self.leaf(self, path, str(node))  # `password: 123456` is a number in YAML
        elif isinstance(node, dict):
            for key, value in node.items():
                yield from self.node(value, [*path, key])
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from self.node(value, [*path, index])

    def keyed(self, node: Any, path: list[Any]) -> Iterator[Judged]:
        """What is inside this field with the key rules at every string (a config block); the rules still judge the
        fields below (an env list in a pod template held by a ConfigMap)."""
        return replace(self, leaf=_keyed_leaf).inside(node, path)


# --- judges ---------------------------------------------------------------------------------------------

def _shape_leaf(walk: Walk, path: list[Any], text: str) -> Iterator[Judged]:
    found = shape(text)
    if found:
        yield path, f"holds {found}", text


def _keyed_leaf(walk: Walk, path: list[Any], text: str) -> Iterator[Judged]:
    """A string under a key: the key rules; a config block inside it, judged key by key."""
    parsed = structured(text)
    if parsed is not None:
        yield from walk.keyed(parsed, path)
        return
    key = next((str(part) for part in reversed(path) if isinstance(part, str)), None)
    why = problem(key, text)
    if why:
        yield path, why, text
    elif "\n" in text.strip():
        for line_key, value in config_lines(text):
            why = problem(line_key, value)
            if why:
                yield path, f"{line_key}: {why}", text
                return


def _values_leaf(walk: Walk, path: list[Any], text: str) -> Iterator[Judged]:
    """A chart value: by its shape, then by the key rules (a chart value named like a secret holds one)."""
    found = list(_shape_leaf(walk, path, text))
    yield from found or _keyed_leaf(walk, path, text)


def _skip(walk: Walk, node: Any, path: list[Any]) -> Iterator[Judged]:
    return iter(())


def _keyed(walk: Walk, node: Any, path: list[Any]) -> Iterator[Judged]:
    return walk.keyed(node, path)


def _configmap_data(walk: Walk, node: Any, path: list[Any]) -> Iterator[Judged]:
    if (walk.namespace, walk.name) in walk.values_configmaps:
        return iter(())  # judged as chart values, with the values file's own paths
    return walk.keyed(node, path)


def _binary_data(walk: Walk, node: Any, path: list[Any]) -> Iterator[Judged]:
    """binaryData is base64: judged decoded when it is text (undecodable base64 is the schema check's finding)."""
    for key, value in node.items() if isinstance(node, dict) else ():
        try:
            text = base64.b64decode(str(value), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            continue
        for where, why, _ in _keyed_leaf(walk, [*path, key], text):
            yield where, f"{why} (base64-decoded)", str(value)


def _env(walk: Walk, node: Any, path: list[Any]) -> Iterator[Judged]:
    env = _parsed(node)
    if isinstance(env, list):
        for where, why in env_problems(env, path):
            yield where, why, str(env[where[len(path)]].get("value"))
    elif isinstance(node, str):  # a string env that is not YAML (a template): judged by shape
        yield from _shape_leaf(walk, path, node)
    else:
        yield from walk.inside(node, path)


def _arguments(walk: Walk, node: Any, path: list[Any]) -> Iterator[Judged]:
    """Each argument by itself (shape, `--flag=value`, `NAME=value`, a shell line), and a list's `--secret-flag`
    followed by its value as the next argument."""
    if isinstance(node, str):
        why = argument_problem(node)
        if why:
            yield path, why, node
        return
    if not isinstance(node, list):
        yield from walk.inside(node, path)
        return
    for index, text in enumerate(node):
        if not isinstance(text, str):
            yield from walk.node(text, [*path, index])
            continue
        why = argument_problem(text)
        after = node[index + 1] if index + 1 < len(node) else None
        if not why and text.startswith("-") and "=" not in text and isinstance(after, str) \
                and SECRET_KEY.search(flag := text.lstrip("-").replace("-", "_")):
            why = problem(flag, after) and f"{text}: {problem(flag, after)}"
            if why:
                yield [*path, index + 1], why, after
                continue
        if why:
            yield [*path, index], why, text


def _post_renderer_patch(walk: Walk, node: Any, path: list[Any]) -> Iterator[Judged]:
    """A kustomize patch (strategic merge or JSON 6902) as text: each document judged as an object, and a JSON 6902
    `add` of env entries as env. The finding names the patch; its message the field the patch sets."""
    for doc in patch_documents(node):
        kind = str(doc.get("kind", "")) if isinstance(doc, dict) else ""
        for where, why, text in Walk(kind, OBJECT_RULES, _shape_leaf).node(doc, []):
            yield path, f"postRenderers patch sets {field_path(where)}: {why}", text
        for op in doc if isinstance(doc, list) else []:
            if isinstance(op, dict) and str(op.get("path", "")).rstrip("/-").endswith("/env"):
                value = op.get("value")
                for _, why in env_problems(value if isinstance(value, list) else [value], []):
                    yield path, f"postRenderers patch sets {why}", str(value)


def _extra_secret_data(walk: Walk, node: Any, path: list[Any]) -> Iterator[Judged]:
    if node:
        yield path, ("a Secret's literal data in values: the value lands in Git; make the Secret with an "
                     "ExternalSecret (or SOPS) and reference it by name"), str(node)


def _extra_configmap_data(walk: Walk, node: Any, path: list[Any]) -> Iterator[Judged]:
    parsed = _parsed(node)
    found = walk.keyed(parsed, path) if isinstance(parsed, (dict, list)) else _keyed_leaf(walk, path, str(node))
    for where, why, text in found:
        yield where, f"ConfigMap data: {why}", text


def _airflow_config(walk: Walk, node: Any, path: list[Any]) -> Iterator[Judged]:
    for where, why, text in walk.keyed(node, path):
        section, key = ([*where[1:3], None, None])[:2]
        yield where, (f"Airflow config [{section}] {key}: {why}; use {key}_secret (a secrets backend) or "
                      "AIRFLOW__SECTION__KEY from a Secret (chart value `secret:`)"), text


def _connections(walk: Walk, node: Any, path: list[Any]) -> Iterator[Judged]:
    for index, conn in enumerate(node if isinstance(node, list) else []):
        conn = conn if isinstance(conn, dict) else {}
        checks = [("password", problem("password", conn.get("password"))),
                  ("extra", connection_problem(json.dumps({"extra": conn.get("extra")}))),
                  ("uri", connection_problem(str(conn.get("uri") or "")))]
        yield from (([*path, index, key], why, str(conn.get(key))) for key, why in checks if why)


def _parsed(node: Any) -> Any:
    """A chart value that is YAML in a string (`extraEnv: |`, `extraConfigMaps.*.data: |`), parsed; a string that is
    not YAML (a template) stays as it is."""
    if not isinstance(node, str) or not node.strip():
        return node
    try:
        docs = load_yaml_all(node)
    except (yaml.YAMLError, ValueError):
        return node
    return docs[0] if docs else None


# Kubernetes objects: from Git, rendered by a chart, in a postRenderers patch. First match wins; a string no rule
# claims is judged by its shape.
OBJECT_RULES = Rules([
    rule("Secret", "data", _skip),  # the plaintext-secret and sops checks own a Secret's data
    rule("Secret", "stringData", _skip),
    rule("Secret", "sops", _skip),
    rule("HelmRelease", "spec.values", _skip),  # judged as chart values (values_secrets)
    rule("HelmRelease", "spec.postRenderers.*.kustomize.patches.*.patch", _post_renderer_patch),
    rule("ConfigMap", "data", _configmap_data),
    rule("ConfigMap", "binaryData", _binary_data),
    rule("Kustomization", "spec.postBuild.substitute", _keyed),
    rule("*", "**.env", _env),
    rule("*", "**.args", _arguments),
    rule("*", "**.command", _arguments),
])

ENV_KEYS = ("env", "extraEnv", "extraEnvVars")
# Chart values (of every chart). First match wins; a string no rule claims is judged by its shape, then by its key.
VALUES_RULES = Rules([
    # The chart's own secret fields: the values-secret check reports them (policies.SECRET_VALUES).
    *(rule("values", ".".join(path), _skip) for path in policies.SECRET_VALUES),
    rule("values", "extraSecrets.*.data", _extra_secret_data),
    rule("values", "extraSecrets.*.stringData", _extra_secret_data),
    rule("values", "extraConfigMaps.*.data", _extra_configmap_data),
    rule("values", "config", _airflow_config),
    *(rule("values", f"**.{key}", _env) for key in ENV_KEYS),
    rule("values", "**.connections", _connections),
    rule("values", "**.args", _arguments),
    rule("values", "**.command", _arguments),
])


# --- the three inputs -------------------------------------------------------------------------------

def values_secrets(release: ReleaseRender, values_file_of) -> list[Finding]:
    """Every chart value of a release."""
    ref = f"values of {release.helmrelease.ref}"
    return [Finding(ERROR, values_file_of(path), ref, field_path(path), f"secret value in plain chart values: {why}",
                    CHECK) for path, why, _ in _values(release)]


def git_secrets(git_resources: list[Resource], values_configmaps: set[tuple[str, str]]) -> list[Finding]:
    """Every object from Git (a Secret's data aside)."""
    configmaps = frozenset(values_configmaps)
    return [policies.finding(r, path, _git_message(r, path, why), CHECK)
            for r in git_resources for path, why, _ in _object(r, configmaps)]


def rendered_secrets(releases: list[ReleaseRender]) -> list[Finding]:
    """Every object the charts render (a Secret's data aside): a value that took a route the values rules do not
    see (a template, a chart default). A text the values rules already report is not reported twice."""
    reported = {text.strip() for release in releases for _, _, text in _values(release) if text.strip()}
    return [policies.finding(r, path, f"secret value in the chart's output: {why}", CHECK)
            for release in releases for r in release.objects for path, why, text in _object(r, frozenset())
            if not any(secret in text for secret in reported)]


def _values(release: ReleaseRender) -> list[Judged]:
    values = release.values if isinstance(release.values, dict) else {}
    return _first_per_field(Walk("values", VALUES_RULES, _values_leaf).node(values, []))


def _object(r: Resource, values_configmaps: frozenset[tuple[str, str]]) -> list[Judged]:
    return _first_per_field(Walk(r.kind, OBJECT_RULES, _shape_leaf, values_configmaps, r.namespace, r.name
                                 ).node(r.obj, []))


def _first_per_field(found: Iterator[Judged]) -> list[Judged]:
    seen: dict[tuple[str, str], Judged] = {}
    for judged in found:
        seen.setdefault((field_path(judged[0]), judged[1]), judged)
    return list(seen.values())


def _git_message(r: Resource, path: list[Any], why: str) -> str:
    if r.kind == "ConfigMap" and path[:1] in (["data"], ["binaryData"]):
        return f"secret value in a ConfigMap: {why}; a ConfigMap is plaintext for anyone who can read Git"
    if why.startswith("env "):
        return f"secret value in Git: {why}; use valueFrom.secretKeyRef"
    if why.startswith("postRenderers "):
        return why
    return f"secret value in Git: {why}; keep it in a Secret and reference it by name"
