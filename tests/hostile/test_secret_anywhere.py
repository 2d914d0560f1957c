"""Issue 16, class 4: a secret is found by its shape wherever text can hold one, and by its key where text is keyed.

The rule (checks/secret_values.py): every string of every object that reaches the cluster (Git objects, chart values,
chart output; a Secret's own data aside) is judged by the shape rules; every keyed place (env, Airflow config,
ConfigMap data and binaryData, postBuild.substitute, connections, flags and assignments in arguments, config blocks in
strings, any chart value) also by the key rules. References are not secrets.

Each table row is one variant; the end-to-end table runs the real `validate` once over a copy holding them all."""

from __future__ import annotations

import base64
import re
import textwrap
from pathlib import Path

import pytest
from airflow_gitops.checks import secret_values
from airflow_gitops.checks.secret_values import git_secrets, problem, rendered_secrets, shape, values_secrets
from airflow_gitops.cli import main
from airflow_gitops.model import ReleaseRender, Resource
from airflow_gitops.source.repository import copy_desired_state
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import edit

GITHUB = "ghp_" + "a1B2c3D4" * 5
SLACK_HOOK = "https://hooks.slack.com/services/T0123ABCD/B0123ABCD/abcdefghijklmnopqrstuvwx"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
FERNET = "Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eHF1dXg="
PEM = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----\n"


# --- the shape rule: what a secret looks like, whatever holds it ------------------------------------------

@pytest.mark.parametrize("text, found", [
    (PEM, "PEM private key"),
    ("-----BEGIN ENCRYPTED PRIVATE KEY-----", "PEM private key"),
    ("-----BEGIN PGP PRIVATE KEY BLOCK-----", "PEM private key"),
    (f"creds {AWS_KEY} here", "AWS access key"),
    (GITHUB, "GitHub token"),
    ("github_pat_" + "A1b2" * 8, "GitHub token"),
    ("glpat-" + "x1Y2z3" * 4, "GitLab token"),
    ("xoxb-1234567890-abcdefghij", "Slack token"),
    (SLACK_HOOK, "Slack webhook URL"),
    ("https://discord.com/api/webhooks/123456789012/abcDEF_ghi-jkl", "Discord webhook URL"),
    ("https://contoso.webhook.office.com/webhookb2/abc@def/IncomingWebhook/123/456", "Teams webhook URL"),
    ("AIza" + "B" * 35, "Google API key"),
    ("sk_live_" + "a" * 24, "Stripe secret key"),
    ("npm_" + "a1" * 18, "npm token"),
    ("pypi-AgEIcHlwaS5vcmc" + "x" * 50, "PyPI token"),
    ("hvs." + "CAESIJ" * 5, "Vault token"),
    ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcdefghijklmnopqrstu", "JWT"),
    (FERNET, "Fernet key"),
    ("postgresql://airflow:hunter2@db:5432/airflow", "URL with a password"),
    ("https://user:pw@github.com/o/r.git", "URL with a password"),
    ("https://" + "q8Zt3Lk9Vw2Xp5Rm7Ns4" + "@github.com/o/r.git", "token as its user"),
    ("https://chat.googleapis.com/v1/spaces/X/messages?key=abcdefgh12345678&token=zzzzzzzzzz", "in its query (key)"),
    ("https://example.com/hook?access_token=abcdef123456", "in its query (access_token)"),
    ("https://acct.blob.core.windows.net/c?sv=2022&sig=AbCdEfGh12345678", "in its query (sig)"),
    ("see https://x.example/?api_key=0123456789abcdef for more", "in its query (api_key)"),
])
def test_a_secret_shape_is_found_in_any_text(text, found):
    assert found in (shape(text) or ""), shape(text)


@pytest.mark.parametrize("text", [
    "https://github.com/airflow-gitops/airflow-gitops.git", "git@github.com:airflow-gitops/airflow-gitops.git",
    "ssh://git@github.com/o/r", "postgresql://airflow:${DB_PASSWORD}@db/airflow", "https://u:$(PW)@x/",
    "https://example.com/?page=2&sort=name", "https://x/?token=", "s3://${logs_bucket}/task-logs",
    "oci://ghcr.io/o/charts", "arn:aws:iam::111122223333:role/x", "sha256:" + "a" * 64,
    "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
    "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----", "ghp_short", "AKIA-not-a-key",
])
def test_text_without_a_secret_shape(text):
    assert shape(text) is None


# --- the key rule, and what stays a reference ----------------------------------------------------------

@pytest.mark.parametrize("key, value", [
    ("password", "hunter2"), ("smtp_password", "123456"), ("api_key", "abc123abc123"), ("TOKEN", "s3cr3t-t0ken"),
    ("client_secret", "x" * 12), ("fernet_key", "not-base64-but-literal"), ("webhook_url", "https://x.example/h"),
    ("sql_alchemy_conn", "postgresql://a:b@h/d"), ("signing_key", "A1b2C3d4E5f6G7h8I9j0K1l2M3n4"),
    ("AIRFLOW_CONN_X", '{"conn_type": "http", "password": "p"}'),
])
def test_a_literal_under_a_secret_key(key, value):
    assert problem(key, value)


@pytest.mark.parametrize("key, value", [
    ("password", "${smtp_password}"), ("password", "$(printenv PW)"), ("token", "{{ .Values.token }}"),
    ("secretName", "airflow-conn"), ("fernetKeySecretName", "airflow-fernet"), ("sshKeySecret", "git-ssh"),
    ("fernet_key_cmd", "cat /run/secrets/fernet"), ("sql_alchemy_conn_secret", "airflow/connections/db"),
    ("remote_log_conn_id", "aws_default"), ("token_file", "/var/run/secrets/token"), ("secret_namespace", "es"),
    ("password_file", "/etc/pw"), ("token", "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"),
    ("secret_mask_adapter", "my_company.masking.adapter"), ("token_ttl", "3600"), ("password", "<password>"),
])
def test_a_reference_is_not_a_secret(key, value):
    assert problem(key, value) is None


# --- every place of an object from Git -----------------------------------------------------------------

def obj(kind: str, body: dict, api: str = "v1", name: str = "x", namespace: str = "airflow") -> Resource:
    return Resource({"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": namespace}, **body},
                    "infrastructure/x.yaml", "Kustomization flux-system/infra-configs")


def pod(container: dict, kind: str = "Deployment") -> dict:
    spec = {"containers": [{"name": "c", "image": "docker.io/apache/airflow:3.3.2", **container}]}
    return {"spec": {"template": {"spec": spec}}} if kind != "Pod" else {"spec": spec}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


KS = "kustomize.toolkit.fluxcd.io/v1"
NOTIFY = "notification.toolkit.fluxcd.io/v1beta3"
SOURCE = "source.toolkit.fluxcd.io/v1"
CNPG = "postgresql.cnpg.io/v1"

GIT_PLACES = [
    # (what, object, field, reason)
    ("postBuild.substitute, by key", obj("Kustomization", {"spec": {"postBuild": {"substitute": {
        "smtp_password": "hunter2hunter2"}}}}, KS), "spec.postBuild.substitute.smtp_password", "secret-like key"),
    ("postBuild.substitute, by shape", obj("Kustomization", {"spec": {"postBuild": {"substitute": {
        "notify": SLACK_HOOK}}}}, KS), "spec.postBuild.substitute.notify", "Slack webhook"),
    ("ConfigMap binaryData, by key", obj("ConfigMap", {"binaryData": {"db_password": b64("hunter2hunter2")}}),
     "binaryData.db_password", r"secret-like key .*base64-decoded"),
    ("ConfigMap binaryData, config file", obj("ConfigMap", {"binaryData": {"app.ini": b64("[db]\npassword = s3cr3t\n")}}),
     r"binaryData.app\.ini", "password: a literal value"),
    ("ConfigMap data, YAML block", obj("ConfigMap", {"data": {"config.yaml": "db:\n  password: hunter2hunter2\n"}}),
     r"data.config\.yaml.db.password", "secret-like key"),
    ("ConfigMap data, JSON block", obj("ConfigMap", {"data": {"kwargs": '{"url": "http://vault", "token": "tok-x1y2z3"}'}}),
     "data.kwargs.token", "secret-like key"),
    ("ConfigMap data, Python config", obj("ConfigMap", {"data": {"webserver_config.py": "import os\nSECRET_KEY = 'x9'\n"}}),
     r"data.webserver_config\.py", "SECRET_KEY"),
    ("annotation", obj("Deployment", {"metadata": {"name": "x", "annotations": {"note": f"key {AWS_KEY}"}}}, "apps/v1"),
     "metadata.annotations.note", "AWS access key"),
    ("label", obj("Service", {"metadata": {"name": "x", "labels": {"t": "xoxb-1234567890-abcdefghij"}}}),
     "metadata.labels.t", "Slack token"),
    ("a Secret's annotations (not its data)", obj("Secret", {"metadata": {"name": "x", "annotations": {"a": GITHUB}},
                                                               "stringData": {"token": "x"}}),
     "metadata.annotations.a", "GitHub token"),
    ("container args, shape", obj("Deployment", pod({"args": ["--header", f"Authorization: token {GITHUB}"]}),
                                  "apps/v1"), r"spec.template.spec.containers\[0\].args\[1\]", "GitHub token"),
    ("container args, --flag=value", obj("Deployment", pod({"args": ["serve", "--db-password=hunter2"]}), "apps/v1"),
     r"containers\[0\].args\[1\]", "--db-password: a literal value"),
    ("container args, --flag value", obj("Deployment", pod({"args": ["serve", "--token", "abcdef123456"]}), "apps/v1"),
     r"containers\[0\].args\[2\]", "--token"),
    ("container command, shell assignment", obj("Job", pod({"command": [
        "bash", "-c", "AIRFLOW__CORE__FERNET_KEY=literalfernet exec airflow db migrate"]}), "batch/v1"),
     r"containers\[0\].command\[2\]", "AIRFLOW__CORE__FERNET_KEY"),
    ("container env", obj("Pod", pod({"env": [{"name": "API_KEY", "value": "abc123abc123"}]})),
     r"spec.containers\[0\].env\[0\].value", "env API_KEY"),
    ("ReplicationController env", obj("ReplicationController", pod({"env": [{"name": "PGPASSWORD", "value": "x1"}]})),
     r"spec.template.spec.containers\[0\].env\[0\].value", "env PGPASSWORD"),
    ("CloudNativePG Pooler pod template", obj("Pooler", {"spec": {"cluster": {"name": "db"}, "template": {"spec": {
        "containers": [{"name": "pgbouncer", "env": [{"name": "PGPASSWORD", "value": "hunter2"}]}]}}}}, CNPG),
     r"spec.template.spec.containers\[0\].env\[0\].value", "env PGPASSWORD"),
    ("Flux Provider address", obj("Provider", {"spec": {"type": "slack", "address": SLACK_HOOK}}, NOTIFY),
     "spec.address", "Slack webhook"),
    ("Flux Provider address with a token in the query", obj("Provider", {"spec": {
        "type": "generic", "address": "https://hooks.example.com/flux?token=abcdef123456"}}, NOTIFY),
     "spec.address", "in its query"),
    ("Flux Provider proxy with a password", obj("Provider", {"spec": {"type": "github", "proxy":
                                                                      "http://u:hunter2@proxy:3128"}}, NOTIFY),
     "spec.proxy", "URL with a password"),
    ("GitRepository URL with a password", obj("GitRepository", {"spec": {"url": "https://u:hunter2@github.com/o/r"}},
                                              SOURCE), "spec.url", "URL with a password"),
    ("HelmRepository URL with a token as user", obj("HelmRepository", {"spec": {
        "url": f"https://{GITHUB}@charts.example.com"}}, SOURCE), "spec.url", "GitHub token"),
    ("OCIRepository URL", obj("OCIRepository", {"spec": {"url": "oci://u:hunter2@ghcr.io/o/c"}}, SOURCE), "spec.url",
     "URL with a password"),
    ("custom resource, nested", obj("Cluster", {"spec": {"description": f"backup key {AWS_KEY}"}}, CNPG),
     "spec.description", "AWS access key"),
    ("postRenderers patch", obj("HelmRelease", {"spec": {"postRenderers": [{"kustomize": {"patches": [{
        "patch": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  template:\n    metadata:\n"
                 f"      annotations: {{k: {GITHUB}}}\n"}]}}]}}, "helm.toolkit.fluxcd.io/v2"),
     r"spec.postRenderers\[0\].kustomize.patches\[0\].patch", "sets spec.template.metadata.annotations.k"),
]


@pytest.mark.parametrize("what, resource, field, reason", GIT_PLACES, ids=[row[0] for row in GIT_PLACES])
def test_a_secret_in_any_place_of_a_git_object(what, resource, field, reason):
    found = [f"{f.field}: {f.message}" for f in git_secrets([resource], set())]
    assert [line for line in found if re.match(rf"(.*\.)?{field}: .*{reason}", line)], found


REFERENCES = [
    ("Secret data is the sops/plaintext checks' business", obj("Secret", {"stringData": {"password": "hunter2"}})),
    ("a variable in postBuild", obj("Kustomization", {"spec": {"postBuild": {"substitute": {"pw": "${x}"}}}}, KS)),
    ("secretKeyRef env", obj("Pod", pod({"env": [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {
        "name": "s", "key": "password"}}}]}))),
    ("a shell reading a variable", obj("Pod", pod({"args": ["bash", "-c", 'run --password "$(printenv PW)"']}))),
    ("a Provider reading its address from a Secret", obj("Provider", {"spec": {"type": "slack", "secretRef": {
        "name": "slack-url"}}}, NOTIFY)),
    ("a public source URL", obj("GitRepository", {"spec": {"url": "https://github.com/o/r"}}, SOURCE)),
    ("ConfigMap data naming a file", obj("ConfigMap", {"data": {"token_file": "/var/run/secrets/token"}})),
    ("a values ConfigMap (judged as values)", obj("ConfigMap", {"data": {"values.yaml": "password: hunter2\n"}},
                                                    name="airflow-values")),
]


@pytest.mark.parametrize("what, resource", REFERENCES, ids=[row[0] for row in REFERENCES])
def test_no_finding_for_a_reference(what, resource):
    assert git_secrets([resource], {("airflow", "airflow-values")}) == []


# --- chart values, nested config blocks included ----------------------------------------------------------

VALUE_PLACES = [
    ({"config": {"secrets": {"backend_kwargs": '{"url": "http://vault:8200", "token": "tok-abcdef"}'}}},
     "config.secrets.backend_kwargs.token", r"Airflow config \[secrets\] backend_kwargs: .*secret-like key"),
    ({"webserver": {"webserverConfig": "from airflow import configuration\nSECRET_KEY = 'abc123abc123'\n"}},
     "webserver.webserverConfig", "SECRET_KEY: a literal value"),
    ({"workers": {"extraContainers": "- name: s\n  image: x\n  env:\n    - name: API_TOKEN\n      value: abc123abc1\n"}},
     r"workers.extraContainers\[0\].env\[0\].value", "env API_TOKEN"),
    ({"someChart": {"auth": {"adminPassword": "hunter2hunter2"}}}, "someChart.auth.adminPassword", "secret-like key"),
    ({"ingress": {"apiServer": {"annotations": {"x": f"Bearer {GITHUB}"}}}}, "ingress.apiServer.annotations.x",
     "GitHub token"),
    ({"scheduler": {"args": ["bash", "-c", "exec airflow scheduler --token=abcdef123456"]}}, r"scheduler.args\[2\]",
     "--token"),
    ({"dags": {"gitSync": {"repo": "https://oauth2:glpat-abcdefghijklmnopqrst@gitlab.com/o/r.git"}}},
     "dags.gitSync.repo", "GitLab token|URL with a password"),
    ({"extraConfigMaps": {"x": {"data": "app.ini: |\n  [db]\n  password = s3cr3t\n"}}}, r"extraConfigMaps.x.data.app\.ini",
     "password: a literal value"),
    ({"config": {"smtp": {"smtp_password": 123456}}}, "config.smtp.smtp_password", "secret-like key"),
]


def release(values: dict, objects: list[Resource] | None = None) -> ReleaseRender:
    helmrelease = obj("HelmRelease", {"spec": {}}, "helm.toolkit.fluxcd.io/v2", "airflow")
    return ReleaseRender(helmrelease, "airflow", "airflow", "airflow", "1.22.0", values, ["v.yaml"],
                         objects=objects or [])


@pytest.mark.parametrize("values, field, reason", VALUE_PLACES, ids=[row[1] for row in VALUE_PLACES])
def test_a_secret_in_any_chart_value(values, field, reason):
    found = [f"{f.field}: {f.message}" for f in values_secrets(release(values), lambda path: "v.yaml")]
    assert [line for line in found if re.match(rf"(.*\.)?{field}: .*({reason})", line)], found


def test_the_chart_secret_fields_are_left_to_the_values_secret_check():
    assert values_secrets(release({"fernetKey": FERNET}), lambda path: "v.yaml") == []


def test_a_secret_the_chart_renders_from_elsewhere_is_found_once():
    leaked = obj("ConfigMap", {"data": {"hook": SLACK_HOOK}}, name="airflow-config")
    from_values = obj("ConfigMap", {"data": {"note": f"key {AWS_KEY}"}}, name="airflow-extra")
    found = rendered_secrets([release({"extraConfigMaps": {"x": {"data": f"note: key {AWS_KEY}"}}},
                                      [leaked, from_values])])
    assert [(f.object, f.field) for f in found] == [("ConfigMap airflow/airflow-config", "data.hook")]


def test_the_values_walk_is_a_table():
    """Issue 18: values_secrets is a table of places and judges, not a chain of rules."""
    assert len(secret_values.VALUES_RULES.rules) > 5 and len(secret_values.OBJECT_RULES.rules) > 5


# --- end to end: the real command over a copy of the repository with every variant at once -----------------

CONFIGS = "infrastructure/configs/base"
E2E = [
    # (object, field, reason) in validate's output
    (r"clusters/kind/apps.yaml: Kustomization flux-system/apps", "spec.postBuild.substitute.smtp_password",
     "secret-like key"),
    (rf"{CONFIGS}/leak.yaml: ConfigMap airflow/leak", "binaryData.db_password", "base64-decoded"),
    (rf"{CONFIGS}/leak.yaml: ConfigMap airflow/leak", "metadata.annotations.note", "AWS access key"),
    (rf"{CONFIGS}/leak.yaml: Job airflow/leak", r"spec.template.spec.containers\[0\].args\[0\]", "--api-key"),
    (rf"{CONFIGS}/leak.yaml: Provider airflow/leak", "spec.address", "Slack webhook"),
]


@pytest.fixture(scope="module")
def e2e_output(tmp_path_factory) -> str:
    repo = tmp_path_factory.mktemp("secret-anywhere")
    from tests.helpers import REPO
    copy_desired_state(REPO, repo)
    edit(repo, "clusters/kind/apps.yaml", "  postBuild:\n", "  postBuild:\n    substitute:\n      smtp_password: hunter2x\n")
    (repo / CONFIGS / "leak.yaml").write_text(textwrap.dedent(f"""\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: leak
          namespace: airflow
          annotations:
            note: "key {AWS_KEY}"
        binaryData:
          db_password: {b64("hunter2hunter2")}
        ---
        apiVersion: batch/v1
        kind: Job
        metadata:
          name: leak
          namespace: airflow
        spec:
          template:
            spec:
              restartPolicy: Never
              containers:
                - name: c
                  image: docker.io/apache/airflow:3.3.2
                  args: ["--api-key=abcdef123456"]
        ---
        apiVersion: {NOTIFY}
        kind: Provider
        metadata:
          name: leak
          namespace: airflow
        spec:
          type: slack
          address: {SLACK_HOOK}
        """))
    edit(repo, f"{CONFIGS}/kustomization.yaml", "resources:\n", "resources:\n  - leak.yaml\n")
    return _validate(repo)


def _validate(repo: Path) -> str:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(["validate", "kind", "--repo", str(repo)])
    text = out.getvalue()
    assert code == 1 and "Traceback" not in text and "internal error" not in text, text
    return text


@pytest.mark.parametrize("where, field, reason", E2E, ids=[row[1] for row in E2E])
def test_validate_reports_each_place(e2e_output, where, field, reason):
    assert re.search(rf"^kind: {where}: {field}: secret value .*{reason}", e2e_output, re.M), e2e_output


# --- the fast scanners find what the expressions find ------------------------------------------------------

SCANNED = st.lists(st.one_of(st.text(alphabet="ab1_-+/=: .\n'\"<>`", max_size=30), st.just("://"), st.just(FERNET)),
                   max_size=8).map("".join)


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(text=SCANNED)
def test_the_scanners_find_what_the_expressions_find(text):
    """shape() finds URLs and Fernet candidates from each `://` and `=` instead of scanning every position (the long
    texts of CRDs): the same matches as URL.findall and FERNET_CANDIDATE.findall."""
    assert list(secret_values._urls(text)) == secret_values.URL.findall(text)
    assert list(secret_values._fernet_candidates(text)) == secret_values.FERNET_CANDIDATE.findall(text)
