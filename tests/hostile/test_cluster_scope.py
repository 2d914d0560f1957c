"""Issue 16, class 2: objects that change the whole cluster's trust come only from the appliers the policy
configuration names (checks/cluster_scope.py), and every namespace anything runs in is a Namespace in Git.

Each row of GIT_VARIANTS adds objects to a copy of the repository where Flux's infra-configs Kustomization applies them
(an applier no list names); each of CHART_VARIANTS is an object as a chart not named for it would render it. Every
variant must be a `cluster-scope` finding naming the file, the object and the field."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from airflow_gitops.checks import cluster_scope
from airflow_gitops.model import Resource
from airflow_gitops.pipeline import render_cluster
from airflow_gitops.policy_config import PolicyConfig

from tests.helpers import REPO, edit, make_settings

CONFIGS = "infrastructure/configs/kind"
FILE = f"{CONFIGS}/extra.yaml"
AIRFLOW_HR = "apps/base/airflow/helmrelease.yaml"


def add(repo: Path, text: str) -> None:
    (repo / FILE).write_text(textwrap.dedent(text))
    edit(repo, f"{CONFIGS}/kustomization.yaml", "resources:\n", "resources:\n  - extra.yaml\n")


def rbac(kind: str, name: str, body: str, namespace: str | None = None) -> str:
    meta = f"{{name: {name}{f', namespace: {namespace}' if namespace else ''}}}"
    return f"apiVersion: rbac.authorization.k8s.io/v1\nkind: {kind}\nmetadata: {meta}\n{textwrap.dedent(body)}"


def binding(kind: str, role_kind: str, role: str, subject: str = "{kind: ServiceAccount, name: x, namespace: airflow}",
            namespace: str | None = None) -> str:
    return rbac(kind, "extra", f"roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: {role_kind}, name: {role}}}\n"
                               f"subjects: [{subject}]\n", namespace)


def role(kind: str, rules: str, labels: str = "", namespace: str | None = None) -> str:
    return rbac(kind, "extra", f"rules: {rules}\n", namespace).replace(
        "metadata: {name: extra", f"metadata: {{{labels}name: extra" if labels else "metadata: {name: extra")


DEPLOYMENT = """
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: extra, namespace: elsewhere}
    spec:
      selector: {matchLabels: {app: x}}
      template:
        metadata: {labels: {app: x}}
        spec: {containers: [{name: x, image: "docker.io/apache/airflow:3.3.2"}]}
    """

# (id, objects added, object, field, message)
GIT_VARIANTS = [
    ("crb-cluster-admin", binding("ClusterRoleBinding", "ClusterRole", "cluster-admin"),
     "ClusterRoleBinding extra", "roleRef.name", "binds the built-in 'cluster-admin'.*powerful-rbac-from"),
    ("rb-admin", binding("RoleBinding", "ClusterRole", "admin", namespace="airflow"), "RoleBinding airflow/extra",
     "roleRef.name", "binds the built-in 'admin'"),
    ("rb-edit", binding("RoleBinding", "ClusterRole", "edit", namespace="airflow"), "RoleBinding airflow/extra",
     "roleRef.name", "binds the built-in 'edit'"),
    ("verb-star", role("ClusterRole", '[{apiGroups: [""], resources: [pods], verbs: ["*"]}]'), "ClusterRole extra",
     r"rules\[0\].verbs", "verb '\\*' grants every verb"),
    ("verb-escalate", role("Role", '[{apiGroups: [rbac.authorization.k8s.io], resources: [roles], verbs: [escalate]}]',
                           namespace="airflow"), "Role airflow/extra", r"rules\[0\].verbs", "verb 'escalate'"),
    ("verb-bind", role("ClusterRole", '[{apiGroups: [rbac.authorization.k8s.io], resources: [clusterroles], '
                                      'verbs: [bind]}]'), "ClusterRole extra", r"rules\[0\].verbs", "verb 'bind'"),
    ("verb-impersonate", role("ClusterRole", '[{apiGroups: [""], resources: [users, groups], verbs: [impersonate]}]'),
     "ClusterRole extra", r"rules\[0\].verbs", "verb 'impersonate'"),
    ("resources-star", role("ClusterRole", '[{apiGroups: ["*"], resources: ["*"], verbs: [get, list]}]'),
     "ClusterRole extra", r"rules\[0\].resources", "resources '\\*'"),
    ("non-resource-star", role("ClusterRole", '[{nonResourceURLs: ["*"], verbs: [get]}]'), "ClusterRole extra",
     r"rules\[0\].nonResourceURLs", "nonResourceURLs '\\*'"),
    ("aggregate-to-admin", role("ClusterRole", '[{apiGroups: [""], resources: [secrets], verbs: [get]}]',
                                'labels: {rbac.authorization.k8s.io/aggregate-to-admin: "true"}, '),
     "ClusterRole extra", r'metadata.labels\["rbac.authorization.k8s.io/aggregate-to-admin"\]',
     "aggregates into the built-in role 'admin'"),
    ("aggregation-rule", rbac("ClusterRole", "extra", "aggregationRule: {clusterRoleSelectors: [{matchLabels: "
                                                      "{rbac.authorization.k8s.io/aggregate-to-admin: 'true'}}]}\n"
                                                      "rules: []\n"),
     "ClusterRole extra", "aggregationRule", "aggregates the rules"),
    ("binding-to-role-not-in-git", binding("ClusterRoleBinding", "ClusterRole",
                                           "system:controller:clusterrole-aggregation-controller"),
     "ClusterRoleBinding extra", "roleRef.name", "which Git does not hold"),
    ("binding-to-powerful-role-in-git", role("ClusterRole", '[{apiGroups: [""], resources: [pods], verbs: ["*"]}]')
     + "---\n" + binding("ClusterRoleBinding", "ClusterRole", "extra"),
     "ClusterRoleBinding extra", "roleRef.name", "binds ClusterRole extra, which is powerful"),
    ("view-to-anonymous", binding("ClusterRoleBinding", "ClusterRole", "view", "{kind: User, name: system:anonymous}"),
     "ClusterRoleBinding extra", r"subjects\[0\].name", "to everyone"),
    ("view-to-unauthenticated", binding("ClusterRoleBinding", "ClusterRole", "view",
                                        "{kind: Group, name: system:unauthenticated}"),
     "ClusterRoleBinding extra", r"subjects\[0\].name", "to everyone"),
    ("view-to-authenticated", binding("RoleBinding", "ClusterRole", "view", "{kind: Group, name: system:authenticated}",
                                      namespace="airflow"), "RoleBinding airflow/extra", r"subjects\[0\].name",
     "to everyone"),
    ("validating-webhook", """
        apiVersion: admissionregistration.k8s.io/v1
        kind: ValidatingWebhookConfiguration
        metadata: {name: extra}
        webhooks: []
        """, "ValidatingWebhookConfiguration extra", "kind", "admission-control-from"),
    ("mutating-webhook", """
        apiVersion: admissionregistration.k8s.io/v1
        kind: MutatingWebhookConfiguration
        metadata: {name: extra}
        webhooks: []
        """, "MutatingWebhookConfiguration extra", "kind", "admission-control-from"),
    ("admission-policy", """
        apiVersion: admissionregistration.k8s.io/v1
        kind: ValidatingAdmissionPolicy
        metadata: {name: extra}
        spec: {failurePolicy: Ignore, validations: [{expression: "true"}]}
        ---
        apiVersion: admissionregistration.k8s.io/v1
        kind: ValidatingAdmissionPolicyBinding
        metadata: {name: extra}
        spec: {policyName: extra, validationActions: [Deny]}
        """, "ValidatingAdmissionPolicyBinding extra", "kind", "admission-control-from"),
    ("crd", """
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata: {name: widgets.example.com}
        spec:
          group: example.com
          names: {kind: Widget, plural: widgets}
          scope: Namespaced
          versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}]
        """, "CustomResourceDefinition widgets.example.com", "spec.group", "api-extensions-from"),
    ("crd-redefines-flux", """
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata: {name: kustomizations.kustomize.toolkit.fluxcd.io}
        spec:
          group: kustomize.toolkit.fluxcd.io
          names: {kind: Kustomization, plural: kustomizations}
          scope: Namespaced
          versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}]
        """, "CustomResourceDefinition kustomizations.kustomize.toolkit.fluxcd.io", "spec.group",
     "redefines Flux's own API"),
    ("apiservice", """
        apiVersion: apiregistration.k8s.io/v1
        kind: APIService
        metadata: {name: v1beta1.metrics.k8s.io}
        spec: {group: metrics.k8s.io, version: v1beta1, groupPriorityMinimum: 100, versionPriority: 100,
               service: {name: x, namespace: airflow}}
        """, "APIService v1beta1.metrics.k8s.io", "spec.service", "api-extensions-from"),
    ("namespace-from-another-applier", """
        apiVersion: v1
        kind: Namespace
        metadata:
          name: extra
          labels: {pod-security.kubernetes.io/enforce: baseline}
        """, "Namespace extra", "kind", "namespaces-from"),
    ("pods-in-a-namespace-not-in-git", DEPLOYMENT, "Deployment elsewhere/extra", "metadata.namespace",
     "runs pods in namespace 'elsewhere' is not a Namespace in Git"),
    ("cnpg-cluster-in-a-namespace-not-in-git", """
        apiVersion: postgresql.cnpg.io/v1
        kind: Cluster
        metadata: {name: extra, namespace: elsewhere}
        spec: {instances: 1, storage: {size: 1Gi}}
        """, "Cluster elsewhere/extra", "metadata.namespace", "runs pods in namespace 'elsewhere'"),
    ("kustomization-target-namespace", """
        apiVersion: kustomize.toolkit.fluxcd.io/v1
        kind: Kustomization
        metadata: {name: extra, namespace: flux-system}
        spec: {interval: 10m, path: ./apps/kind, prune: true, targetNamespace: elsewhere,
               sourceRef: {kind: GitRepository, name: flux-system}}
        """, "Kustomization flux-system/extra", "spec.targetNamespace", "goes into namespace 'elsewhere'"),
]

# Mutations of the Airflow HelmRelease: a namespace a release would make for itself.
RELEASE_VARIANTS = [
    ("create-namespace", "  install:\n", "  install:\n    createNamespace: true\n", "spec.install.createNamespace",
     "Helm would create the namespace itself"),
    ("target-namespace", "spec:\n", "spec:\n  targetNamespace: elsewhere\n", "spec.targetNamespace",
     "installs into namespace 'elsewhere' is not a Namespace in Git"),
]


def scope_findings(repo: Path, cluster: str = "kind", extra: list[Resource] | None = None) -> list[str]:
    state = render_cluster(make_settings(repo), cluster, charts=False)
    return [str(f) for f in cluster_scope.cluster_scope(state.resources, [*state.all_resources, *(extra or [])],
                                                       PolicyConfig.load(repo))]


def test_the_repository_keeps_the_rule():
    for cluster in ("kind", "eks"):
        assert scope_findings(REPO, cluster) == []


@pytest.mark.parametrize("objects, obj, field, message", [v[1:] for v in GIT_VARIANTS], ids=[v[0] for v in GIT_VARIANTS])
def test_every_git_variant_is_refused(repo_copy, objects, obj, field, message):
    add(repo_copy, objects)
    found = scope_findings(repo_copy)
    assert [line for line in found if re.match(rf"{re.escape(FILE)}: {re.escape(obj)}: {field}: .*{message}", line)], \
        found


@pytest.mark.parametrize("old, new, field, message", [v[1:] for v in RELEASE_VARIANTS],
                         ids=[v[0] for v in RELEASE_VARIANTS])
def test_a_release_never_makes_its_own_namespace(repo_copy, old, new, field, message):
    edit(repo_copy, AIRFLOW_HR, old, new)
    found = scope_findings(repo_copy)
    assert [line for line in found if line.startswith(f"{AIRFLOW_HR}: HelmRelease airflow/airflow: {field}: ")
            and message in line], found


def chart_object(obj: dict, applier: str = "HelmRelease airflow/airflow") -> Resource:
    return Resource(obj, AIRFLOW_HR, applier, "airflow/templates/extra.yaml")


CHART_VARIANTS = [
    ("chart-cluster-admin", chart_object({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "extra"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "airflow-worker", "namespace": "airflow"}]}),
     "ClusterRoleBinding extra: roleRef.name: it binds the built-in 'cluster-admin'"),
    ("chart-webhook", chart_object({"apiVersion": "admissionregistration.k8s.io/v1",
                                    "kind": "MutatingWebhookConfiguration", "metadata": {"name": "extra"}}),
     "MutatingWebhookConfiguration extra: kind: "),
    ("chart-namespace", chart_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "extra"}}),
     "Namespace extra: kind: "),
    ("chart-pod-in-kube-system", chart_object({"apiVersion": "v1", "kind": "Pod",
                                               "metadata": {"name": "extra", "namespace": "kube-system"},
                                               "spec": {"containers": [{"name": "x", "image": "x:1.0.0"}]}}),
     "Pod kube-system/extra: metadata.namespace: it runs pods in namespace 'kube-system'"),
    ("allowed-chart-redefines-flux", chart_object({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "helmreleases.helm.toolkit.fluxcd.io"}, "spec": {"group": "helm.toolkit.fluxcd.io"}},
        "HelmRelease cnpg-system/cloudnative-pg"),
     "CustomResourceDefinition helmreleases.helm.toolkit.fluxcd.io: spec.group: redefines Flux's own API"),
]


@pytest.mark.parametrize("obj, expected", [v[1:] for v in CHART_VARIANTS], ids=[v[0] for v in CHART_VARIANTS])
def test_every_chart_output_variant_is_refused(obj, expected):
    found = scope_findings(REPO, extra=[obj])
    assert [line for line in found if line.startswith(f"{obj.location}: {expected}")], found


def test_an_allowed_applier_may_apply_what_its_list_names():
    """The control: the same ClusterRoleBinding from an applier in powerful-rbac-from is no finding."""
    obj = chart_object({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "extra"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "x", "namespace": "external-secrets"}]},
        "HelmRelease external-secrets/external-secrets")
    assert scope_findings(REPO, extra=[obj]) == []
