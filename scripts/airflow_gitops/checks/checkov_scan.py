"""checkov over what Flux applies: Git objects, chart objects and the worker pod template, per cluster.

checkov runs from its own venv (scripts/checkov-venv.sh makes .venv-checkov): it pins many packages that must
not enter the project's venv. The skip list, each check with its reason, is the repository's .checkov.yaml.
checkov runs without it and the failures of skipped checks are counted here as "skipped", so the counts show
what each skip hides. A check that holds in general but not for a few named objects is exempted for those objects
only, with its reason, in pyproject.toml `[[tool.airflow-gitops.checkov-exemptions]]` (checkov's own configuration
has no such scope); their failures are counted as "exempted", and an exemption that matches no failure is reported,
so none outlives its cause.
Usage: python -m airflow_gitops.checks.checkov_scan [CLUSTER...]; exit 1 on any failed check, 2 when it cannot run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from airflow_gitops.checks import policies
from airflow_gitops.model import Resource
from airflow_gitops.pipeline import render_cluster
from airflow_gitops.settings import CHARTS_ENV, Settings, parse_chart_overrides
from airflow_gitops.source.repository import cluster_names

CHECKOV_ENV = "AIRFLOW_GITOPS_CHECKOV"
CONFIG = ".checkov.yaml"
# Flux's own components (clusters/<cluster>/flux-system/gotk-components.yaml) are scanned in a checkov run of their
# own: checkov's graph checks join a NetworkPolicy to pods without looking at namespaces, so Flux's `allow-egress`
# (podSelector {} in flux-system) would count as every pod's policy and hide CKV2_K8S_6 on every other namespace.
FLUX_COMPONENTS = "/flux-system/gotk-components.yaml"
FLUX_GROUP = "flux-components"


@dataclass
class Scan:
    passed: int = 0
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skip_reasons: dict[str, str] = field(default_factory=dict)
    unrendered: list[str] = field(default_factory=list)
    # Failures of an exempted check on an object its exemption names.
    exempted: list[str] = field(default_factory=list)
    # (check, object) pairs of the exemptions that matched no failure of this scan.
    unused_exemptions: set[tuple[str, str]] = field(default_factory=set)


def checkov_binary(repo: Path) -> Path:
    return Path(os.environ.get(CHECKOV_ENV) or repo / ".venv-checkov" / "bin" / "checkov")


def skip_reasons(repo: Path) -> dict[str, str]:
    """Check id -> its one-line reason, from the comments of .checkov.yaml's skip-check list."""
    reasons = {}
    for line in (repo / CONFIG).read_text().splitlines():
        item = line.strip()
        if item.startswith("- CKV"):
            check, _, reason = item[2:].partition("#")
            reasons[check.strip()] = reason.strip()
    return reasons


@dataclass(frozen=True)
class Exemption:
    check: str
    objects: tuple[str, ...]
    reason: str


def exemptions(repo: Path) -> list[Exemption]:
    """pyproject.toml `[[tool.airflow-gitops.checkov-exemptions]]`: each a `check`, the `objects` it does not apply to
    (as `Kind namespace/name`, or `Kind name` for a cluster-scoped kind) and a `reason`; a malformed entry is an error."""
    table = tomllib.loads((repo / "pyproject.toml").read_text()).get("tool", {}).get("airflow-gitops", {})
    found = []
    for index, entry in enumerate(table.get("checkov-exemptions") or []):
        where = f"pyproject.toml [[tool.airflow-gitops.checkov-exemptions]] #{index + 1}"
        if not isinstance(entry, dict) or set(entry) != {"check", "objects", "reason"}:
            raise ValueError(f"{where}: expected exactly the keys check, objects, reason")
        check, objects, reason = entry["check"], entry["objects"], entry["reason"]
        if not (isinstance(check, str) and check.startswith("CKV")):
            raise ValueError(f"{where}: check: expected a checkov check id, got {check!r}")
        if not (isinstance(objects, list) and objects and all(isinstance(o, str) and " " in o for o in objects)):
            raise ValueError(f"{where}: objects: expected a non-empty list of 'Kind namespace/name'")
        if not (isinstance(reason, str) and len(reason.strip()) > 20):
            raise ValueError(f"{where}: reason: say why the check does not apply to these objects")
        found.append(Exemption(check, tuple(objects), reason.strip()))
    return found


def objects_of(settings: Settings, cluster: str, charts: bool = True) -> tuple[list[Resource], list[str]]:
    """Every object the cluster applies, with the worker pod template as the Pod it becomes."""
    state = render_cluster(settings, cluster, charts=charts)
    chart_objects = [o for release in state.releases for o in release.objects]
    templates = policies.pod_template_resources(chart_objects)
    for template in templates:
        # The KubernetesExecutor launches task pods in the release's namespace; the template names none.
        template.obj.setdefault("metadata", {}).setdefault("namespace", _namespace_of(template, state.releases))
    unrendered = [f"{r.helmrelease.ref}: {r.unrendered_reason}" for r in state.releases if r.unrendered_reason]
    return [*state.resources, *chart_objects, *templates], unrendered


def _namespace_of(resource: Resource, releases) -> str:
    return next((r.namespace for r in releases if resource.applied_by == f"HelmRelease {r.helmrelease.namespace}/"
                 f"{r.helmrelease.name}"), "default")


def scan(repo: Path, objects: list[Resource], binary: Path | None = None) -> Scan:
    binary = binary or checkov_binary(repo)
    result = Scan(skip_reasons=skip_reasons(repo))
    exempt = {(e.check, ref) for e in exemptions(repo) for ref in e.objects}
    result.unused_exemptions = set(exempt)
    reports: list = []
    with tempfile.TemporaryDirectory(prefix="airflow-gitops-checkov-") as tmp:
        names, refs = {}, {}
        for index, resource in enumerate(objects):
            name = f"{index:04d}.yaml"
            names[name] = f"{resource.location}: {resource.ref}"
            refs[name] = resource.ref
            group = Path(tmp, FLUX_GROUP if resource.source_file.endswith(FLUX_COMPONENTS) else "rest")
            group.mkdir(exist_ok=True)
            (group / name).write_text(yaml.safe_dump(resource.obj, sort_keys=False))
        for group in sorted(Path(tmp).iterdir()):
            # Run in the scan folder so that checkov does not load .checkov.yaml's skip list by itself.
            command = [str(binary), "--directory", ".", "--framework", "kubernetes", "--output", "json", "--compact"]
            done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, cwd=group)
            try:
                found = json.loads(done.stdout)
            except json.JSONDecodeError as error:
                raise RuntimeError(f"checkov printed no JSON report (exit {done.returncode}): "
                                   f"{(done.stderr or done.stdout).strip()[-2000:]}") from error
            reports += found if isinstance(found, list) else [found]
    for report in reports:
        summary = report.get("summary") or {}
        result.passed += int(summary.get("passed", 0))
        for check in (report.get("results") or {}).get("failed_checks") or []:
            file = Path(str(check.get("file_path", ""))).name
            where = names.get(file, check.get("file_path"))
            line = f"{where}: {check['check_id']} {check.get('check_name', '')}"
            if check["check_id"] in result.skip_reasons:
                result.skipped.append(line)
            elif (check["check_id"], refs.get(file)) in exempt:
                result.exempted.append(line)
                result.unused_exemptions.discard((check["check_id"], refs.get(file)))
            else:
                result.failed.append(line)
    return result


def main(argv: list[str] | None = None) -> int:
    repo = Path.cwd()
    clusters = (argv if argv is not None else sys.argv[1:]) or cluster_names(repo)
    schemas = os.environ.get("AIRFLOW_GITOPS_SCHEMAS")
    settings = Settings(repo=repo, schemas_dir=Path(schemas) if schemas else None,
                        local_charts=parse_chart_overrides(os.environ.get(CHARTS_ENV, "")))
    if not checkov_binary(repo).exists():
        print(f"checkov is not installed at {checkov_binary(repo)}: run scripts/checkov-venv.sh", file=sys.stderr)
        return 2
    status, unused, everything_rendered = 0, None, True
    for cluster in clusters:
        objects, unrendered = objects_of(settings, cluster)
        result = scan(repo, objects)
        for line in unrendered:
            print(f"{cluster}: NOT RENDERED, not scanned: {line}")
        for line in result.failed:
            print(f"{cluster}: FAILED {line}")
        print(f"{cluster}: checkov {len(objects)} objects: passed {result.passed}, skipped {len(result.skipped)} "
              f"(by {len(result.skip_reasons)} checks skipped with a reason in {CONFIG}), exempted "
              f"{len(result.exempted)} (pyproject.toml checkov-exemptions), failed {len(result.failed)}")
        status = status or (1 if result.failed else 0)
        unused = result.unused_exemptions if unused is None else unused & result.unused_exemptions
        everything_rendered = everything_rendered and not unrendered
    # An exemption that no cluster needs any more goes (only judged when every chart was scanned).
    if everything_rendered and set(clusters) >= set(cluster_names(repo)):
        for check, ref in sorted(unused or ()):
            print(f"UNUSED EXEMPTION pyproject.toml checkov-exemptions: {check} on {ref} fails on no cluster: remove it")
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
