"""Issue 16, class 3: the Airflow contract holds where each pod receives it, not in one value path.

The rule (checks/runtime_contract.py, checks/pod_environment.py): every container of the rendered cluster is read as
the kubelet builds its environment (envFrom in order, then env, last entry wins, `$(VAR)` expanded) and as the
program in it reads its settings (Airflow: AIRFLOW__SECTION__KEY, else the airflow.cfg it mounts; git-sync v4: flags,
then GIT_SYNC_*, then GITSYNC_*, with --branch/--rev back-compat). Every Airflow container must run the
KubernetesExecutor and give worker pods the tested image through a checked template; every git-sync container must
clone this cluster's repository at the branch Flux follows; every container of any kind running Airflow runs the tested
Airflow. What cannot be known offline (a Secret, a ConfigMap not in the desired state) is refused.

The table mutates a rendered scheduler shaped like the official chart's output (the e2e cases at the end use the real
chart, where it is at hand)."""

from __future__ import annotations

import copy
import re
import textwrap
from collections.abc import Callable
from typing import Any

import pytest
from airflow_gitops.checks import runtime_contract
from airflow_gitops.checks.pod_environment import Environment, Value, expand
from airflow_gitops.model import ReleaseRender, Resource

REPO_URL = "https://github.com/airflow-gitops/airflow-gitops.git"
ATTACKER = "https://github.com/attacker/dags.git"
CFG = textwrap.dedent("""\
    [core]
    executor = KubernetesExecutor
    dags_folder = /opt/airflow/dags/repo/dags

    [kubernetes_executor]
    namespace = airflow
    pod_template_file = /opt/airflow/pod_templates/pod_template_file.yaml
    worker_container_repository = apache/airflow
    worker_container_tag = 3.3.2
    """)
POD_TEMPLATE = textwrap.dedent("""\
    apiVersion: v1
    kind: Pod
    metadata: {name: placeholder-name}
    spec:
      containers:
        - name: base
          image: apache/airflow:3.3.2
          env: [{name: AIRFLOW__CORE__EXECUTOR, value: KubernetesExecutor}, {name: AIRFLOW_HOME, value: /opt/airflow}]
    """)
GIT_SYNC_ENV = [("GIT_SYNC_REV", "HEAD"), ("GITSYNC_REF", "main"), ("GIT_SYNC_BRANCH", "main"),
                ("GIT_SYNC_REPO", REPO_URL), ("GITSYNC_REPO", REPO_URL), ("GITSYNC_ROOT", "/git")]
RELEASE = "HelmRelease airflow/airflow"


def chart_objects() -> list[Resource]:
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "airflow-config", "namespace": "airflow"},
              "data": {"airflow.cfg": CFG, "pod_template_file.yaml": POD_TEMPLATE}}
    scheduler = {"name": "scheduler", "image": "apache/airflow:3.3.2", "args": ["bash", "-c", "exec airflow scheduler"],
                 "env": [{"name": "AIRFLOW_HOME", "value": "/opt/airflow"},
                         {"name": "AIRFLOW__CORE__FERNET_KEY", "valueFrom": {"secretKeyRef": {
                             "name": "airflow-fernet-key", "key": "fernet-key"}}}],
                 "volumeMounts": [
                     {"name": "config", "mountPath": "/opt/airflow/pod_templates/pod_template_file.yaml",
                      "subPath": "pod_template_file.yaml"},
                     {"name": "config", "mountPath": "/opt/airflow/airflow.cfg", "subPath": "airflow.cfg"},
                     {"name": "dags", "mountPath": "/opt/airflow/dags"}]}
    git_sync = {"name": "git-sync", "image": "registry.k8s.io/git-sync/git-sync:v4.4.2",
                "env": [{"name": n, "value": v} for n, v in GIT_SYNC_ENV],
                "volumeMounts": [{"name": "dags", "mountPath": "/git"}]}
    groomer = {"name": "scheduler-log-groomer", "image": "apache/airflow:3.3.2", "args": ["bash", "/clean-logs"],
               "env": [{"name": "AIRFLOW_HOME", "value": "/opt/airflow"}]}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "airflow-scheduler", "namespace": "airflow"},
                  "spec": {"template": {"metadata": {"labels": {"component": "scheduler"}}, "spec": {
                      "containers": [scheduler, git_sync, groomer],
                      "volumes": [{"name": "config", "configMap": {"name": "airflow-config"}},
                                  {"name": "dags", "emptyDir": {}}]}}}}
    return [Resource(config, "apps/base/airflow/helmrelease.yaml", RELEASE, "airflow/templates/configmaps/configmap.yaml"),
            Resource(deployment, "apps/base/airflow/helmrelease.yaml", RELEASE,
                     "airflow/templates/scheduler/scheduler-deployment.yaml")]


def findings(objects: list[Resource], values: dict[str, Any] | None = None) -> list[str]:
    values = values or {"executor": "KubernetesExecutor", "dags": {"gitSync": {"repo": REPO_URL, "ref": "main"}}}
    helmrelease = Resource({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
                            "metadata": {"name": "airflow", "namespace": "airflow"}}, "apps/base/airflow/helmrelease.yaml",
                           "Kustomization flux-system/apps")
    release = ReleaseRender(helmrelease, "airflow", "airflow", "airflow", "1.22.0", values,
                            objects=[o for o in objects if o.applied_by == RELEASE])
    from airflow_gitops.checks.policies import pod_template_resources
    contract = runtime_contract.Contract(["docker.io/apache/airflow"], "3.3.2", [REPO_URL],
                                         [(REPO_URL, "cluster-vars git_url")], [("main", "cluster-vars git_branch")],
                                         values)
    checked = [*objects, *pod_template_resources(objects)]
    return [f"{f.object}: {f.field}: {f.message}" for f in runtime_contract.check(release, checked, contract)]


# --- mutations of the rendered scheduler ---------------------------------------------------------------------

def container(objects: list[Resource], name: str) -> dict[str, Any]:
    spec = objects[1].obj["spec"]["template"]["spec"]
    return next(c for c in spec["containers"] if c["name"] == name)


def add_env(name: str, *entries: tuple[str, Any]) -> Callable[[list[Resource]], None]:
    def mutate(objects: list[Resource]) -> None:
        for key, value in entries:
            container(objects, name)["env"].append(
                {"name": key, **({"value": value} if isinstance(value, str) else {"valueFrom": value})})
    return mutate


def set_env(name: str, pairs: list[tuple[str, str]]) -> Callable[[list[Resource]], None]:
    def mutate(objects: list[Resource]) -> None:
        container(objects, name)["env"] = [{"name": k, "value": v} for k, v in pairs]
    return mutate


def env_from(name: str, *sources: dict[str, Any], extra: Resource | None = None) -> Callable[[list[Resource]], None]:
    def mutate(objects: list[Resource]) -> None:
        container(objects, name)["envFrom"] = list(sources)
        if extra is not None:
            objects.append(extra)
    return mutate


def configmap(name: str, data: dict[str, str]) -> Resource:
    return Resource({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "airflow"},
                     "data": data}, "apps/base/airflow/extra.yaml", "Kustomization flux-system/apps")


def edit_cfg(old: str, new: str) -> Callable[[list[Resource]], None]:
    def mutate(objects: list[Resource]) -> None:
        objects[0].obj["data"]["airflow.cfg"] = objects[0].obj["data"]["airflow.cfg"].replace(old, new)
    return mutate


def set_field(name: str, key: str, value: Any) -> Callable[[list[Resource]], None]:
    def mutate(objects: list[Resource]) -> None:
        container(objects, name)[key] = value
    return mutate


def mount(name: str, index: int, replacement: dict[str, Any]) -> Callable[[list[Resource]], None]:
    def mutate(objects: list[Resource]) -> None:
        container(objects, name)["volumeMounts"][index] = replacement
    return mutate


def volume(replacement: dict[str, Any]) -> Callable[[list[Resource]], None]:
    def mutate(objects: list[Resource]) -> None:
        objects[1].obj["spec"]["template"]["spec"]["volumes"][0] = replacement
    return mutate


def git_workload(kind: str, repo: str, image: str = "registry.k8s.io/git-sync/git-sync:v4.4.2"
                 ) -> Callable[[list[Resource]], None]:
    def mutate(objects: list[Resource]) -> None:
        pod = {"containers": [{"name": "sync", "image": image, "env": [{"name": "GITSYNC_REPO", "value": repo}]}]}
        body = {"spec": {"template": {"spec": pod}}}
        objects.append(Resource({"apiVersion": "v1" if kind == "ReplicationController" else "apps/v1", "kind": kind,
                                 "metadata": {"name": "extra", "namespace": "airflow"}, **body},
                                "apps/base/extra.yaml", "Kustomization flux-system/apps"))
    return mutate


def pooler_with_image(image: str) -> Callable[[list[Resource]], None]:
    def mutate(objects: list[Resource]) -> None:
        objects.append(Resource({"apiVersion": "postgresql.cnpg.io/v1", "kind": "Pooler",
                                 "metadata": {"name": "p", "namespace": "airflow"},
                                 "spec": {"cluster": {"name": "db"}, "template": {"spec": {"containers": [
                                     {"name": "airflow-sidecar", "image": image}]}}}},
                                "infrastructure/configs/eks/pooler.yaml", "Kustomization flux-system/infra-configs"))
    return mutate


SECRET_REF = {"secretKeyRef": {"name": "s", "key": "k"}}
EXECUTOR = "KubernetesExecutor"
SCHEDULER = r"Deployment airflow/airflow-scheduler: spec.template.spec.containers\[0\]"
GIT_SYNC = r"Deployment airflow/airflow-scheduler: spec.template.spec.containers\[1\]"

# (id, mutation, expected finding as "object: field: message" regex, or None for "no finding")
ROWS: list[tuple[str, Callable[[list[Resource]], None], str | None]] = [
    # executor, through every route
    ("env sets another executor", add_env("scheduler", ("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")),
     rf"{SCHEDULER}.env\[2\].value: container scheduler: \[core\] executor is 'CeleryExecutor'"),
    ("duplicate env: the last one wins (wrong last)", add_env("scheduler", ("AIRFLOW__CORE__EXECUTOR", EXECUTOR),
                                                                ("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")),
     rf"{SCHEDULER}.env\[3\].value: .*executor is 'LocalExecutor'"),
    ("duplicate env: the last one wins (right last)", add_env("scheduler", ("AIRFLOW__CORE__EXECUTOR", "LocalExecutor"),
                                                               ("AIRFLOW__CORE__EXECUTOR", EXECUTOR)), None),
    ("envFrom a ConfigMap", env_from("scheduler", {"configMapRef": {"name": "x"}},
                                     extra=configmap("x", {"AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"})),
     rf"{SCHEDULER}.envFrom\[0\]: .*'CeleryExecutor' \(from ConfigMap airflow/x\)"),
    ("envFrom with a prefix", env_from("scheduler", {"prefix": "AIRFLOW__CORE__", "configMapRef": {"name": "x"}},
                                       extra=configmap("x", {"EXECUTOR": "CeleryExecutor"})),
     rf"{SCHEDULER}.envFrom\[0\]: .*'CeleryExecutor'"),
    ("envFrom: the last source wins", env_from("scheduler", {"configMapRef": {"name": "x"}}, {"secretRef": {"name": "s"}},
                                               extra=configmap("x", {"AIRFLOW__CORE__EXECUTOR": EXECUTOR})),
     rf"{SCHEDULER}.envFrom\[1\]: .*executor comes from Secret airflow/s, which cannot be checked"),
    ("envFrom a Secret: any name may come from it", env_from("scheduler", {"secretRef": {"name": "s"}}),
     rf"{SCHEDULER}.envFrom\[0\]: .*cannot be checked"),
    ("envFrom a ConfigMap not in Git", env_from("scheduler", {"configMapRef": {"name": "elsewhere"}}),
     r"ConfigMap airflow/elsewhere, not in the desired state"),
    ("env overrides envFrom", lambda o: (env_from("scheduler", {"configMapRef": {"name": "x"}},
                                                  extra=configmap("x", {"AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"}))(o),
                                         add_env("scheduler", ("AIRFLOW__CORE__EXECUTOR", EXECUTOR))(o)), None),
    ("envFrom a Secret with a prefix no setting starts with", env_from("scheduler", {
        "prefix": "AIRFLOW_CONN_", "secretRef": {"name": "connections"}}), None),
    ("valueFrom a Secret", add_env("scheduler", ("AIRFLOW__CORE__EXECUTOR", SECRET_REF)),
     rf"{SCHEDULER}.env\[2\].valueFrom: .*Secret airflow/s key k, which cannot be checked"),
    ("$(VAR) expands to another executor", add_env("scheduler", ("X", "CeleryExecutor"),
                                                   ("AIRFLOW__CORE__EXECUTOR", "$(X)")),
     rf"{SCHEDULER}.env\[3\].value: .*'CeleryExecutor' \(from a literal with \$\(X\)\)"),
    ("$(VAR) of a Secret", add_env("scheduler", ("X", SECRET_REF), ("AIRFLOW__CORE__EXECUTOR", "$(X)")),
     r"executor comes from \$\(X\), from Secret airflow/s key k"),
    ("$$(VAR) is a literal", add_env("scheduler", ("X", EXECUTOR), ("AIRFLOW__CORE__EXECUTOR", "$$(X)")),
     r"executor is '\$\(X\)'"),
    ("an _CMD variant", add_env("scheduler", ("AIRFLOW__CORE__EXECUTOR_CMD", "echo CeleryExecutor")),
     r"AIRFLOW__CORE__EXECUTOR_CMD \(a command or a secrets backend\)"),
    ("airflow.cfg (chart value config.core.executor)", edit_cfg("executor = KubernetesExecutor", "executor = CeleryExecutor"),
     rf"{SCHEDULER}.volumeMounts\[1\]: .*'CeleryExecutor' \(from ConfigMap airflow/airflow-config key airflow.cfg \[core\]"),
    ("airflow.cfg executor_cmd", edit_cfg("executor = KubernetesExecutor", "executor_cmd = echo CeleryExecutor"),
     r"airflow.cfg \[core\] executor_cmd"),
    ("airflow.cfg without an executor", edit_cfg("executor = KubernetesExecutor\n", ""),
     r"container scheduler: reads no \[core\] executor"),
    ("AIRFLOW_CONFIG away from the mounted file", add_env("scheduler", ("AIRFLOW_CONFIG", "/tmp/airflow.cfg")),
     r"container scheduler: reads no \[core\] executor"),
    ("AIRFLOW_HOME away from the mounted file", set_env("scheduler", [("AIRFLOW_HOME", "/home/airflow")]),
     r"container scheduler: reads no \[core\] executor"),
    ("airflow.cfg from a Secret volume", volume({"name": "config", "secret": {"secretName": "cfg"}}),
     r"volumeMounts\[1\]: .*executor comes from volume config \(secret\), which cannot be checked"),
    ("a chart value the values check already reports", edit_cfg("= KubernetesExecutor", "= CeleryExecutor"), "values"),
    ("the chart's log groomer reads no Airflow setting", set_env("scheduler-log-groomer", []), None),
    # the worker pods' image and template
    ("worker tag by env", add_env("scheduler", ("AIRFLOW__KUBERNETES_EXECUTOR__WORKER_CONTAINER_TAG", "3.2.0")),
     r"worker pods run tag '3.2.0'"),
    ("worker repository by env", add_env("scheduler", ("AIRFLOW__KUBERNETES_EXECUTOR__WORKER_CONTAINER_REPOSITORY",
                                                       "ghcr.io/attacker/airflow")),
     r"worker pods run 'ghcr.io/attacker/airflow'"),
    ("worker tag in airflow.cfg", edit_cfg("worker_container_tag = 3.3.2", "worker_container_tag = nightly"),
     r"worker pods run tag 'nightly'"),
    ("a pod template of the image", add_env("scheduler", (
        "AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE",
        "/home/airflow/.local/lib/python3.12/site-packages/airflow/providers/cncf/kubernetes/pod_template_file_examples/"
        "dags_in_image_template.yaml")), r"pod_template_file is '/home/airflow/\.local/.*' \(from a literal\), not a "
     r"pod_template_file.yaml"),
    ("a pod template from the DAG volume", mount("scheduler", 0, {"name": "dags",
                                                                  "mountPath": "/opt/airflow/pod_templates"}),
     r"pod_template_file is '/opt/airflow/pod_templates/pod_template_file.yaml'"),
    # git-sync, as git-sync v4 reads it
    ("GIT_SYNC_REPO appended: the last entry wins", add_env("git-sync", ("GIT_SYNC_REPO", ATTACKER)),
     rf"{GIT_SYNC}.env\[6\].value: container git-sync: git-sync clones '{ATTACKER}' \(from GIT_SYNC_REPO\)"),
    ("GITSYNC_REPO appended: GIT_SYNC_REPO still wins (envString)", add_env("git-sync", ("GITSYNC_REPO", ATTACKER)), None),
    ("GITSYNC_REPO alone", set_env("git-sync", [("GITSYNC_REPO", ATTACKER), ("GITSYNC_REF", "main")]),
     rf"git-sync clones '{ATTACKER}' \(from GITSYNC_REPO\)"),
    ("--repo=URL flag", set_field("git-sync", "args", [f"--repo={ATTACKER}"]), r"args\[0\]: .*\(from flag --repo\)"),
    ("--repo URL flag", set_field("git-sync", "args", ["--repo", ATTACKER]), r"args\[1\]: .*\(from flag --repo\)"),
    ("--repo after -- is no flag", set_field("git-sync", "args", ["--", f"--repo={ATTACKER}"]), None),
    ("$(VAR) in a flag", lambda o: (add_env("git-sync", ("R", ATTACKER))(o),
                                    set_field("git-sync", "args", ["--repo=$(R)"])(o)), r"clones '.*attacker/dags.git'"),
    ("repository from a Secret", add_env("git-sync", ("GIT_SYNC_REPO", SECRET_REF)),
     r"git-sync's repository comes from GIT_SYNC_REPO, from Secret airflow/s key k"),
    ("GITSYNC_REF alone does not move v4 off GIT_SYNC_BRANCH", add_env("git-sync", ("GITSYNC_REF", "evil")), None),
    ("--ref flag does not either", set_field("git-sync", "args", ["--ref=evil"]), None),
    ("GIT_SYNC_BRANCH appended", add_env("git-sync", ("GIT_SYNC_BRANCH", "evil")),
     r"git-sync checks out 'evil' \(from GIT_SYNC_BRANCH\), not the branch Flux follows"),
    ("--branch flag", set_field("git-sync", "args", ["--branch=evil"]), r"checks out 'evil' \(from flag --branch\)"),
    ("GIT_SYNC_REV alone", set_env("git-sync", [("GITSYNC_REPO", REPO_URL), ("GIT_SYNC_REV", "deadbeef")]),
     r"checks out 'deadbeef' \(from GIT_SYNC_REV\)"),
    ("GITSYNC_REF when no v3 variable is set", set_env("git-sync", [("GITSYNC_REPO", REPO_URL), ("GITSYNC_REF", "evil")]),
     r"checks out 'evil' \(from GITSYNC_REF\)"),
    ("no ref at all: HEAD", set_env("git-sync", [("GITSYNC_REPO", REPO_URL)]), r"checks out 'HEAD' \(from git-sync's default\)"),
    ("another entrypoint", set_field("git-sync", "command", ["sh", "-c", f"git clone {ATTACKER}"]),
     r"command: container git-sync: replaces git-sync's entrypoint"),
    ("git-sync in a Deployment from Git", git_workload("Deployment", ATTACKER),
     r"Deployment airflow/extra: spec.template.spec.containers\[0\].env\[0\].value: container sync: git-sync clones"),
    ("git-sync in a ReplicationController", git_workload("ReplicationController", ATTACKER),
     r"ReplicationController airflow/extra: .*git-sync clones"),
    # tested images in every object
    ("Airflow in a ReplicationController from Git", git_workload("ReplicationController", REPO_URL,
                                                                  "docker.io/apache/airflow:3.2.0"),
     r"ReplicationController airflow/extra: .*image: container sync: runs 'docker.io/apache/airflow:3.2.0', not the "
     r"tested Airflow 3.3.2"),
    ("Airflow in a Pooler's pod template", pooler_with_image("apache/airflow:3.1.0"),
     r"Pooler airflow/p: spec.template.spec.containers\[0\].image: .*not the tested Airflow"),
    ("Airflow from another repository", pooler_with_image("ghcr.io/attacker/airflow:3.3.2"),
     r"Pooler airflow/p: .*runs Airflow from 'ghcr.io/attacker/airflow:3.3.2'"),
]


def test_the_rendered_scheduler_keeps_the_contract():
    assert findings(chart_objects()) == []


@pytest.mark.parametrize("mutation, expected", [row[1:] for row in ROWS], ids=[row[0] for row in ROWS])
def test_every_route_to_a_contract_setting(mutation, expected):
    objects = copy.deepcopy(chart_objects())
    mutation(objects)
    if expected == "values":  # the values carry it: policies.airflow_contract reports it with the values file
        assert findings(objects, {"executor": "CeleryExecutor", "dags": {"gitSync": {"repo": REPO_URL}}}) == []
        return
    found = findings(objects)
    if expected is None:
        assert found == []
    else:
        assert [line for line in found if re.search(expected, line)], found


# --- the kubelet's expansion, by itself -------------------------------------------------------------------

@pytest.mark.parametrize("text, result", [
    ("$(A)", "a"), ("x$(A)y", "xay"), ("$$(A)", "$(A)"), ("$(B)", "$(B)"), ("$(A", "$(A"), ("$", "$"),
    ("a$b", "a$b"), ("$$", "$"), ("$(A)$(A)", "aa"), ("$(S)", None),
])
def test_expansion_as_the_kubelet_does_it(text, result):
    env = Environment({"A": Value("a", "env[0]"), "S": Value(None, "env[1]", "Secret s")})
    assert expand(text, env, "env[2].value").text == result


# --- end to end through the real chart, where it is at hand ------------------------------------------------

@pytest.mark.chart
@pytest.mark.parametrize("values, expected", [
    ("config:\n  kubernetes_executor:\n    worker_container_tag: 3.2.0\n",
     r"Deployment airflow/[\w-]+: .*volumeMounts\[\d+\]: container [\w-]+: worker pods run tag '3.2.0' "
     r"\(from ConfigMap airflow/airflow-config key airflow.cfg"),
    ("dags:\n  gitSync:\n    env:\n      - name: GIT_SYNC_REPO\n        value: " + ATTACKER + "\n",
     r"container git-sync(-init)?: git-sync clones '" + ATTACKER + r"' \(from GIT_SYNC_REPO\)"),
    ("dagProcessor:\n  env:\n    - name: AIRFLOW__CORE__EXECUTOR\n      value: LocalExecutor\n",
     r"Deployment airflow/airflow-dag-processor: .*container dag-processor: \[core\] executor is 'LocalExecutor'"),
], ids=["config.kubernetes_executor", "dags.gitSync.env", "dagProcessor.env"])
def test_routes_through_the_chart(repo_copy, values, expected):
    from airflow_gitops.checks.validation import validate_cluster

    from tests.helpers import make_settings, skip_for
    path = repo_copy / "charts-values/airflow/kind.yaml"
    path.write_text(path.read_text() + values)
    report = validate_cluster(make_settings(repo_copy), "kind")
    if any(r.unrendered_reason for r in report.state.releases if r.helmrelease.name == "airflow"):
        skip_for("chart", "the rendered contract is not checked without the chart")
    found = [str(f) for f in report.errors]
    assert [line for line in found if re.search(expected, line)], found


# --- postRenderers: what helm-controller applies after the chart ------------------------------------------

def test_post_renderer_images_rewrite_what_the_containers_run():
    """No chart needed: the real post-render step (kustomize, one run per postRenderers entry, as helm-controller's
    Combined renderer) over objects shaped like the chart's."""
    from airflow_gitops.helm_controller import render

    hr = Resource({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
                   "metadata": {"name": "airflow", "namespace": "airflow"},
                   "spec": {"postRenderers": [
                       {"kustomize": {"images": [{"name": "apache/airflow", "newTag": "3.2.0"}]}},
                       {"kustomize": {"images": [{"name": "registry.k8s.io/git-sync/git-sync",
                                                  "newName": "ghcr.io/attacker/git-sync"}]}}]}},
                  "apps/base/airflow/helmrelease.yaml", "Kustomization flux-system/apps")
    objects = chart_objects()
    for patches, images in render.post_renderers(hr):
        objects = render._post_render(objects, patches, hr, images)
    images = [c["image"] for c in objects[1].obj["spec"]["template"]["spec"]["containers"]]
    assert images == ["apache/airflow:3.2.0", "ghcr.io/attacker/git-sync:v4.4.2", "apache/airflow:3.2.0"]


POST_RENDERERS = """\
  postRenderers:
    - kustomize:
        images:
          - name: apache/airflow
            newTag: 3.2.0
        patches:
          - target:
              kind: Deployment
              name: airflow-dag-processor
            patch: |
              apiVersion: apps/v1
              kind: Deployment
              metadata:
                name: airflow-dag-processor
              spec:
                template:
                  spec:
                    containers:
                      - name: git-sync
                        env:
                          - name: GIT_SYNC_BRANCH
                            value: evil
"""


@pytest.mark.chart
def test_post_renderers_through_the_chart(repo_copy):
    from airflow_gitops.checks.validation import validate_cluster

    from tests.helpers import make_settings, skip_for
    path = repo_copy / "apps/base/airflow/helmrelease.yaml"
    path.write_text(path.read_text() + POST_RENDERERS)
    report = validate_cluster(make_settings(repo_copy), "kind")
    if any(r.unrendered_reason for r in report.state.releases if r.helmrelease.name == "airflow"):
        skip_for("chart", "postRenderers are not applied without the chart")
    found = [str(f) for f in report.errors]
    assert [line for line in found if re.search(
        r"Deployment airflow/airflow-dag-processor: spec.template.spec.containers\[\d+\].env\[\d+\].value: container "
        r"git-sync: git-sync checks out 'evil' \(from GIT_SYNC_BRANCH\)", line)], found
    assert [line for line in found if re.search(
        r"Deployment airflow/airflow-scheduler: spec.template.spec.containers\[0\].image: image 'apache/airflow:3.2.0' "
        r"is not the tested Airflow 3.3.2", line)], found
