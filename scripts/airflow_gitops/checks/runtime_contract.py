"""The Airflow contract where each pod receives it, so that no route to a setting can undo a guarantee.

policies.airflow_contract checks the chart values. A setting can also reach a pod through `env`, `extraEnv`, a
component's `env`, `dags.gitSync.env`, `config:` (airflow.cfg), Airflow's own `AIRFLOW__SECTION__KEY` variables,
git-sync's variables in both spellings and its flags, envFrom, `$(VAR)` references, and postRenderers patches and
image overrides. So this module reads every container of the rendered output (Git objects, chart objects, the
KubernetesExecutor's worker pod template) as the kubelet and the program in it read their settings
(pod_environment), and requires:

- **executor**: every container running an Airflow image reads `[core] executor` = KubernetesExecutor, from
  AIRFLOW__CORE__EXECUTOR or else the airflow.cfg it mounts (AIRFLOW_CONFIG, else $AIRFLOW_HOME/airflow.cfg);
  `_CMD`/`_SECRET` variants and values that come from a Secret cannot be checked and are refused;
- **worker pods**: `[kubernetes_executor] worker_container_repository`/`worker_container_tag`, when set, are the
  tested Airflow image, and `pod_template_file` is a pod template in a ConfigMap of the desired state (whose images
  the image checks read);
- **git-sync**: every git-sync container clones this cluster's repository at the branch Flux follows, as git-sync
  v4 reads its settings (flags, then GIT_SYNC_*, then GITSYNC_*; --branch/--rev back-compat), and runs its own
  entrypoint;
- **tested images**: a container of any object (not only the Airflow release's) that runs an Airflow image runs the
  tested Airflow.

A value the chart values already carry is judged there (policies.airflow_contract, dags-source), with the values
file's path; this module reports a value that took another route."""

from __future__ import annotations

import configparser
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from airflow_gitops.checks import policies, supply_chain
from airflow_gitops.checks.pod_environment import (
    ConfigMapLookup,
    Environment,
    Value,
    command_line,
    configmap_lookup,
    environment,
    mounted_file,
)
from airflow_gitops.model import ERROR, Finding, ReleaseRender, Resource, field_path, mapping
from airflow_gitops.source.api import GitRepository

CHECK = "airflow-contract"
EXECUTOR = "KubernetesExecutor"
# The official image's `ENV AIRFLOW_HOME` (apache/airflow Dockerfile); it holds no airflow.cfg, so without a mounted
# one Airflow writes its defaults (executor LocalExecutor in Airflow 3).
IMAGE_AIRFLOW_HOME = "/opt/airflow"
# The chart's log groomer sidecars run a script of the image, not Airflow: they read no Airflow setting.
LOG_GROOMER_ARGS = ["bash", "/clean-logs"]
# git-sync's image runs /git-sync (Dockerfile.in ENTRYPOINT); a container that replaces it runs something else.
GIT_SYNC_ENTRYPOINT = ["/git-sync"]
# The file the chart mounts the worker pod template at; pod_template_resources reads this key of a ConfigMap.
POD_TEMPLATE_KEY = policies.POD_TEMPLATE_KEY


@dataclass(frozen=True)
class Received:
    """A container, with what it receives."""

    resource: Resource
    path: list[Any]
    container: dict[str, Any]
    pod: dict[str, Any]
    namespace: str
    env: Environment

    @property
    def where(self) -> str:
        return field_path(self.path)

    @property
    def name(self) -> str:
        return str(self.container.get("name") or "")

    def label(self) -> str:
        return f"{self.resource.ref} container {self.name}"


@dataclass(frozen=True)
class Contract:
    """What the rendered cluster must give its pods, and what the values already judge."""

    airflow_repositories: list[str]
    airflow_version: str | None
    dags_repositories: list[str]
    # The repository and branch git-sync must follow: cluster-vars, and the cluster's own GitRepository when it is in
    # Git (what Flux syncs); each (value, where it comes from).
    repositories: list[tuple[str, str]]
    branches: list[tuple[str, str]]
    values: dict[str, Any]


def contract_of(release: ReleaseRender | None, git_resources: list[Resource], variables: dict[str, str],
                airflow_repositories: list[str], airflow_version: str | None,
                dags_repositories: list[str]) -> Contract:
    repositories, branches = [], []
    if variables.get("git_url"):
        repositories.append((variables["git_url"], "cluster-vars git_url"))
    if variables.get("git_branch"):
        branches.append((variables["git_branch"], "cluster-vars git_branch"))
    source = next((r for r in git_resources if r.kind == "GitRepository" and r.name == "flux-system"
                   and r.namespace == "flux-system"), None)
    if source is not None:
        parsed = GitRepository.parse(source)
        if parsed.url:
            repositories.append((parsed.url, f"GitRepository flux-system/flux-system spec.url ({source.source_file})"))
        if parsed.ref and parsed.ref.branch:
            branches.append((parsed.ref.branch, "GitRepository flux-system/flux-system spec.ref.branch "
                                                f"({source.source_file})"))
    return Contract(airflow_repositories, airflow_version, dags_repositories, repositories, branches,
                    release.values if release is not None and isinstance(release.values, dict) else {})


def received(objects: list[Resource], lookup: ConfigMapLookup, default_namespace: str = "") -> Iterator[Received]:
    """Every container of `objects`, with its environment. A worker pod template names no namespace: its pods run in
    the release's (`default_namespace`), and read that namespace's ConfigMaps."""
    for r in objects:
        namespace = r.namespace or default_namespace
        for path, container in policies.containers(r):
            pod = _pod_spec(r, path)
            yield Received(r, path, container, pod, namespace,
                           environment(container, field_path(path), namespace, lookup))


def _pod_spec(r: Resource, container_path: list[Any]) -> dict[str, Any]:
    node: Any = r.obj
    for part in container_path[:-2]:
        node = node[part] if isinstance(node, (dict, list)) else {}
    return mapping(node)


def check(release: ReleaseRender | None, checked: list[Resource], contract: Contract) -> list[Finding]:
    """Every container of `checked` (Git objects, chart objects, worker pod templates)."""
    lookup = configmap_lookup(checked)
    release_applier = f"HelmRelease {release.helmrelease.namespace}/{release.helmrelease.name}" if release else None
    problems: list[tuple[Received, str, str]] = []  # (container, field, message)
    containers = list(received(checked, lookup, release.namespace if release is not None else ""))
    templates = pod_template_paths(containers, lookup)
    for item in containers:
        if is_git_sync(item.container):
            problems += git_sync_problems(item, contract)
        elif is_airflow(item.container, contract.airflow_repositories):
            problems += airflow_problems(item, lookup, contract, templates)
            if item.resource.applied_by != release_applier:  # supply_chain.airflow_images reads the release's
                problems += image_problems(item, contract)
    return _grouped(problems)


def pod_template_paths(containers: list[Received], lookup: ConfigMapLookup) -> set[str]:
    """The paths at which some container mounts a worker pod template from a ConfigMap of the desired state (the
    templates policies.pod_template_resources reads and the image checks judge)."""
    found = set()
    for item in containers:
        for mount in item.container.get("volumeMounts") or []:
            path = str(mapping(mount).get("mountPath") or "")
            file = mounted_file(path, item.container, item.pod, item.namespace, lookup, item.where) if path else None
            if file is not None and file.known and file.source.endswith(f"key {POD_TEMPLATE_KEY}"):
                found.add(path)
    return found


def _grouped(problems: list[tuple[Received, str, str]]) -> list[Finding]:
    """One finding per message: the first container that receives it, and how many others do."""
    by_message: dict[str, list[tuple[Received, str]]] = {}
    for item, where, message in problems:
        by_message.setdefault(message, []).append((item, where))
    findings = []
    for message, found in by_message.items():
        item, where = found[0]
        others = sorted({other.label() for other, _ in found[1:]} - {item.label()})
        also = f" (also {len(others)} other container(s): {', '.join(others[:3])}{', ...' if len(others) > 3 else ''})" \
            if others else ""
        findings.append(Finding(ERROR, item.resource.location, item.resource.ref, where,
                                f"container {item.name}: {message}{also}", CHECK))
    return findings


# --- which program a container runs -------------------------------------------------------------------

def is_git_sync(container: dict[str, Any]) -> bool:
    repository = supply_chain.split_image(str(container.get("image") or ""))[0]
    return repository.rsplit("/", 1)[-1] == "git-sync" or str(container.get("name") or "").startswith("git-sync")


def is_airflow(container: dict[str, Any], repositories: list[str]) -> bool:
    repository = supply_chain.split_image(str(container.get("image") or ""))[0]
    return supply_chain.in_prefixes(repository, repositories) or repository.endswith("/airflow") or bool(
        supply_chain.AIRFLOW_CONTAINERS.match(str(container.get("name") or "")))


# --- Airflow: its config as Airflow reads it ------------------------------------------------------------

def airflow_option(item: Received, lookup: ConfigMapLookup, section: str, key: str) -> Value | None:
    """[section] key as Airflow reads it in this container (airflow/configuration.py get): the environment variable
    AIRFLOW__SECTION__KEY, else the config file. `_CMD`/`_SECRET` variants and `<key>_cmd`/`<key>_secret` in the
    file come back unknown: what they yield is not in Git."""
    name = f"AIRFLOW__{section.upper()}__{key.upper()}"
    value = item.env.get(name)
    if value is not None:
        return value
    for suffix in ("_CMD", "_SECRET"):
        indirect = item.env.get(name + suffix)
        if indirect is not None:
            return Value(None, indirect.where, f"{name}{suffix} (a command or a secrets backend)")
    config = config_file(item, lookup)
    if config is None:
        return None
    if config.text is None:
        return config
    options = _config_options(config.text)
    if isinstance(options, str):
        return Value(None, config.where, f"{config.source} (unreadable: {options})")
    for option in (f"{key}_cmd", f"{key}_secret"):
        if (section, option) in options:
            return Value(None, config.where, f"{config.source} [{section}] {option}")
    if (section, key) in options:
        return Value(options[(section, key)], config.where, f"{config.source} [{section}] {key}")
    return None


@lru_cache(maxsize=64)
def _config_options(text: str) -> dict[tuple[str, str], str] | str:
    """{(section, option): value} of an airflow.cfg, read as Airflow's ConfigParser reads it (no interpolation, the
    last of a repeated option winning); the error when it is unreadable. Every Airflow container mounts the same
    file: it is parsed once."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error as error:
        return str(error).splitlines()[0]
    return {(section, option): value.strip() for section in parser.sections()
            for option, value in parser.items(section, raw=True)}


def config_file(item: Received, lookup: ConfigMapLookup) -> Value | None:
    """The airflow.cfg this container reads: AIRFLOW_CONFIG, else $AIRFLOW_HOME/airflow.cfg; None when no mount
    provides it (the image has none: Airflow's defaults apply)."""
    path = item.env.get("AIRFLOW_CONFIG")
    if path is None:
        home = item.env.get("AIRFLOW_HOME") or Value(IMAGE_AIRFLOW_HOME, "(image)", "the image's AIRFLOW_HOME")
        if home.text is None:
            return Value(None, home.where, f"AIRFLOW_HOME, from {home.source}")
        return mounted_file(f"{home.text}/airflow.cfg", item.container, item.pod, item.namespace, lookup,
                            item.where)
    if path.text is None:
        return Value(None, path.where, f"AIRFLOW_CONFIG, from {path.source}")
    return mounted_file(path.text, item.container, item.pod, item.namespace, lookup, item.where)


def airflow_problems(item: Received, lookup: ConfigMapLookup, contract: Contract, templates: set[str]
                     ) -> list[tuple[Received, str, str]]:
    if [str(a) for a in item.container.get("args") or []] == LOG_GROOMER_ARGS and not item.container.get("command"):
        return []
    problems = []
    executor = airflow_option(item, lookup, "core", "executor")
    if executor is None:
        problems.append((item, item.where, f"reads no [core] executor (no AIRFLOW__CORE__EXECUTOR, no airflow.cfg "
                                           f"that sets it): Airflow's default is not {EXECUTOR}"))
    elif executor.text is None:
        problems.append((item, executor.where, f"[core] executor comes from {executor.source}, which cannot be "
                                               f"checked: it must be the literal {EXECUTOR}"))
    elif executor.text != EXECUTOR and executor.text != contract.values.get("executor"):
        problems.append((item, executor.where, f"[core] executor is {executor.text!r} (from {executor.source}): "
                                               f"must be {EXECUTOR}"))
    problems += _worker_image_problems(item, lookup, contract, templates)
    return problems


def _worker_image_problems(item: Received, lookup: ConfigMapLookup, contract: Contract, templates: set[str]
                           ) -> list[tuple[Received, str, str]]:
    """The KubernetesExecutor's worker pods: the image it gives them, and the template it builds them from, which must
    be one a container mounts from a ConfigMap of the desired state (`templates`), and that ConfigMap where this
    container mounts something at that path."""
    problems = []
    repository = airflow_option(item, lookup, "kubernetes_executor", "worker_container_repository")
    tag = airflow_option(item, lookup, "kubernetes_executor", "worker_container_tag")
    for value, what in ((repository, "worker_container_repository"), (tag, "worker_container_tag")):
        if value is not None and value.text is None:
            problems.append((item, value.where, f"[kubernetes_executor] {what} comes from {value.source}, which "
                                                "cannot be checked: worker pods would run an unknown image"))
    if repository is not None and repository.text and not supply_chain.in_prefixes(
            supply_chain.split_image(repository.text + ":x")[0], contract.airflow_repositories):
        problems.append((item, repository.where, f"worker pods run {repository.text!r} (from {repository.source}), "
                                                 f"not an image of {', '.join(contract.airflow_repositories)}"))
    if tag is not None and tag.text and contract.airflow_version and not supply_chain._is_version_tag(
            tag.text, contract.airflow_version):
        problems.append((item, tag.where, f"worker pods run tag {tag.text!r} (from {tag.source}), not the tested "
                                          f"Airflow {contract.airflow_version}"))
    template = airflow_option(item, lookup, "kubernetes_executor", "pod_template_file")
    if template is not None:
        file = None if template.text is None else mounted_file(
            template.text, item.container, item.pod, item.namespace, lookup, item.where)
        if template.text is None or template.text not in templates or (
                file is not None and not (file.known and file.source.endswith(f"key {POD_TEMPLATE_KEY}"))):
            shown = template.source if template.text is None else f"{template.text!r} (from {template.source})"
            problems.append((item, template.where, f"[kubernetes_executor] pod_template_file is {shown}, not a "
                                                   f"{POD_TEMPLATE_KEY} key of a ConfigMap in Git or the chart: the "
                                                   "worker pods' images could not be checked"))
    return problems


def image_problems(item: Received, contract: Contract) -> list[tuple[Received, str, str]]:
    """An Airflow image outside the Airflow release (supply_chain.airflow_images reads the release's)."""
    image = str(item.container.get("image") or "")
    repository, tag, _ = supply_chain.split_image(image)
    if not supply_chain.in_prefixes(repository, contract.airflow_repositories):
        return [(item, f"{item.where}.image", f"runs Airflow from {image!r}, not an image of "
                                              f"{', '.join(contract.airflow_repositories)}")]
    if contract.airflow_version and not supply_chain._is_version_tag(tag or "", contract.airflow_version):
        return [(item, f"{item.where}.image", f"runs {image!r}, not the tested Airflow {contract.airflow_version}")]
    return []


# --- git-sync: its settings as git-sync v4 reads them ---------------------------------------------------

def git_sync_setting(item: Received, flag: str, *variables: str, default: str | None = None) -> Value | None:
    """A git-sync v4 setting (kubernetes/git-sync main.go, env.go): the command-line flag when given (pflag: the last
    `--flag=value` or `--flag value` before `--`), else its variables: envString(def, key, alts...) reads the
    current name, then each deprecated one, and the last one set wins, so GIT_SYNC_REPO overrides GITSYNC_REPO."""
    _, args = command_line(item.container, item.env)
    value = None
    for index, arg in enumerate(args):
        if arg.text == "--":
            break
        if arg.text is None:
            if value is None:
                value = Value(None, arg.where, f"an argument from {arg.source}")
            continue
        if arg.text.startswith(f"--{flag}="):
            value = Value(arg.text.split("=", 1)[1], arg.where, f"flag --{flag}")
        elif arg.text == f"--{flag}" and index + 1 < len(args):
            following = args[index + 1]
            value = Value(following.text, following.where, f"flag --{flag}")
    if value is not None:
        return value
    found = None
    for name in variables:
        got = item.env.get(name)
        if got is not None:
            found = Value(got.text, got.where, f"{name}" + (f", from {got.source}" if got.source != "a literal" else ""))
    return found if found is not None else (Value(default, item.where, "git-sync's default") if default else None)


def git_sync_ref(item: Received) -> Value | None:
    """git-sync v4's ref: --ref/GITSYNC_REF (default HEAD), replaced by the v3 --branch (GIT_SYNC_BRANCH) when --rev
    (GIT_SYNC_REV) is empty or HEAD, or by --rev alone (main.go "setting --ref from deprecated --branch")."""
    ref = git_sync_setting(item, "ref", "GITSYNC_REF", default="HEAD")
    branch = git_sync_setting(item, "branch", "GIT_SYNC_BRANCH")
    rev = git_sync_setting(item, "rev", "GIT_SYNC_REV")
    if branch is not None and branch.text != "" and (rev is None or rev.text in ("", "HEAD")):
        return branch
    if rev is not None and rev.text != "" and (branch is None or branch.text == ""):
        return rev
    return ref


def git_sync_problems(item: Received, contract: Contract) -> list[tuple[Received, str, str]]:
    command = [str(c) for c in item.container.get("command") or []]
    if command and command != GIT_SYNC_ENTRYPOINT:
        return [(item, f"{item.where}.command", f"replaces git-sync's entrypoint with {command!r}: what it clones "
                                                "cannot be checked")]
    problems = []
    repo = git_sync_setting(item, "repo", "GITSYNC_REPO", "GIT_SYNC_REPO")
    gitsync_values = mapping(mapping(contract.values.get("dags")).get("gitSync"))
    if repo is None or repo.text is None:
        problems.append((item, repo.where if repo else item.where, "git-sync's repository " + (
            f"comes from {repo.source}, which cannot be checked" if repo else "is not set")))
    elif repo.text != gitsync_values.get("repo"):  # a value the values carry is the dags-source check's
        normalised = supply_chain.normalise_git_url(repo.text)
        reasons = [] if normalised in {supply_chain.normalise_git_url(url) for url in contract.dags_repositories} \
            else ["not one of dags-repositories in pyproject.toml"]
        reasons += [f"not {where} {url!r}" for url, where in contract.repositories
                    if supply_chain.normalise_git_url(url) != normalised]
        if reasons:
            problems.append((item, repo.where, f"git-sync clones {repo.text!r} (from {repo.source}): "
                                               f"{'; '.join(reasons)}"))
    ref = git_sync_ref(item)
    expected = {branch for branch, _ in contract.branches}
    if ref is None or ref.text is None:
        problems.append((item, ref.where if ref else item.where, f"git-sync's ref comes from "
                                                                  f"{ref.source if ref else '?'}, which cannot be checked"))
    elif expected and ref.text not in expected and ref.text != gitsync_values.get("ref"):
        sources = ", ".join(f"{where}: {branch!r}" for branch, where in contract.branches)
        problems.append((item, ref.where, f"git-sync checks out {ref.text!r} (from {ref.source}), not the branch Flux "
                                          f"follows ({sources})"))
    return problems


def values_branch(release: ReleaseRender, variables: dict[str, str], values_file_of) -> list[Finding]:
    """dags.gitSync.branch (and so ref, which must equal it) is the branch Flux follows (cluster-vars git_branch)."""
    branch = mapping(mapping(mapping(release.values).get("dags")).get("gitSync")).get("branch")
    wanted = variables.get("git_branch")
    if not wanted or not branch or branch == wanted or not re.fullmatch(r"[^$]+", str(branch)):
        return []
    path = ["dags", "gitSync", "branch"]
    return [Finding(ERROR, values_file_of(path), f"values of {release.helmrelease.ref}", field_path(path),
                    f"must be the branch Flux follows (cluster-vars git_branch {wanted!r}); got {branch!r}", CHECK)]
