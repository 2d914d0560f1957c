"""Where code, charts and images come from: DAG repository, image registries and tags, Airflow's own images, chart
pins through every way a chart can be referenced, GitHub Actions pinned to commits, and what `flux bootstrap` owns."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from airflow_gitops.checks import policies
from airflow_gitops.helm_controller.api import HelmRelease
from airflow_gitops.model import ERROR, Finding, ReleaseRender, Resource, field_path, mapping, sequence
from airflow_gitops.source.api import GitRepository, OCIRepository
from airflow_gitops.source.bounds import load_yaml_all

# An exact image tag: a version with at least major.minor, optionally a suffix (3.3.2-python3.12, v4.4.2, 17.6).
EXACT_TAG = re.compile(r"^v?\d+(\.\d+)+([-_+.][0-9A-Za-z][0-9A-Za-z._-]*)?$")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
FLOATING_TAGS = {"latest", "nightly", "main", "master", "edge", "dev", "stable", "head", "canary", "snapshot"}
# The chart's containers that run Airflow itself (chart 1.x names); sidecars (git-sync, statsd) are not Airflow.
AIRFLOW_CONTAINERS = re.compile(r"^(api-server|webserver|scheduler|dag-processor|triggerer|worker|base|create-user|"
                                r"run-airflow-migrations|wait-for-airflow-migrations|airflow-cleanup-pods|"
                                r"database-cleanup|.*-log-groomer)$")
# Chart values of Airflow's own image: repository key, tag key.
AIRFLOW_IMAGE_VALUES = [
    (["defaultAirflowRepository"], ["defaultAirflowTag"]),
    (["images", "airflow", "repository"], ["images", "airflow", "tag"]),
    (["images", "pod_template", "repository"], ["images", "pod_template", "tag"]),
]



# --- images -----------------------------------------------------------------------------------------

def split_image(image: str) -> tuple[str, str | None, str | None]:
    """(normalised repository with registry, tag, digest): `apache/airflow:3` -> ("docker.io/apache/airflow", "3", None)."""
    digest = None
    if "@" in image:
        image, digest = image.split("@", 1)
    tag = None
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        image, tag = image.rsplit(":", 1)
    parts = image.split("/")
    if len(parts) == 1 or not ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = ["docker.io", *(parts if len(parts) > 1 else ["library", *parts])]
    return "/".join(parts).lower(), tag, digest


def in_prefixes(repository: str, prefixes: list[str]) -> bool:
    normalised = [split_image(p.rstrip("/") + ":x")[0] if "/" in p.rstrip("/") else p.rstrip("/") for p in prefixes]
    return any(repository == p or repository.startswith(p + "/") for p in normalised)


def tag_problem(image: str) -> str | None:
    repository, tag, digest = split_image(image)
    if digest is not None:
        return None if DIGEST.match("@" + digest) else f"image {image!r}: digest is not sha256:<64 hex>"
    if tag is None:
        return f"image {image!r} has no tag: it means :latest, which a revert cannot roll back"
    if tag.lower() in FLOATING_TAGS or not EXACT_TAG.match(tag):
        return f"image {image!r}: tag {tag!r} is not an exact version (e.g. 1.2.3) or a digest"
    return None


def registry_problem(image: str, registries: list[str]) -> str | None:
    if in_prefixes(split_image(image)[0], registries):
        return None
    return (f"image {image!r} is not from an allowed registry ({TOML_KEY_REGISTRIES} in pyproject.toml: "
            f"{', '.join(registries)})")


def image_problems(image: str, registries: list[str]) -> list[str]:
    if not image:
        return ["no image"]
    return [p for p in (tag_problem(image), registry_problem(image, registries)) if p]


TOML_KEY_REGISTRIES = "allowed-image-registries"


def rendered_images(resources: list[Resource], registries: list[str]) -> list[Finding]:
    """Every container image (and CNPG imageName) of every object that renders: exact tag or digest, allowed registry.
    The existing `image-tag` policy already reports a missing or :latest tag; this reports everything else."""
    findings = []
    for r in resources:
        for path, image in policies.images(r):
            # A missing or :latest tag is already the `image-tag` policy's finding.
            problems = [registry_problem(image, registries)]
            if not policies.image_problem(image):
                problems.append(tag_problem(image))
            findings += [policies.finding(r, path, p, "image-source") for p in problems if p]
    return findings


def airflow_images(release: ReleaseRender, repositories: list[str], version: str | None, values_file_of
                   ) -> list[Finding]:
    """Airflow's own images (values and rendered containers, the worker pod template and jobs included) are the tested
    Airflow (pyproject's apache-airflow pin) from an allowed Airflow repository."""
    findings = []
    ref = f"values of {release.helmrelease.ref}"

    def get(path: list[str]) -> Any:
        node: Any = release.values
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        return node

    for repo_path, tag_path in AIRFLOW_IMAGE_VALUES:
        repository, tag = get(repo_path), get(tag_path)
        if repository not in (None, "") and not in_prefixes(split_image(str(repository) + ":x")[0], repositories):
            findings.append(Finding(ERROR, values_file_of(repo_path), ref, field_path(repo_path),
                                    f"{repository!r} is not an Airflow repository allowed by airflow-image-repositories "
                                    f"in pyproject.toml ({', '.join(repositories)})", "airflow-image"))
        digest_path = [*repo_path[:-1], "digest"]
        if len(repo_path) > 1 and get(digest_path):
            findings.append(Finding(ERROR, values_file_of(digest_path), ref, field_path(digest_path),
                                    "a digest replaces the tag, and nothing here can tell which Airflow it is: use the "
                                    f"tag of the tested Airflow {version}", "airflow-image"))
        if tag not in (None, "") and version and not _is_version_tag(str(tag), version):
            findings.append(Finding(ERROR, values_file_of(tag_path), ref, field_path(tag_path),
                                    f"tag {tag!r} is not the tested Airflow {version} (pyproject.toml apache-airflow pin)",
                                    "airflow-image"))
    objects = [*release.objects, *policies.pod_template_resources(release.objects)]
    for r in objects:
        for path, container in policies.containers(r):
            image = str(container.get("image") or "")
            repository, tag, _ = split_image(image)
            is_airflow = in_prefixes(repository, repositories) or repository.endswith("/airflow")
            if AIRFLOW_CONTAINERS.match(str(container.get("name") or "")) or is_airflow:
                if not in_prefixes(repository, repositories):
                    findings.append(policies.finding(r, [*path, "image"], f"Airflow container runs {image!r}, not an "
                                                     f"image of {', '.join(repositories)}", "airflow-image"))
                elif version and not _is_version_tag(tag or "", version):
                    findings.append(policies.finding(r, [*path, "image"], f"image {image!r} is not the tested Airflow "
                                                     f"{version} (pyproject.toml apache-airflow pin)", "airflow-image"))
    return findings


def _is_version_tag(tag: str, version: str) -> bool:
    # The official image also publishes <version>-python3.X of the same Airflow.
    return tag == version or re.fullmatch(re.escape(version) + r"-python3\.\d+", tag) is not None


def values_images(release: ReleaseRender, registries: list[str], values_file_of) -> list[Finding]:
    """Image values of any chart (`images.*` of Airflow's, `image:` of most), checked even when the chart cannot render
    here (CI is offline): every `{repository, tag|digest}` mapping. A missing tag is the chart's default, which the
    exact chart version pins; a tag that is set must be exact, and the registry allowed."""
    findings = []
    for path, spec in _mappings(release.values, []):
        repository = spec.get("repository")
        if not isinstance(repository, str) or not repository or "/" not in repository and "registry" not in spec:
            continue
        if isinstance(spec.get("registry"), str) and spec["registry"]:
            repository = f"{spec['registry'].rstrip('/')}/{repository}"
        tag, digest = spec.get("tag"), spec.get("digest")
        image = repository + (f"@{digest}" if digest else f":{tag}" if tag not in (None, "") else "")
        problems = [registry_problem(image, registries)]
        if digest or tag not in (None, ""):
            problems.append(tag_problem(image))
        for problem in filter(None, problems):
            findings.append(Finding(ERROR, values_file_of(path), f"values of {release.helmrelease.ref}",
                                    field_path(path), problem, "image-source"))
    return findings


def _mappings(node: Any, path: list[Any]) -> Iterator[tuple[list[Any], dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _mappings(value, [*path, key])
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _mappings(value, [*path, index])


def post_renderer_images(git_resources: list[Resource], registries: list[str]) -> list[Finding]:
    """helm-controller's postRenderers kustomize `images` rewrite chart images after rendering."""
    findings = []
    for r in git_resources:
        if r.kind != "HelmRelease":
            continue
        for override in HelmRelease.parse(r).post_renderer_images:
            for problem in image_problems(override.image, registries):
                findings.append(policies.finding(r, override.where, f"postRenderers image override: {problem}",
                                                 "image-source"))
    return findings


# --- where DAGs come from ---------------------------------------------------------------------------

def normalise_git_url(url: str) -> str:
    """`git@github.com:o/r.git`, `ssh://git@github.com/o/r`, `https://github.com/o/r.git` -> `github.com/o/r`."""
    text = url.strip()
    match = re.match(r"^[a-z+]+://(?:[^@/]*@)?([^/:]+)(?::\d+)?/(.*)$", text, re.I) or re.match(
        r"^(?:[^@/]+@)?([^/:]+):(?!//)(.*)$", text)
    if not match:
        return text
    host, path = match.group(1).lower(), match.group(2).strip("/")
    return f"{host}/{path.removesuffix('.git')}"


def dags_repository(release: ReleaseRender, state_variables: dict[str, str], git_resources: list[Resource],
                    allowed: list[str], values_file_of) -> list[Finding]:
    """git-sync may clone only this repository: the URL of the cluster's GitRepository flux-system when bootstrap wrote
    it, the cluster's git_url, and one of the dags-repositories in pyproject.toml (owned by CODEOWNERS).

    Why all three: gotk-sync.yaml is empty until `flux bootstrap` (eks) or absent (kind-up makes the source on the
    cluster), so it cannot be the only reference; `git_url` is in cluster-vars, which the same pull request can change,
    so it cannot be either. The list in the policy table is the reference a reviewer must approve, and `diff` shows
    any change of it. URLs compare as host/path, so the SSH and HTTPS spellings of one repository are equal."""
    gitsync = mapping(mapping(mapping(release.values).get("dags")).get("gitSync"))
    if not gitsync.get("enabled"):
        return []
    repo = str(gitsync.get("repo") or "")
    path = ["dags", "gitSync", "repo"]
    where = (values_file_of(path), f"values of {release.helmrelease.ref}", field_path(path))
    findings = []
    if normalise_git_url(repo) not in {normalise_git_url(u) for u in allowed}:
        findings.append(Finding(ERROR, *where, f"git-sync would take DAGs from {repo!r}, which is not one of "
                                f"dags-repositories in pyproject.toml ({', '.join(allowed)})", "dags-source"))
    git_url = state_variables.get("git_url")
    if git_url and normalise_git_url(repo) != normalise_git_url(git_url):
        findings.append(Finding(ERROR, *where, f"git-sync would take DAGs from {repo!r}, not from this cluster's "
                                f"repository (cluster-vars git_url {git_url!r})", "dags-source"))
    source = next((r for r in git_resources if r.kind == "GitRepository" and r.name == "flux-system"
                   and r.namespace == "flux-system"), None)
    url = GitRepository.parse(source).url if source else ""
    if source is not None and url and normalise_git_url(repo) != normalise_git_url(url):
        findings.append(Finding(ERROR, *where, f"git-sync would take DAGs from {repo!r}, not from the repository Flux "
                                f"syncs ({source.source_file}: GitRepository flux-system/flux-system spec.url {url!r})",
                                "dags-source"))
    return findings


# --- chart pins through every reference -------------------------------------------------------------

def chart_pins(git_resources: list[Resource]) -> list[Finding]:
    """Beyond HelmRelease spec.chart.spec.version (policies.exact_chart_versions): spec.chartRef to an OCIRepository
    (ref.tag exact, or ref.digest; never semver or no ref) or a HelmChart (exact spec.version), and chart sources
    that ignore the version (a GitRepository/Bucket chart source must pin a commit or tag)."""
    findings = []
    by_ref: dict[tuple[str | None, str, str | None], Resource] = {(r.kind, r.namespace, r.name): r for r in git_resources}
    for r in git_resources:
        if r.kind == "OCIRepository":
            findings += _oci_ref(r)
        if r.kind != "HelmRelease":
            continue
        release = HelmRelease.parse(r)
        if (chart_ref := release.chart_ref) is not None:
            namespace = chart_ref.namespace or r.namespace
            if by_ref.get((chart_ref.kind, namespace, chart_ref.name)) is None:
                findings.append(policies.finding(r, "spec.chartRef", f"{chart_ref.kind} {namespace}/{chart_ref.name} "
                                "is not in this cluster's Git state: its version cannot be checked",
                                "exact-chart-version"))
        chart = release.chart
        if chart is not None and chart.source_kind in ("GitRepository", "Bucket"):
            target = by_ref.get((chart.source_kind, chart.source_namespace or r.namespace, chart.source_name))
            # A Bucket has no ref: it cannot be pinned.
            git_ref = GitRepository.parse(target).ref if target is not None and target.kind == "GitRepository" \
                else None
            if not (git_ref and (git_ref.commit or EXACT_TAG.match(git_ref.tag or ""))):
                findings.append(policies.finding(r, "spec.chart.spec.sourceRef", f"chart from {chart.source_kind} "
                                f"{chart.source_name}: spec.chart.spec.version is ignored for this source; pin the "
                                "source to a commit or an exact tag", "exact-chart-version"))
    return findings


def _oci_ref(r: Resource) -> list[Finding]:
    ref = OCIRepository.parse(r).ref
    if ref.digest:
        if not DIGEST.match("@" + ref.digest):
            return [policies.finding(r, "spec.ref.digest", "not sha256:<64 hex>", "exact-chart-version")]
        return []
    if ref.semver:
        return [policies.finding(r, "spec.ref.semver", f"semver range {ref.semver!r} is not an exact pin: a revert "
                                 "is no downgrade; use spec.ref.tag (exact) or spec.ref.digest", "exact-chart-version")]
    tag = ref.tag or ""
    if not policies.EXACT_VERSION.match(tag):
        shown = repr(tag) if tag else "no tag (Flux pulls :latest)"
        return [policies.finding(r, "spec.ref.tag", f"{shown} is not an exact version", "exact-chart-version")]
    return []


# --- GitHub Actions ---------------------------------------------------------------------------------

USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>[^\s#]+)\s*(?:#\s*(?P<comment>.*))?$")
PINNED = re.compile(r"^[^@\s]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"^v?\d+(\.\d+)*\b")


def workflow_files(repo: Path) -> list[Path]:
    github = repo / ".github"
    if not github.is_dir():
        return []
    return sorted(p for p in github.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml")
                  and (p.parent.name == "workflows" or p.name in ("action.yaml", "action.yml")))


def pinned_actions(repo: Path) -> list[Finding]:
    """Every `uses:` is a full commit SHA with its version in a comment. A tag or branch can be moved to other code
    by whoever controls the action's repository; a commit cannot (GitHub's security hardening guide)."""
    findings = []
    for file in workflow_files(repo):
        rel = str(file.relative_to(repo))
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            findings.append(Finding(ERROR, rel, "(workflow)", "(file)", f"unreadable: {error}", "pinned-actions"))
            continue
        job, in_jobs = "(workflow)", False
        for number, line in enumerate(lines, 1):
            if re.match(r"^\S", line):
                in_jobs = line.startswith("jobs:")
            job_match = re.match(r"^  ([A-Za-z0-9_-]+):\s*$", line) if in_jobs else None
            if job_match:
                job = f"job {job_match.group(1)}"
            match = USES.match(line)
            if not match:
                continue
            ref, comment = match.group("ref").strip("'\""), (match.group("comment") or "").strip()
            if ref.startswith(("./", "docker://")):
                if ref.startswith("docker://") and not DIGEST.search(ref):
                    findings.append(Finding(ERROR, rel, job, f"line {number}: uses", f"{ref!r} is not pinned to a "
                                            "sha256 digest", "pinned-actions"))
                continue
            if not PINNED.match(ref):
                findings.append(Finding(ERROR, rel, job, f"line {number}: uses", f"{ref!r} is not pinned to a full "
                                        "40-hex commit SHA (write `uses: owner/repo@<sha> # vX.Y.Z`)", "pinned-actions"))
            elif not VERSION_COMMENT.match(comment):
                findings.append(Finding(ERROR, rel, job, f"line {number}: uses", f"{ref!r} has no version comment "
                                        "(`# vX.Y.Z`): a reviewer cannot tell what the SHA is", "pinned-actions"))
    return findings


# --- what flux bootstrap owns -----------------------------------------------------------------------

BOOTSTRAP_FILES = ("gotk-components.yaml", "gotk-sync.yaml", "kustomization.yaml")
# What `flux bootstrap` / `flux install` writes in gotk-components.yaml (fluxcd/flux2 manifests/), all labelled
# app.kubernetes.io/part-of: flux, namespaced ones in flux-system.
BOOTSTRAP_COMPONENT_KINDS = {"Namespace", "ResourceQuota", "CustomResourceDefinition", "ServiceAccount", "ClusterRole",
                             "ClusterRoleBinding", "Service", "Deployment", "NetworkPolicy"}


def bootstrap_folder(root_resources: list[Resource], cluster: str) -> list[Finding]:
    """clusters/<cluster>/flux-system/ holds only what bootstrap writes: the Flux components (gotk-components.yaml)
    and the GitRepository and Kustomization flux-system (gotk-sync.yaml). policies.cluster_folder exempts this folder;
    everything else that comes from it is an error here."""
    findings = []
    folder = f"clusters/{cluster}/flux-system/"
    for r in root_resources:
        if not r.source_file.startswith(folder) and "/flux-system/" not in r.source_file:
            continue
        file = r.source_file.rsplit("/", 1)[-1]
        meta = mapping(r.obj.get("metadata"))
        namespace = meta.get("namespace")
        if not r.source_file.startswith(folder) or file not in BOOTSTRAP_FILES[:2]:
            findings.append(policies.finding(r, "kind", f"only flux bootstrap's {' and '.join(BOOTSTRAP_FILES[:2])} "
                                             f"may hold objects in {folder}; put this object under infrastructure/ "
                                             "or apps/", "bootstrap-folder"))
        elif file == "gotk-sync.yaml":
            if not (r.kind in ("GitRepository", "Kustomization") and r.name == "flux-system"
                    and namespace == "flux-system" and r.api_version.split("/")[0].endswith(".toolkit.fluxcd.io")):
                findings.append(policies.finding(r, "kind", "gotk-sync.yaml holds only the GitRepository and the "
                                                 "Kustomization flux-system/flux-system that bootstrap writes",
                                                 "bootstrap-folder"))
        else:
            labels = mapping(meta.get("labels"))
            cluster_scoped = r.kind in ("Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding")
            problems = []
            if r.kind not in BOOTSTRAP_COMPONENT_KINDS:
                problems.append(f"kind {r.kind} is not one flux bootstrap writes")
            if labels.get("app.kubernetes.io/part-of") != "flux":
                problems.append("no label app.kubernetes.io/part-of: flux")
            if not cluster_scoped and namespace != "flux-system":
                problems.append(f"namespace {namespace!r} is not flux-system")
            if r.kind == "Namespace" and r.name != "flux-system":
                problems.append("the only Namespace is flux-system")
            if r.kind == "CustomResourceDefinition" and not str(mapping(r.obj.get("spec")).get("group", "")).endswith(
                    ".toolkit.fluxcd.io"):
                problems.append("a CRD outside *.toolkit.fluxcd.io")
            if r.kind == "ClusterRoleBinding" and any(
                    mapping(s).get("namespace") != "flux-system" for s in sequence(r.obj.get("subjects"))):
                problems.append("binds a subject outside flux-system")
            if problems:
                findings.append(policies.finding(r, "kind", "gotk-components.yaml holds only the Flux components "
                                                 f"bootstrap writes: {'; '.join(problems)}", "bootstrap-folder"))
    return findings


def patch_documents(patch: Any) -> list[Any]:
    """The YAML documents of a kustomize patch string (strategic merge or JSON 6902); [] when it does not parse."""
    if not isinstance(patch, str):
        return []
    try:
        return load_yaml_all(patch)
    except yaml.YAMLError:
        return []
