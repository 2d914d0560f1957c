"""Pod Security Standards (validate's pod-security check): one test per rule, plus breaking fixtures.

The unit tests run on synthetic pods; the postRenderers fixture goes through the tool's real post-render
path (kustomize patches over rendered objects), so it runs in CI without the Airflow chart. The chart-based
tests skip loudly without the chart.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import pytest
import yaml
from airflow_gitops.checks import pod_security
from airflow_gitops.checks.pod_security import RESTRICTED
from airflow_gitops.checks.validation import validate_cluster
from airflow_gitops.helm_controller import render
from airflow_gitops.model import Resource

from tests import helpers
from tests.helpers import airflow_release, edit, make_settings, skip_for

RESTRICTED_POD = {
    "securityContext": {"runAsNonRoot": True, "runAsUser": 50000, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [{
        "name": "app", "image": "apache/airflow:3.3.2",
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }],
}


def deployment(pod_spec: dict, namespace: str = "airflow", annotations: dict | None = None) -> Resource:
    template = {"metadata": {"labels": {"app": "x"}, "annotations": annotations or {}}, "spec": pod_spec}
    obj = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "app", "namespace": namespace},
           "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template}}
    return Resource(obj, "apps/base/app.yaml", "Kustomization flux-system/apps")


def check(pod_spec: dict, level: str = "baseline", version: str = "1.35", annotations: dict | None = None) -> list[str]:
    resource = deployment(pod_spec, annotations=annotations)
    restricted = [resource] if level == "restricted" else []
    return [f"{f.field}: {f.message}" for f in pod_security.pod_security([resource], restricted, version, [])]


def with_pod(**fields) -> dict:
    spec = copy.deepcopy(RESTRICTED_POD)
    spec.update(fields)
    return spec


def with_container(**context) -> dict:
    spec = copy.deepcopy(RESTRICTED_POD)
    spec["containers"][0]["securityContext"].update(context)
    return spec


# --- the restricted reference pod passes both levels ---------------------------------------------------

def test_a_restricted_pod_passes_restricted():
    assert check(RESTRICTED_POD, "restricted") == []


def test_an_empty_pod_passes_baseline_but_not_restricted():
    bare = {"containers": [{"name": "app", "image": "busybox:1.37"}]}
    assert check(bare) == []
    found = check(bare, "restricted")
    assert any("allowPrivilegeEscalation" in f for f in found)
    assert any("runAsNonRoot" in f for f in found)
    assert any("seccompProfile.type" in f for f in found)
    assert any("capabilities.drop" in f for f in found)


# --- baseline rules -----------------------------------------------------------------------------------

@pytest.mark.parametrize("field", ["hostNetwork", "hostPID", "hostIPC"])
def test_host_namespaces(field):
    assert check(with_pod(**{field: True})) == [
        f"spec.template.spec.{field}: Pod Security baseline: {field}: true shares the node's namespace "
        "(host namespaces are forbidden)"]


def test_privileged_container():
    assert check(with_container(privileged=True)) == [
        "spec.template.spec.containers[0].securityContext.privileged: Pod Security baseline: container 'app' is privileged"]


def test_privileged_init_and_ephemeral_containers_count_too():
    spec = copy.deepcopy(RESTRICTED_POD)
    spec["initContainers"] = [{"name": "init", "image": "x:1", "securityContext": {"privileged": True}}]
    spec["ephemeralContainers"] = [{"name": "debug", "image": "x:1", "securityContext": {"privileged": True}}]
    found = check(spec)
    assert any(f.startswith("spec.template.spec.initContainers[0].securityContext.privileged") for f in found)
    assert any(f.startswith("spec.template.spec.ephemeralContainers[0].securityContext.privileged") for f in found)


def test_host_path_volume():
    found = check(with_pod(volumes=[{"name": "root", "hostPath": {"path": "/"}}]))
    assert found == ["spec.template.spec.volumes[0].hostPath: Pod Security baseline: volume 'root' mounts a hostPath"]


def test_host_port():
    spec = with_pod()
    spec["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": 80}]
    assert check(spec) == ["spec.template.spec.containers[0].ports[0].hostPort: Pod Security baseline: "
                           "container 'app' binds host port 80"]


def test_capabilities_beyond_the_default_set():
    found = check(with_container(capabilities={"add": ["NET_RAW", "SYS_ADMIN", "CHOWN"]}))
    assert found == ["spec.template.spec.containers[0].securityContext.capabilities.add: Pod Security baseline: "
                     "container 'app' adds NET_RAW, SYS_ADMIN, beyond the default capabilities"]


def test_default_capabilities_may_be_added_under_baseline():
    assert check(with_container(capabilities={"add": ["CHOWN", "NET_BIND_SERVICE", "SETUID"]})) == []


def test_unsafe_sysctl():
    spec = with_pod()
    spec["securityContext"]["sysctls"] = [{"name": "kernel.msgmax", "value": "1"},
                                          {"name": "net.ipv4.tcp_syncookies", "value": "1"}]
    assert check(spec) == ["spec.template.spec.securityContext.sysctls[0].name: Pod Security baseline: "
                           "sysctl 'kernel.msgmax' is not in the safe set"]


def test_safe_sysctls_follow_the_kubernetes_version():
    spec = with_pod()
    spec["securityContext"]["sysctls"] = [{"name": "net.ipv4.tcp_rmem", "value": "4096 87380 6291456"}]
    assert check(spec, version="1.35") == []
    assert len(check(spec, version="1.31")) == 1


@pytest.mark.parametrize("proc_mount", ["Unmasked"])
def test_proc_mount(proc_mount):
    assert check(with_container(procMount=proc_mount)) == [
        "spec.template.spec.containers[0].securityContext.procMount: Pod Security baseline: "
        "container 'app' sets procMount 'Unmasked'"]


def test_proc_mount_is_allowed_in_a_user_namespace_under_baseline_only():
    spec = with_container(procMount="Unmasked")
    spec["hostUsers"] = False
    assert check(spec) == []
    assert check(spec, "restricted") == ["spec.template.spec.containers[0].securityContext.procMount: Pod Security "
                                         "restricted: container 'app' sets procMount 'Unmasked'"]


def test_apparmor_unconfined_field_and_annotation():
    found = check(with_container(appArmorProfile={"type": "Unconfined"}),
                  annotations={"container.apparmor.security.beta.kubernetes.io/app": "unconfined"})
    assert "spec.template.spec.containers[0].securityContext.appArmorProfile.type: Pod Security baseline: " \
           "AppArmor profile type 'Unconfined' is forbidden" in found
    assert any(f.startswith("spec.template.metadata.annotations.container.apparmor.security.beta.kubernetes.io/app:")
               for f in found)


def test_apparmor_runtime_default_and_localhost_pass():
    assert check(with_container(appArmorProfile={"type": "Localhost", "localhostProfile": "p"}),
                 annotations={"container.apparmor.security.beta.kubernetes.io/app": "runtime/default"}) == []


def test_selinux_custom_type_user_and_role():
    found = check(with_container(seLinuxOptions={"type": "spc_t", "user": "system_u", "role": "system_r"}))
    assert [f.split(":")[0] for f in found] == [
        "spec.template.spec.containers[0].securityContext.seLinuxOptions.type",
        "spec.template.spec.containers[0].securityContext.seLinuxOptions.user",
        "spec.template.spec.containers[0].securityContext.seLinuxOptions.role",
    ]


def test_selinux_container_engine_type_from_1_31():
    spec = with_container(seLinuxOptions={"type": "container_engine_t"})
    assert check(spec, version="1.31") == []
    assert len(check(spec, version="1.30")) == 1


def test_seccomp_unconfined_is_baseline():
    assert check(with_container(seccompProfile={"type": "Unconfined"})) == [
        "spec.template.spec.containers[0].securityContext.seccompProfile.type: Pod Security baseline: "
        "seccomp profile Unconfined is forbidden"]


def test_windows_host_process():
    assert len(check(with_pod(securityContext={"windowsOptions": {"hostProcess": True}}))) == 1


def test_probe_host_from_1_34():
    spec = with_pod()
    spec["containers"][0]["livenessProbe"] = {"httpGet": {"host": "169.254.169.254", "path": "/", "port": 80}}
    assert check(spec, version="1.33") == []
    assert check(spec, version="1.34") == [
        "spec.template.spec.containers[0].livenessProbe.httpGet.host: Pod Security baseline: container 'app' "
        "probes or hooks host '169.254.169.254'; only the pod itself"]


# --- restricted rules ---------------------------------------------------------------------------------

def test_privilege_escalation_must_be_false():
    spec = copy.deepcopy(RESTRICTED_POD)
    del spec["containers"][0]["securityContext"]["allowPrivilegeEscalation"]
    assert check(spec, "restricted") == [
        "spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation: Pod Security restricted: "
        "container 'app' must set allowPrivilegeEscalation: false"]


def test_run_as_non_root_on_the_pod_or_every_container():
    spec = copy.deepcopy(RESTRICTED_POD)
    del spec["securityContext"]["runAsNonRoot"]
    assert check(spec, "restricted") == [
        "spec.template.spec.containers[0].securityContext.runAsNonRoot: Pod Security restricted: container 'app' "
        "must run as non-root: set runAsNonRoot: true here or on the pod"]
    spec["containers"][0]["securityContext"]["runAsNonRoot"] = True
    assert check(spec, "restricted") == []


def test_a_container_cannot_undo_run_as_non_root():
    assert len(check(with_container(runAsNonRoot=False), "restricted")) == 1


def test_run_as_user_zero():
    found = check(with_container(runAsUser=0), "restricted")
    assert found == ["spec.template.spec.containers[0].securityContext.runAsUser: Pod Security restricted: "
                     "container 'app' runs as user 0 (root)"]


def test_seccomp_must_be_set():
    spec = copy.deepcopy(RESTRICTED_POD)
    del spec["securityContext"]["seccompProfile"]
    assert check(spec, "restricted") == [
        "spec.template.spec.containers[0].securityContext.seccompProfile.type: Pod Security restricted: "
        "container 'app' needs seccomp RuntimeDefault or Localhost (here or on the pod)"]


def test_capabilities_drop_all_and_add_only_net_bind_service():
    assert check(with_container(capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}), "restricted") == []
    found = check(with_container(capabilities={"drop": ["NET_RAW"], "add": ["CHOWN"]}), "restricted")
    assert [f.split(":")[0] for f in found] == [
        "spec.template.spec.containers[0].securityContext.capabilities.drop",
        "spec.template.spec.containers[0].securityContext.capabilities.add",
    ]


def test_restricted_volume_types():
    found = check(with_pod(volumes=[{"name": "nfs", "nfs": {"server": "x", "path": "/"}},
                                    {"name": "ok", "emptyDir": {}}]), "restricted")
    assert found == ["spec.template.spec.volumes[0].nfs: Pod Security restricted: volume 'nfs' uses nfs; restricted "
                     "allows only configMap, csi, downwardAPI, emptyDir, ephemeral, image, persistentVolumeClaim, "
                     "projected, secret"]


def test_windows_pods_are_exempt_from_the_linux_only_restricted_rules():
    bare = {"os": {"name": "windows"}, "securityContext": {"runAsNonRoot": True},
            "containers": [{"name": "app", "image": "x:1"}]}
    assert check(bare, "restricted") == []


def test_a_namespace_enforcing_restricted_makes_git_pods_restricted():
    namespace = Resource({"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "airflow", "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}, "ns.yaml", "k")
    pod = deployment({"containers": [{"name": "app", "image": "x:1"}]})
    found = pod_security.pod_security([pod], [], "1.35", [namespace])
    assert found and all(f.message.startswith("Pod Security restricted") for f in found)
    assert pod_security.pod_security([deployment(RESTRICTED_POD)], [], "1.35", [namespace]) == []


def test_every_pod_making_kind_is_read():
    pod = {"containers": [{"name": "c", "image": "x:1", "securityContext": {"privileged": True}}]}
    objects = {
        "Pod": {"spec": pod},
        "CronJob": {"spec": {"jobTemplate": {"spec": {"template": {"spec": pod}}}}},
        "DaemonSet": {"spec": {"template": {"spec": pod}}},
        "PodTemplate": {"template": {"spec": pod}},
    }
    for kind, body in objects.items():
        resource = Resource({"apiVersion": "v1", "kind": kind, "metadata": {"name": "x", "namespace": "n"}, **body},
                            "f.yaml", "k")
        assert len(pod_security.pod_security([resource], [], "1.35", [])) == 1, kind


def test_malformed_pods_give_findings_not_tracebacks():
    """Broken shapes are the schemas' findings; this check must neither crash nor invent a pass for them."""
    for broken in ({"securityContext": "x", "containers": "y"}, {"containers": [{"name": "c", "securityContext": {
            "capabilities": ["ALL"], "seLinuxOptions": "x", "seccompProfile": 1, "windowsOptions": []},
            "ports": "80", "livenessProbe": "x", "lifecycle": []}], "volumes": {"a": 1},
            "securityContext": {"sysctls": ["kernel.msgmax", {"name": []}], "seccompProfile": [],
                                "seLinuxOptions": {"type": ["x"]}}, "os": "linux"}):
        check(broken)
        check(broken, "restricted")
    assert check(with_pod(securityContext={"sysctls": ["kernel.msgmax"]})) == [
        "spec.template.spec.securityContext.sysctls[0].name: Pod Security baseline: sysctl None is not in the safe set"]


# --- breaking fixtures ----------------------------------------------------------------------------------

PRIVILEGED_HOST_PID_PATCH = {
    "target": {"kind": "Deployment", "name": "airflow-scheduler"},
    "patch": (
        "- op: add\n  path: /spec/template/spec/hostPID\n  value: true\n"
        "- op: add\n  path: /spec/template/spec/containers/-\n"
        "  value: {name: debug, image: 'busybox:1.37', securityContext: {privileged: true}}\n"
    ),
}


def test_post_renderers_patch_adding_a_privileged_host_pid_container_fails_without_the_chart():
    """The real post-render path (kustomize over rendered objects) on a small rendered set; no chart needed."""
    hr = Resource({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
                   "metadata": {"name": "airflow", "namespace": "airflow"}}, "apps/base/airflow/helmrelease.yaml",
                  "Kustomization flux-system/apps")
    scheduler = deployment(copy.deepcopy(RESTRICTED_POD)).obj
    scheduler["metadata"]["name"] = "airflow-scheduler"
    rendered = [Resource(scheduler, hr.source_file, "HelmRelease airflow/airflow",
                         "airflow/templates/scheduler/scheduler-deployment.yaml")]
    assert pod_security.pod_security(rendered, rendered, "1.35", []) == []
    patched = render._post_render(rendered, [PRIVILEGED_HOST_PID_PATCH], hr)
    found = [str(f) for f in pod_security.pod_security(patched, patched, "1.35", [])]
    where = ("apps/base/airflow/helmrelease.yaml (airflow/templates/scheduler/scheduler-deployment.yaml): "
             "Deployment airflow/airflow-scheduler: ")
    assert f"{where}spec.template.spec.hostPID: Pod Security restricted: hostPID: true shares the node's namespace " \
           "(host namespaces are forbidden)" in found
    assert f"{where}spec.template.spec.containers[1].securityContext.privileged: Pod Security restricted: " \
           "container 'debug' is privileged" in found


def pod_security_errors(repo: Path, cluster: str = "kind") -> list[str]:
    return [str(f) for f in validate_cluster(make_settings(repo), cluster).errors if f.check == "pod-security"]


def test_a_privileged_daemonset_in_git_fails(repo_copy):
    # kube-system: a namespace the repository does not label, where baseline holds for every pod (the operators'
    # namespaces enforce restricted).
    (repo_copy / "infrastructure/configs/base/node-agent.yaml").write_text(
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: node-agent\n  namespace: kube-system\nspec:\n"
        "  selector:\n    matchLabels: {app: node-agent}\n  template:\n    metadata:\n      labels: {app: node-agent}\n"
        "    spec:\n      hostNetwork: true\n      containers:\n        - name: agent\n          image: busybox:1.37\n"
        "          securityContext: {privileged: true}\n")
    kustomization = repo_copy / "infrastructure/configs/base/kustomization.yaml"
    kustomization.write_text(kustomization.read_text() + "  - node-agent.yaml\n")
    found = pod_security_errors(repo_copy)
    prefix = "infrastructure/configs/base/node-agent.yaml: DaemonSet kube-system/node-agent: spec.template.spec."
    assert f"{prefix}hostNetwork: Pod Security baseline: hostNetwork: true shares the node's namespace " \
           "(host namespaces are forbidden)" in found
    assert f"{prefix}containers[0].securityContext.privileged: Pod Security baseline: container 'agent' is privileged" \
           in found


def test_a_git_pod_in_the_airflow_namespace_must_be_restricted(repo_copy):
    (repo_copy / "infrastructure/configs/base/debug.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: debug\n  namespace: airflow\nspec:\n"
        "  containers:\n    - name: shell\n      image: busybox:1.37\n")
    kustomization = repo_copy / "infrastructure/configs/base/kustomization.yaml"
    kustomization.write_text(kustomization.read_text() + "  - debug.yaml\n")
    found = pod_security_errors(repo_copy)
    assert "infrastructure/configs/base/debug.yaml: Pod airflow/debug: spec.containers[0].securityContext." \
           "allowPrivilegeEscalation: Pod Security restricted: container 'shell' must set allowPrivilegeEscalation: " \
           "false" in found


# --- on the chart (skip loudly without it) ----------------------------------------------------------------

def test_every_airflow_pod_meets_restricted(rendered_airflow, cluster):
    """Chart objects and the worker pod template of the real values: no exception is needed today."""
    report = validate_cluster(make_settings(), cluster)
    assert [str(f) for f in report.findings if f.check == "pod-security"] == []
    kinds = {r.kind for r in rendered_airflow.objects}
    assert {"Deployment", "StatefulSet", "Job", "CronJob"} <= kinds


def test_operator_namespaces_enforce_restricted_and_their_charts_meet_it(repo_copy):
    """cnpg-system, cert-manager and external-secrets enforce restricted: a chart value that breaks it fails."""
    release = next(r for r in helpers.render("eks").releases if r.helmrelease.name == "external-secrets")
    if release.unrendered_reason:
        skip_for("chart", f"operator chart not rendered: {release.unrendered_reason}")
    namespaces = {r.name: r.obj["metadata"]["labels"] for r in helpers.render("eks").resources
                  if r.kind == "Namespace"}
    for name in ("cnpg-system", "cert-manager", "external-secrets"):
        assert namespaces[name]["pod-security.kubernetes.io/enforce"] == "restricted", name
    assert pod_security_errors(helpers.REPO, "eks") == []
    edit(repo_copy, "infrastructure/controllers/eks/external-secrets.yaml",
         "    podSecurityContext:\n      enabled: true\n      runAsNonRoot: true\n      seccompProfile:\n"
         "        type: RuntimeDefault\n    securityContext:\n      runAsUser: 65532\n",
         "    podSecurityContext:\n      enabled: true\n      runAsNonRoot: true\n      seccompProfile:\n"
         "        type: RuntimeDefault\n    securityContext:\n      runAsUser: 65532\n      "
         "allowPrivilegeEscalation: true\n")
    found = pod_security_errors(repo_copy, "eks")
    assert found == ["infrastructure/controllers/eks/external-secrets.yaml (external-secrets/templates/deployment.yaml): "
                     "Deployment external-secrets/external-secrets: spec.template.spec.containers[0].securityContext."
                     "allowPrivilegeEscalation: Pod Security restricted: container 'external-secrets' must set "
                     "allowPrivilegeEscalation: false"], found


def test_post_renderers_patch_through_the_chart_fails(repo_copy):
    release = airflow_release("kind")
    if release.unrendered_reason:
        skip_for("chart", f"chart checks not run: {release.unrendered_reason}")
    hr = repo_copy / "apps/base/airflow/helmrelease.yaml"
    patch = PRIVILEGED_HOST_PID_PATCH["patch"].replace("\n", "\n              ")
    hr.write_text(hr.read_text() + "  postRenderers:\n    - kustomize:\n        patches:\n"
                  "          - target:\n              kind: Deployment\n              name: airflow-scheduler\n"
                  f"            patch: |\n              {patch}\n")
    found = pod_security_errors(repo_copy)
    assert any(re.match(r"apps/base/airflow/helmrelease.yaml \(airflow/templates/scheduler/scheduler-deployment.yaml\): "
                        r"Deployment airflow/airflow-scheduler: spec.template.spec.hostPID: Pod Security restricted", f)
               for f in found), found
    assert any("securityContext.privileged: Pod Security restricted: container 'debug' is privileged" in f for f in found)


def test_dropping_run_as_non_root_from_the_values_fails(repo_copy):
    release = airflow_release("kind")
    if release.unrendered_reason:
        skip_for("chart", f"chart checks not run: {release.unrendered_reason}")
    values = repo_copy / "charts-values/airflow/common.yaml"
    text = values.read_text()
    assert "    runAsNonRoot: true\n    seccompProfile:\n      type: RuntimeDefault\n  containers:" in text
    values.write_text(text.replace("    runAsNonRoot: true\n    seccompProfile:\n      type: RuntimeDefault\n  containers:",
                                   "  containers:"))
    found = pod_security_errors(repo_copy)
    assert any(f.startswith("apps/base/airflow/helmrelease.yaml (airflow/templates/scheduler/scheduler-deployment.yaml)"
                            ": Deployment airflow/airflow-scheduler: spec.template.spec.containers[0].securityContext."
                            "runAsNonRoot: Pod Security restricted") for f in found), found
    assert any("data.pod_template_file.yaml): Pod placeholder-name: spec.containers" in f for f in found), found


def test_the_dags_pod_override_keeps_the_worker_pod_restricted(monkeypatch):
    """What the KubernetesExecutor launches for parallel_dag's high-CPU task: the template merged with the
    DAG's pod_override by the provider's own PodGenerator.reconcile_pods."""
    release = airflow_release("eks")
    if release.unrendered_reason:
        skip_for("chart", f"chart checks not run: {release.unrendered_reason}")
    import importlib.util

    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator
    from airflow_gitops.checks import policies
    from kubernetes.client import ApiClient

    from tests.helpers import REPO

    template = policies.pod_template_resources(release.objects)[0]
    monkeypatch.syspath_prepend(str(REPO / "dags"))  # the DAG bundle's root, as in Airflow: `import include.*`
    spec = importlib.util.spec_from_file_location("parallel_dag_under_test", REPO / "dags" / "parallel_dag.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    merged = PodGenerator.reconcile_pods(PodGenerator.deserialize_model_dict(template.obj), module.HIGH_CPU_POD_OVERRIDE)
    pod = Resource(ApiClient().sanitize_for_serialization(merged), "dags/parallel_dag.py", template.applied_by,
                   "pod_override over the worker pod template")
    assert pod.obj["spec"]["nodeSelector"] == {"node-pool": "high-cpu"}
    assert [str(f) for f in pod_security.pod_security([pod], [pod], "1.35", [])] == []


def test_agrees_with_the_upstream_pod_security_admission_fixtures():
    """kubernetes/pod-security-admission's own test/testdata (pass/ and fail/ pods per level and version).

    Not vendored here: point AIRFLOW_GITOPS_PSA_TESTDATA at a checkout's test/testdata to run it (it agreed on
    all 1,984 fixtures of v1.23-v1.37 at commit 8f84a87)."""
    folder = os.environ.get("AIRFLOW_GITOPS_PSA_TESTDATA")
    if not folder:
        skip_for("psa-fixtures", "the upstream pod-security-admission fixtures are not vendored here")
    disagreements, total = [], 0
    for level in ("baseline", "restricted"):
        for version_dir in sorted(Path(folder, level).glob("v1.*")):
            version = version_dir.name[1:]
            if pod_security.parse_version(version) < (1, 23):
                continue
            for outcome in ("pass", "fail"):
                for fixture in sorted((version_dir / outcome).glob("*.yaml")):
                    pod = Resource(yaml.safe_load(fixture.read_text()), str(fixture), "fixture")
                    found = pod_security.pod_security([pod], [pod] if level == RESTRICTED else [], version, [])
                    total += 1
                    if bool(found) != (outcome == "fail"):
                        disagreements.append(f"{level} v{version} {outcome}/{fixture.name}: {[f.message for f in found]}")
    assert total > 1000
    assert disagreements == []


NAMESPACES = "infrastructure/controllers/base/namespaces.yaml"


def test_the_airflow_namespace_must_enforce_restricted(repo_copy):
    path = repo_copy / NAMESPACES
    text = path.read_text()
    path.write_text(text.replace("kubernetes.io/enforce: restricted", "kubernetes.io/enforce: baseline"))
    assert f"{NAMESPACES}: Namespace airflow: metadata.labels.pod-security.kubernetes.io/enforce: Pod Security " \
           "Admission must enforce restricted; got 'baseline'" in pod_security_errors(repo_copy)


def test_a_namespace_without_pod_security_labels_fails(repo_copy):
    path = repo_copy / NAMESPACES
    text = path.read_text()
    start = text.index("  name: cnpg-system\n") + len("  name: cnpg-system\n")
    path.write_text(text[:start])
    found = pod_security_errors(repo_copy)
    assert f"{NAMESPACES}: Namespace cnpg-system: metadata.labels.pod-security.kubernetes.io/enforce: Pod Security " \
           "Admission must enforce baseline at least; got None" in found
    assert any(f.startswith(f"{NAMESPACES}: Namespace cnpg-system: metadata.labels.pod-security.kubernetes.io/"
                            "audit-version: pin the audit version") for f in found)


def test_an_unpinned_pod_security_version_fails(repo_copy):
    path = repo_copy / NAMESPACES
    path.write_text(path.read_text().replace("enforce-version: v${kubernetes_version}", "enforce-version: latest", 1))
    assert any(f.startswith(f"{NAMESPACES}: Namespace airflow: metadata.labels.pod-security.kubernetes.io/"
                            "enforce-version: pin the enforce version") for f in pod_security_errors(repo_copy))
