"""`diff <cluster> --base <ref>`: what a change does to the rendered cluster; exit 1 when anything differs."""

from __future__ import annotations

import difflib
import io
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from airflow_gitops.checks.policy_config import policy_config_changes
from airflow_gitops.commands._common import add_cluster_argument, warn
from airflow_gitops.model import ERROR, Finding, RenderError, Resource
from airflow_gitops.pipeline import render_cluster
from airflow_gitops.settings import Settings
from airflow_gitops.source.containment import check_cluster_name, resolve_commit
from airflow_gitops.source.provenance import HASH_SUFFIX
from airflow_gitops.source.repository import cluster_names

MASK = "**masked**"


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (values files in ConfigMaps) as literal blocks, so the diff is line by line."""


def _str(dumper, text):
    style = "|" if "\n" in text and not any(line != line.rstrip() for line in text.splitlines()) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_BlockDumper.add_representer(str, _str)


def configure(parser) -> None:
    add_cluster_argument(parser)
    parser.add_argument("--base", required=True, help="git ref to compare the working tree with, e.g. origin/main")


# Findings that mean the input was refused: the diff of such a tree would hide what it tried.
REFUSED = ("containment", "yaml")


def rendered_objects(settings: Settings, cluster: str, refused: list[Finding] | None = None,
                     side: str = "working tree") -> dict[str, str]:
    """The cluster's objects as diffable text; a cluster folder that does not exist on this side has none."""
    if cluster not in cluster_names(settings.repo):
        return {}
    state = render_cluster(settings, cluster)
    for release in state.releases:
        if release.unrendered_reason:
            warn(f"NOT RENDERED in {settings.repo.name}: {release.helmrelease.ref}: {release.unrendered_reason}")
    for finding in state.findings:
        if finding.severity == ERROR:
            warn(f"{cluster} ({side}): {finding}")
            if refused is not None and finding.check in REFUSED:
                refused.append(finding)
    return {key(r): yaml.dump(masked(r.obj), Dumper=_BlockDumper, sort_keys=True, width=1_000_000)
            for r in state.all_resources}


def key(r: Resource) -> str:
    """Generated ConfigMaps pair up across their hash suffix, so a values change diffs line by line."""
    name = HASH_SUFFIX.sub("-<hash>", r.name) if r.kind in ("ConfigMap", "Secret") else r.name
    return f"{r.kind}/{r.namespace + '/' if r.namespace else ''}{name}"


def masked(obj: dict) -> dict:
    """Secret values never reach a pull-request comment."""
    if obj.get("kind") != "Secret":
        return obj
    copy = dict(obj)
    for field in ("data", "stringData"):
        if isinstance(copy.get(field), dict):
            copy[field] = {k: MASK for k in copy[field]}
    return copy


def checkout(repo: Path, ref: str, into: Path) -> None:
    """The tree of commit-ish `ref` into `into`. `ref` is resolved to a SHA first, so it never reaches git as an
    option (`--output=FILE`); a symlink leading out of the tree is left out, as in the sandbox."""
    sha = resolve_commit(repo, ref)
    archive = subprocess.run(["git", "archive", "--format=tar", sha], cwd=repo, capture_output=True)
    if archive.returncode != 0:
        raise RenderError(f"git archive {ref} ({sha}): {archive.stderr.decode(errors='replace').strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter=_inside_only)


def _inside_only(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
    try:
        return tarfile.data_filter(member, path)
    except tarfile.FilterError:
        return None


@contextmanager
def base_tree(settings: Settings, ref: str) -> Iterator[Settings]:
    """Settings for the tree at `ref`, checked out into a temporary folder: shared by `diff` and `validate --base`."""
    with tempfile.TemporaryDirectory(prefix="airflow-gitops-base-") as tmp:
        checkout(settings.repo, ref, Path(tmp))
        yield Settings(Path(tmp), settings.schemas_dir, settings.local_charts, settings.cache_dir)


def unified(base: dict[str, str], head: dict[str, str], ref: str) -> list[str]:
    lines: list[str] = []
    for name in sorted(set(base) | set(head)):
        old, new = base.get(name, ""), head.get(name, "")
        if old == new:
            continue
        lines.extend(difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True),
            fromfile=f"{ref}/{name}" if old else "/dev/null", tofile=f"working-tree/{name}" if new else "/dev/null"))
    return lines


def version_report(base: Settings, head: Settings, cluster: str, ref: str) -> list[str]:
    """What the change does to Airflow's version and schema, and what rolling it back will take."""
    from airflow_gitops.operate.downgrade import analyse

    if not all((tree.repo / "clusters" / cluster).is_dir() for tree in (base, head)):
        return []
    change = analyse(base, head, cluster, ref)
    return [f"{cluster}: {change.describe('<this commit>')}", *(f"{cluster}: {f}" for f in change.findings)]


def run(args) -> int:
    settings = Settings.from_args(args)
    refused: list[Finding] = []
    try:
        with base_tree(settings, args.base) as base_settings:
            # A cluster added (or removed) by the change exists on one side only: all added (or all removed).
            known = sorted(set(cluster_names(settings.repo)) | set(cluster_names(base_settings.repo)))
            check_cluster_name(args.cluster, known)
            head = rendered_objects(settings, args.cluster, refused)
            base = rendered_objects(base_settings, args.cluster, side=args.base)
            # A weakened policy changes no rendered object: say it first, where the reviewer reads.
            changes = [f"{finding}\n" for finding in policy_config_changes(base_settings.repo, settings.repo)]
            for line in version_report(base_settings, settings, args.cluster, args.base):
                warn(line)
    except RenderError as error:
        warn(f"error: {error}")
        return 2
    if refused:
        warn(f"{args.cluster}: error: the working tree holds input the tool refuses ({len(refused)} finding(s) "
             "above); no diff is shown")
        return 2
    lines = [*changes, *unified(base, head, args.base)]
    sys.stdout.writelines(lines)
    changed = sum(1 for line in lines if line.startswith("+++ "))
    warn(f"{args.cluster}: {changed} object(s) differ from {args.base}"
         + (f"; {len(changes)} POLICY CHANGE(s) in pyproject.toml [tool.airflow-gitops.policies]" if changes else ""))
    return 1 if lines else 0
