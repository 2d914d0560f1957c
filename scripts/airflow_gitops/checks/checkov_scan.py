"""checkov over what Flux applies: Git objects, chart objects and the worker pod template, per cluster.

checkov runs from its own venv (scripts/checkov-venv.sh makes .venv-checkov): it pins many packages that must
not enter the project's venv. The skip list, each check with its reason, is the repository's .checkov.yaml.
checkov runs without it and the failures of skipped checks are counted here as "skipped", so the counts show
what each skip hides.
Usage: python -m airflow_gitops.checks.checkov_scan [CLUSTER...]; exit 1 on any failed check, 2 when it cannot run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from airflow_gitops.checks import policies
from airflow_gitops.model import Resource
from airflow_gitops.pipeline import render_cluster
from airflow_gitops.settings import CHARTS_ENV, Settings, parse_chart_overrides

CHECKOV_ENV = "AIRFLOW_GITOPS_CHECKOV"
CONFIG = ".checkov.yaml"
# Failed checks accepted on Flux's own components only (clusters/<cluster>/flux-system/gotk-components.yaml, which
# `airflow-gitops flux-components` keeps exactly as Flux releases them), never elsewhere: counted as skipped.
FLUX_COMPONENTS = "/flux-system/gotk-components.yaml"
FLUX_COMPONENT_SKIPS = {
    "CKV_K8S_49": "wildcards in Flux's ClusterRoles: crd-controller reconciles every object of Flux's API groups, and "
                  "flux-view/flux-edit aggregate them for users; Flux's design, kept as bootstrap writes it",
}


@dataclass
class Scan:
    passed: int = 0
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skip_reasons: dict[str, str] = field(default_factory=dict)
    unrendered: list[str] = field(default_factory=list)


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
    with tempfile.TemporaryDirectory(prefix="airflow-gitops-checkov-") as tmp:
        names = {}
        for index, resource in enumerate(objects):
            name = f"{index:04d}.yaml"
            names[name] = f"{resource.location}: {resource.ref}"
            Path(tmp, name).write_text(yaml.safe_dump(resource.obj, sort_keys=False))
        # Run in the scan folder so that checkov does not load .checkov.yaml's skip list by itself.
        command = [str(binary), "--directory", ".", "--framework", "kubernetes", "--output", "json", "--compact"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, cwd=tmp)
        try:
            reports = json.loads(done.stdout)
        except json.JSONDecodeError as error:
            raise RuntimeError(f"checkov printed no JSON report (exit {done.returncode}): "
                               f"{(done.stderr or done.stdout).strip()[-2000:]}") from error
    for report in reports if isinstance(reports, list) else [reports]:
        summary = report.get("summary") or {}
        result.passed += int(summary.get("passed", 0))
        for check in (report.get("results") or {}).get("failed_checks") or []:
            where = names.get(Path(str(check.get("file_path", ""))).name, check.get("file_path"))
            line = f"{where}: {check['check_id']} {check.get('check_name', '')}"
            accepted = check["check_id"] in result.skip_reasons or (
                check["check_id"] in FLUX_COMPONENT_SKIPS and str(where).split(":", 1)[0].endswith(FLUX_COMPONENTS))
            (result.skipped if accepted else result.failed).append(line)
    return result


def main(argv: list[str] | None = None) -> int:
    clusters = (argv if argv is not None else sys.argv[1:]) or ["kind", "eks"]
    repo = Path.cwd()
    schemas = os.environ.get("AIRFLOW_GITOPS_SCHEMAS")
    settings = Settings(repo=repo, schemas_dir=Path(schemas) if schemas else None,
                        local_charts=parse_chart_overrides(os.environ.get(CHARTS_ENV, "")))
    if not checkov_binary(repo).exists():
        print(f"checkov is not installed at {checkov_binary(repo)}: run scripts/checkov-venv.sh", file=sys.stderr)
        return 2
    status = 0
    for cluster in clusters:
        objects, unrendered = objects_of(settings, cluster)
        result = scan(repo, objects)
        for line in unrendered:
            print(f"{cluster}: NOT RENDERED, not scanned: {line}")
        for line in result.failed:
            print(f"{cluster}: FAILED {line}")
        print(f"{cluster}: checkov {len(objects)} objects: passed {result.passed}, skipped {len(result.skipped)} "
              f"(by {len(result.skip_reasons)} checks skipped with a reason in {CONFIG}), failed {len(result.failed)}")
        status = status or (1 if result.failed else 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
