"""Issue 18, "One policy configuration, parsed once, strict, handed to the checks": `PolicyConfig` is the only reader
of `[tool.airflow-gitops.policies]`. Each wrong table is a finding naming pyproject.toml and the key, and the key then
reads as its strictest value: an allowlist allows nothing, a cluster list covers every cluster."""

from __future__ import annotations

import tomllib

import pytest
from airflow_gitops import policy_config
from airflow_gitops.policy_config import PolicyConfig

from tests.helpers import REPO

TEXT = (REPO / "pyproject.toml").read_text()
CLUSTERS = ["eks", "kind"]


def with_table(old: str, new: str) -> PolicyConfig:
    assert old in TEXT, f"fixture out of date: {old!r}"
    return PolicyConfig.parse(TEXT.replace(old, new, 1))


def problems(config: PolicyConfig, cluster: str = "kind") -> list[str]:
    return [str(f) for f in config.findings(cluster, CLUSTERS)]


def test_the_repository_table_is_valid_and_typed():
    config = PolicyConfig.load(REPO)
    assert problems(config, "kind") == problems(config, "eks") == []
    assert config.airflow_release == "airflow"
    assert config.airflow_version and config.airflow_version.count(".") == 2
    assert "docker.io/apache" in config.allowed_image_registries
    assert config.cluster_list("require-resource-requests").listed == ("eks",)
    assert config.cluster_list("require-resource-requests").off_reason("eks") is None
    assert "exempted in pyproject.toml" in config.cluster_list("require-resource-requests").off_reason("kind")


# (change to the table, the key named, what the finding says, how the key then reads)
STRICT_CASES = [
    ('airflow-release = "airflow"', 'airflow-release = ""', "airflow-release", "non-empty string",
     lambda c: c.airflow_release == "airflow"),
    ('airflow-release = "airflow"', "airflow-release = 3", "airflow-release", "non-empty string",
     lambda c: c.airflow_release == "airflow"),
    ('dags-repositories = [', 'dags-repositories = "x"\nold-dags = [', "dags-repositories", "list of non-empty",
     lambda c: c.dags_repositories == ()),
    ('airflow-image-repositories = ["docker.io/apache/airflow"]', "airflow-image-repositories = []",
     "airflow-image-repositories", "is empty", lambda c: c.airflow_image_repositories == ()),
    ('airflow-image-repositories = ["docker.io/apache/airflow"]', 'airflow-image-repositories = ["", "x"]',
     "airflow-image-repositories", "list of non-empty", lambda c: c.airflow_image_repositories == ()),
    ('require-resource-requests = ["eks"]', 'require-resource-requests = "eks"', "require-resource-requests",
     "list of non-empty", lambda c: c.cluster_list("require-resource-requests").off_reason("kind") is None),
    ('require-resource-requests = ["eks"]', 'require-resource-requests = ["eks", "kind"]',
     "exemptions.require-resource-requests.kind", "both in", lambda c: c.cluster_list(
         "require-resource-requests").off_reason("kind") is None),
    ('kind = "a single laptop', 'kind = "todo"\n# "a single laptop', "exemptions.require-resource-requests.kind",
     "needs a reason", lambda c: c.cluster_list("require-resource-requests").off_reason("kind") is None),
    ("[tool.airflow-gitops.policies.exemptions.require-resource-requests]",
     "[tool.airflow-gitops.policies.exemptions.dags-repositories]\nx = 'a reason long enough to be one'\n"
     "[tool.airflow-gitops.policies.exemptions.require-resource-requests]", "exemptions.dags-repositories",
     "only cluster lists", lambda c: True),
    ("require-resource-requests =", "require-resource-request =", "require-resource-request", "unknown key",
     lambda c: c.cluster_list("require-resource-requests").off_reason("kind") is None),
]


@pytest.mark.parametrize("old, new, key, message, strictest", STRICT_CASES,
                         ids=[f"{case[2]}:{case[3]}" for case in STRICT_CASES])
def test_a_wrong_key_is_a_finding_and_reads_as_strictly_as_it_can(old, new, key, message, strictest):
    config = with_table(old, new)
    found = [line for line in problems(config) if f": {key}: " in line and message in line]
    assert found, problems(config)
    assert all(line.startswith("pyproject.toml: [tool.airflow-gitops.policies]: ") for line in found)
    assert strictest(config)


@pytest.mark.parametrize("text, message", [
    ("[project]\nname = 'x'\n", "(table): missing"),
    ("[tool.airflow-gitops.policies\n", "(file): cannot read"),
])
def test_no_table_or_a_broken_file_is_a_finding(text, message):
    config = PolicyConfig.parse(text)
    assert [line for line in problems(config) if message in line], problems(config)


def test_a_missing_cluster_list_means_every_cluster_and_is_reported():
    config = with_table('backup-before-airflow-change = ["eks"]\n', "")
    assert config.cluster_list("backup-before-airflow-change").off_reason("kind") is None
    assert [line for line in problems(config) if "backup-before-airflow-change: missing" in line]


def test_a_cluster_list_names_every_cluster():
    config = with_table('require-resource-requests = ["eks"]', 'require-resource-requests = ["eks", "prod"]')
    assert [line for line in problems(config) if "names 'prod', which is no folder" in line]
    config = with_table('require-resource-requests = ["eks"]', "require-resource-requests = []")
    assert [line for line in problems(config, "eks") if "leaves out cluster 'eks' without a reason" in line]


def test_validate_all_parses_the_table_once(monkeypatch, capsys):
    """Parsed once by the command, handed to every cluster's render and checks (serially here, in-process)."""
    from airflow_gitops.cli import main

    calls = []
    real = tomllib.loads

    def counting(text, *args, **kwargs):
        if "[tool.airflow-gitops.policies]" in text:
            calls.append(1)
        return real(text, *args, **kwargs)

    monkeypatch.setattr(policy_config.tomllib, "loads", counting)
    monkeypatch.setenv("AIRFLOW_GITOPS_PARALLEL", "0")
    main(["validate", "all", "--repo", str(REPO)])
    capsys.readouterr()
    assert len(calls) == 1


def test_only_policy_config_reads_the_table():
    """No other module parses pyproject.toml's policy table (the lenient second reader is gone)."""
    package = REPO / "scripts" / "airflow_gitops"
    readers = sorted(str(p.relative_to(package)) for p in package.rglob("*.py")
                     if "tomllib" in (text := p.read_text()) and '"policies"' in text and p.name != "policy_config.py")
    assert readers == []
