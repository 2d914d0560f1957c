"""The policy configuration: `[tool.airflow-gitops.policies]` in pyproject.toml, parsed once, strictly, into one typed
object (`PolicyConfig`) that the render and every check are handed.

A policy that can be switched off by emptying a list is no policy. So the table must exist, every key is known and
of its type, the lists of clusters name every cluster (or exempt it with a written reason), and `diff` shows any
change of the table to the reviewer (who, by .github/CODEOWNERS, owns pyproject.toml).

Strict means: every problem of the table is a finding (`PolicyConfig.findings`), never a silent default, and a key
that is wrong reads as the strictest value it can have: an allowlist as empty (nothing allowed), a cluster list as
"every cluster" (the check runs everywhere, exempting none). Nothing else in the tool reads pyproject.toml's table.
This module imports nothing of the package but `model`, so the source and helm-controller side (which must not fetch
a chart from a URL the table does not allow) and the checks read the same object."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from airflow_gitops.model import ERROR, Finding

FILE = "pyproject.toml"
TABLE = "[tool.airflow-gitops.policies]"
CHECK = "policy-config"
# Shorter reasons are placeholders ("todo", "n/a"), not reasons a reviewer can judge.
MIN_REASON_LENGTH = 20
# How an allowed origin of cluster-scope objects is written: the applier as findings name it.
APPLIER = re.compile(r"^(Kustomization|HelmRelease) [a-z0-9]([a-z0-9.-]*[a-z0-9])?/[a-z0-9]([a-z0-9.-]*[a-z0-9])?$")


@dataclass(frozen=True)
class Key:
    # "str": a non-empty string; "list": a non-empty list of strings; "allowlist": a list of strings that may be
    # empty (it then allows nothing); "clusters": cluster names, exemptions allowed; "table": the exemptions.
    kind: str
    help: str
    # For lists: what each entry must be, as (test, what it should be); None: any non-empty string.
    entry: str | None = None


# Every key of the table. A key not here is an error (a typo would otherwise switch a check off silently).
KEYS: dict[str, Key] = {
    "airflow-release": Key("str", "the HelmRelease that must keep the Airflow contract"),
    "require-resource-requests": Key("clusters", "clusters where every container requests CPU and memory"),
    "secrets-from-external-secrets": Key("clusters", "clusters whose Secrets all come from External Secrets"),
    "allowed-image-registries": Key("list", "registry/namespace prefixes every rendered image must come from"),
    "airflow-image-repositories": Key("list", "repositories of Airflow's own images (tag = the tested Airflow)"),
    "dags-repositories": Key("list", "Git URLs git-sync may take DAGs from"),
    "backup-before-airflow-change": Key("clusters", "clusters that take a CloudNativePG Backup before an Airflow "
                                                    "version change"),
    "allowed-git-sources": Key("allowlist", "GitRepository URLs Flux may fetch (the cluster's own repository "
                                            "included)", "git-url"),
    "allowed-helm-repositories": Key("allowlist", "HelmRepository URLs (https) charts may come from", "helm-url"),
    "allowed-oci-repositories": Key("allowlist", "OCIRepository and OCI HelmRepository URLs (oci://)", "oci-url"),
    "powerful-rbac-from": Key("allowlist", "appliers that may apply powerful RBAC (cluster-admin, admin, edit, *, "
                                           "escalate, bind, impersonate, aggregation, bindings to everyone)", "applier"),
    "admission-control-from": Key("allowlist", "appliers that may apply admission webhooks and policies", "applier"),
    "api-extensions-from": Key("allowlist", "appliers that may apply CustomResourceDefinitions and APIServices",
                               "applier"),
    "namespaces-from": Key("allowlist", "appliers that may apply Namespaces", "applier"),
    "exemptions": Key("table", "per cluster-list key: {cluster = \"reason\"} for clusters the list leaves out"),
}


# --- URLs ---------------------------------------------------------------------------------------------------------

SCP_LIKE = re.compile(r"^(?P<user>[^@/:\s]+)@(?P<host>[^/:\s]+):(?!//)(?P<path>\S*)$")


def url_credentials(url: str) -> str | None:
    """What in a source URL is a credential, or None. A password (`user:secret@`) is one in any URL; so is any user
    in an https/http/oci URL (a token passed as the user name, as GitHub accepts). The user of an SSH URL
    (`ssh://git@host/...`, `git@host:path`) names the account SSH logs in as, and is not one."""
    text = url.strip()
    if SCP_LIKE.match(text):
        return None
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    if parts.password is not None:
        return "a password"
    if parts.username is not None and parts.scheme.lower() not in ("ssh", "git+ssh"):
        return "a user name (a token in the user part is a credential)"
    return None


def canonical_url(url: str) -> str:
    """A URL as the allowlists compare it: scheme and host lower case, no user, no trailing slash. Git URLs compare
    as host/path without `.git`, so the SSH and HTTPS spellings of one repository are the same source."""
    text = url.strip()
    scp = SCP_LIKE.match(text)
    if scp:
        return f"git://{scp['host'].lower()}/{scp['path'].strip('/').removesuffix('.git')}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return text
    host = (parts.hostname or "").lower() + (f":{port}" if port else "")
    path = parts.path.rstrip("/")
    if parts.scheme.lower() in ("ssh", "git+ssh", "git", "https", "http") and path.endswith(".git"):
        path = path.removesuffix(".git")
    scheme = parts.scheme.lower()
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{host}{path}{query}"


def git_url_key(url: str) -> str:
    """A Git URL as host/path: https://h/o/r.git, ssh://git@h/o/r and git@h:o/r are one repository."""
    canonical = canonical_url(url)
    return canonical.split("://", 1)[-1]


def _url_problem(kind: str, url: str) -> str | None:
    """Why an allowlist entry of `kind` is no URL of that kind, or None."""
    if url != url.strip() or any(c.isspace() for c in url):
        return "holds white space"
    if (what := url_credentials(url)) is not None:
        return f"holds {what}: a credential never belongs in Git"
    scheme = "ssh" if SCP_LIKE.match(url) else urlsplit(url).scheme.lower()
    allowed = {"git-url": ("https", "ssh"), "helm-url": ("https",), "oci-url": ("oci",)}[kind]
    if scheme not in allowed:
        return f"is not a {' or '.join(allowed)} URL"
    if not SCP_LIKE.match(url) and not urlsplit(url).hostname:
        return "has no host"
    return None


def _entry_problem(kind: str | None, entry: str) -> str | None:
    if kind in ("git-url", "helm-url", "oci-url"):
        return _url_problem(kind, entry)
    if kind == "applier" and not APPLIER.match(entry):
        return "is not an applier (`Kustomization <namespace>/<name>` or `HelmRelease <namespace>/<name>`)"
    return None


# --- the typed configuration ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClusterList:
    """A cluster list of the table and its exemptions. `valid` False: the list was wrong, and reads as every
    cluster (the policy-config check reports why)."""

    key: str
    listed: tuple[str, ...] = ()
    exempt: Mapping[str, str] = field(default_factory=dict)
    valid: bool = True

    def off_reason(self, cluster: str) -> str | None:
        """Why the check of this list does not run on `cluster`, or None when it runs."""
        if not self.valid or cluster in self.listed:
            return None
        where = f"{FILE} [tool.airflow-gitops.policies.exemptions.{self.key}]"
        if cluster in self.exempt:
            return f"exempted in {where}: {self.exempt[cluster]}"
        return f"not in {self.key} and not exempted (the policy-config check reports it)"


@dataclass(frozen=True)
class PolicyConfig:
    airflow_release: str = "airflow"
    # The apache-airflow pin of pyproject.toml (the tested Airflow); None when there is none.
    airflow_version: str | None = None
    cluster_lists: Mapping[str, ClusterList] = field(default_factory=dict)
    allowed_image_registries: tuple[str, ...] = ()
    airflow_image_repositories: tuple[str, ...] = ()
    dags_repositories: tuple[str, ...] = ()
    allowed_git_sources: tuple[str, ...] = ()
    allowed_helm_repositories: tuple[str, ...] = ()
    allowed_oci_repositories: tuple[str, ...] = ()
    # Who may apply the objects that change the whole cluster's trust (checks/cluster_scope.py), by applier.
    powerful_rbac_from: tuple[str, ...] = ()
    admission_control_from: tuple[str, ...] = ()
    api_extensions_from: tuple[str, ...] = ()
    namespaces_from: tuple[str, ...] = ()
    # The problems of the table that do not depend on the cluster (for `findings`).
    problems: tuple[Finding, ...] = ()
    # The table as written, for `changes` (None: no table).
    table: Mapping[str, Any] | None = None

    @classmethod
    def load(cls, repo: Path) -> PolicyConfig:
        """pyproject.toml of `repo`, read and parsed once."""
        try:
            text = (repo / FILE).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            return cls(problems=(_finding("(file)", f"cannot read the policy configuration: {error}"),))
        return cls.parse(text)

    @classmethod
    def parse(cls, text: str) -> PolicyConfig:
        try:
            pyproject = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            return cls(problems=(_finding("(file)", f"cannot read the policy configuration: {error}"),))
        version = _airflow_pin(pyproject)
        table = _get(_get(pyproject, "tool"), "airflow-gitops")
        table = table.get("policies") if isinstance(table, dict) else None
        if not isinstance(table, dict):
            return cls(airflow_version=version, problems=(_finding("(table)", "missing: the policies have no "
                                                                    "configuration, so none of them would know what "
                                                                    "to enforce"),))
        parser = _Parser(table)
        return cls(
            airflow_release=parser.string("airflow-release", "airflow"),
            airflow_version=version,
            cluster_lists={key: parser.cluster_list(key) for key, spec in KEYS.items() if spec.kind == "clusters"},
            allowed_image_registries=parser.strings("allowed-image-registries"),
            airflow_image_repositories=parser.strings("airflow-image-repositories"),
            dags_repositories=parser.strings("dags-repositories"),
            allowed_git_sources=parser.strings("allowed-git-sources"),
            allowed_helm_repositories=parser.strings("allowed-helm-repositories"),
            allowed_oci_repositories=parser.strings("allowed-oci-repositories"),
            powerful_rbac_from=parser.strings("powerful-rbac-from"),
            admission_control_from=parser.strings("admission-control-from"),
            api_extensions_from=parser.strings("api-extensions-from"),
            namespaces_from=parser.strings("namespaces-from"),
            problems=tuple(parser.finish()),
            table=table,
        )

    def cluster_list(self, key: str) -> ClusterList:
        return self.cluster_lists.get(key) or ClusterList(key, valid=False)

    def findings(self, cluster: str, clusters: list[str]) -> list[Finding]:
        """Every problem of the table, for `cluster`: a cluster list must name it or exempt it with a reason."""
        found = list(self.problems)
        if self.table is None:
            return found
        for cluster_list in self.cluster_lists.values():
            if cluster_list.valid:
                found += _cluster_list_findings(cluster_list, cluster, clusters)
        return found

    # --- what the source allowlists allow ---

    def source_url_allowed(self, kind: str, url: str) -> bool:
        """Whether a source URL of `kind` ("git", "helm", "oci") is on its allowlist. Git URLs compare as host/path
        (the SSH and HTTPS spellings of one repository are one source); Helm and OCI URLs as canonical URLs (scheme
        and host lower case, no trailing slash), exactly: a prefix is no match."""
        if url_credentials(url) is not None:
            return False
        if kind == "git":
            return git_url_key(url) in {git_url_key(u) for u in self.allowed_git_sources}
        allowed = self.allowed_helm_repositories if kind == "helm" else self.allowed_oci_repositories
        return canonical_url(url) in {canonical_url(u) for u in allowed}


SOURCE_ALLOWLISTS = {"git": "allowed-git-sources", "helm": "allowed-helm-repositories",
                     "oci": "allowed-oci-repositories"}


class _Parser:
    """Reads the table key by key; each wrong key is one finding, and reads as its strictest value."""

    def __init__(self, table: dict[str, Any]):
        self.table = table
        self.problems: list[Finding] = []
        exemptions = table.get("exemptions", {})
        if not isinstance(exemptions, dict):
            self.error("exemptions", "must be a table of {cluster = \"reason\"} tables")
            exemptions = {}
        self.exemptions = exemptions

    def error(self, where: str, message: str) -> None:
        self.problems.append(_finding(where, message))

    def present(self, key: str) -> Any:
        value = self.table.get(key)
        if value is None:
            self.error(key, f"missing ({KEYS[key].help})")
        return value

    def string(self, key: str, default: str) -> str:
        value = self.present(key)
        if value is None:
            return default
        if not (isinstance(value, str) and value):
            self.error(key, "must be a non-empty string")
            return default
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        spec = KEYS[key]
        value = self.present(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.error(key, "must be a list of non-empty strings")
            return ()
        if spec.kind == "list" and not value:
            self.error(key, f"is empty: that would allow nothing or turn the check off ({spec.help})")
        good = []
        for position, entry in enumerate(value):
            problem = _entry_problem(spec.entry, entry)
            if problem:
                self.error(f"{key}[{position}]", f"{entry!r} {problem}")
            else:
                good.append(entry)
        return tuple(good)

    def cluster_list(self, key: str) -> ClusterList:
        value = self.present(key)
        exempt = self.exemptions.get(key) or {}
        if not isinstance(exempt, dict):
            self.error(f"exemptions.{key}", "must be a table of {cluster = \"reason\"}")
            return ClusterList(key, valid=False)
        if value is None:
            return ClusterList(key, valid=False)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.error(key, "must be a list of non-empty strings")
            return ClusterList(key, valid=False)
        valid = True
        for name, reason in exempt.items():
            if name in value:
                self.error(f"exemptions.{key}.{name}", f"the cluster is both in {key} and exempted from it")
                valid = False
            if not isinstance(reason, str) or len(reason.strip()) < MIN_REASON_LENGTH:
                self.error(f"exemptions.{key}.{name}", f"needs a reason a reviewer can judge (at least "
                                                       f"{MIN_REASON_LENGTH} characters)")
                valid = False
        return ClusterList(key, tuple(value), {str(k): str(v) for k, v in exempt.items()}, valid)

    def finish(self) -> list[Finding]:
        for key in self.table:
            if key not in KEYS:
                self.error(key, f"unknown key (known: {', '.join(KEYS)})")
        for key in self.exemptions:
            if KEYS.get(key, Key("", "")).kind != "clusters":
                self.error(f"exemptions.{key}", "only cluster lists can have exemptions "
                                                f"({', '.join(k for k, s in KEYS.items() if s.kind == 'clusters')})")
        return self.problems


def _cluster_list_findings(cluster_list: ClusterList, cluster: str, clusters: list[str]) -> list[Finding]:
    key = cluster_list.key
    found = [_finding(key, f"names {name!r}, which is no folder under clusters/")
             for name in cluster_list.listed if name not in clusters]
    found += [_finding(f"exemptions.{key}.{name}", "exempts a cluster that is no folder under clusters/")
              for name in cluster_list.exempt if name not in clusters]
    if cluster not in cluster_list.listed and cluster not in cluster_list.exempt:
        found.append(_finding(key, f"leaves out cluster {cluster!r} without a reason: list it, or write why under "
                                   f"[tool.airflow-gitops.policies.exemptions.{key}]"))
    return found


def _finding(where: str, message: str) -> Finding:
    return Finding(ERROR, FILE, TABLE, where, message, CHECK)


def _get(node: Any, key: str) -> Any:
    return node.get(key) if isinstance(node, dict) else None


def _airflow_pin(pyproject: dict[str, Any]) -> str | None:
    """The apache-airflow pin. It lives in the `dags` extra (the tool itself needs no Airflow): look in every
    requirement list."""
    project = _get(pyproject, "project") or {}
    optional = _get(project, "optional-dependencies")
    groups = [_get(project, "dependencies") or [], *(optional.values() if isinstance(optional, dict) else [])]
    return next((d.split("==", 1)[1].strip() for group in groups if isinstance(group, list) for d in group
                 if isinstance(d, str) and d.replace(" ", "").startswith("apache-airflow==")), None)


# --- changes of the table, for the reviewer ------------------------------------------------------------------------

def changes(base: PolicyConfig, head: PolicyConfig) -> list[Finding]:
    """Every key of the policy table that differs between two checkouts, as findings a reviewer must see."""
    if base.table is None and head.table is None:
        return []
    if base.table is None or head.table is None:
        what = "added" if base.table is None else "removed"
        return [Finding(ERROR, FILE, TABLE, "(table)", f"POLICY CHANGE: the policy table is {what}", "policy-change"),
                *head.problems]
    return [Finding(ERROR, FILE, TABLE, ".".join(path), f"POLICY CHANGE: {_show(old)} -> {_show(new)}",
                    "policy-change")
            for key in sorted(set(base.table) | set(head.table))
            for path, old, new in _differences([key], base.table.get(key), head.table.get(key))]


def policy_config_changes(base_repo: Path, head_repo: Path) -> list[Finding]:
    return changes(PolicyConfig.load(base_repo), PolicyConfig.load(head_repo))


def _differences(path: list[str], old: Any, new: Any) -> Iterator[tuple[list[str], Any, Any]]:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            yield from _differences([*path, key], old.get(key), new.get(key))
    elif old != new:
        yield path, old, new


def _show(value: Any) -> str:
    return "(absent)" if value is None else json.dumps(value)
