"""The check registry: `validate --list-checks`, and a check is off for a cluster only by the policy configuration,
which validate says, with the written reason."""

from __future__ import annotations

import tomllib

from airflow_gitops.checks.registry import CHECKS
from airflow_gitops.checks.validation import validate_cluster
from airflow_gitops.cli import main

from tests.helpers import REPO, make_settings

POLICIES = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["airflow-gitops"]["policies"]
KIND_EXEMPTION = POLICIES["exemptions"]["require-resource-requests"]["kind"]


def test_every_check_has_a_unique_name_and_a_description():
    names = [check.name for check in CHECKS]
    assert len(names) == len(set(names))
    assert all(check.description.strip() and callable(check.run) for check in CHECKS)


def test_list_checks_prints_each_check_with_its_clusters(capsys):
    assert main(["validate", "--list-checks", "--repo", str(REPO)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [check.name for check in CHECKS]
    requests = next(line for line in lines if line.startswith("resource-requests "))
    assert requests.endswith("[eks (require-resource-requests); off for kind]")
    assert next(line for line in lines if line.startswith("schema ")).endswith("[all clusters]")


def test_validate_without_a_cluster_is_a_usage_error(capsys):
    assert main(["validate", "--repo", str(REPO)]) == 2
    assert "give a cluster" in capsys.readouterr().err


def test_validate_says_which_checks_are_off_and_why(capsys):
    main(["validate", "kind", "--repo", str(REPO)])
    out = capsys.readouterr().out
    assert ("kind: check resource-requests is off: exempted in pyproject.toml "
            f"[tool.airflow-gitops.policies.exemptions.require-resource-requests]: {KIND_EXEMPTION}") in out.splitlines()


def test_a_listed_cluster_runs_the_check(repo_copy):
    pyproject = repo_copy / "pyproject.toml"
    text = pyproject.read_text().replace('require-resource-requests = ["eks"]', 'require-resource-requests = ["eks", "kind"]')
    text = text.replace(f'kind = "{KIND_EXEMPTION}"\n', "", 1)
    pyproject.write_text(text)
    report = validate_cluster(make_settings(repo_copy), "kind")
    assert "resource-requests" not in dict(report.checks_off)
    assert not [f for f in report.findings if f.check == "policy-config"]


def test_a_cluster_neither_listed_nor_exempt_is_an_error_not_a_silent_skip(repo_copy):
    pyproject = repo_copy / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(f'kind = "{KIND_EXEMPTION}"\n', "", 1))
    report = validate_cluster(make_settings(repo_copy), "kind")
    assert dict(report.checks_off)["resource-requests"].startswith("not in require-resource-requests")
    assert [(f.file, f.field) for f in report.errors if f.check == "policy-config"] == [
        ("pyproject.toml", "require-resource-requests")]
