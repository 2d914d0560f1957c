"""Objects that change the whole cluster's trust come only from the places the policy configuration names (issue 16,
class 2).

The rule: an object of one of these classes, from Git or from a chart's output, is an error unless its applier (the
Flux Kustomization or HelmRelease that applies it, as findings name it) is in the class's list in pyproject.toml:

- powerful RBAC (`powerful-rbac-from`): a Role or ClusterRole with a `*` verb, resource or non-resource URL,
  or an escalate, bind or impersonate verb, or one that aggregates (an aggregationRule, or an
  `rbac.authorization.k8s.io/aggregate-to-*` label, which adds its rules to the built-in admin/edit/view); a binding
  to cluster-admin, admin or edit, to a role above, to a ClusterRole that Git does not hold (what it grants is not
  reviewed), or of any role to everyone (system:anonymous, system:unauthenticated, system:authenticated);
- admission control (`admission-control-from`): Mutating/ValidatingWebhookConfiguration and
  Mutating/ValidatingAdmissionPolicy and their bindings;
- API extensions (`api-extensions-from`): CustomResourceDefinitions and APIServices. A CRD of Flux's own API groups
  (`*.toolkit.fluxcd.io`) may come from bootstrap's gotk-components.yaml alone: another would redefine what Flux
  reconciles;
- Namespaces (`namespaces-from`). And a namespace is never made on the side: `install.createNamespace` is refused
  (Helm would create it without Pod Security labels), a HelmRelease's or Kustomization's `targetNamespace` must be a
  Namespace in Git, and every namespace something runs in (a pod, a workload, a CloudNativePG Cluster or Pooler) must
  be a Namespace in Git, where the pod-security check holds it to its labels.
"""

from __future__ import annotations

from collections.abc import Iterator

from airflow_gitops.model import ERROR, Finding, Resource, mapping, pod_templates, sequence, string
from airflow_gitops.policy_config import PolicyConfig

CHECK = "cluster-scope"
BOOTSTRAP_APPLIER = "Kustomization flux-system/flux-system"
POWERFUL_VERBS = ("*", "escalate", "bind", "impersonate")
# Built-in ClusterRoles that grant writes across a namespace or the cluster (Kubernetes "User-facing roles").
POWERFUL_BUILTIN_ROLES = ("cluster-admin", "admin", "edit")
# Built-in ClusterRoles a binding may name without Git holding them: read-only, no Secrets.
HARMLESS_BUILTIN_ROLES = ("view",)
EVERYONE = {("User", "system:anonymous"), ("Group", "system:unauthenticated"), ("Group", "system:authenticated")}
AGGREGATE_LABEL = "rbac.authorization.k8s.io/aggregate-to-"
ADMISSION_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "ValidatingAdmissionPolicy",
                   "ValidatingAdmissionPolicyBinding", "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding")
EXTENSION_KINDS = ("CustomResourceDefinition", "APIService")
FLUX_GROUP_SUFFIX = ".toolkit.fluxcd.io"
# Custom resources whose operator runs pods in their namespace.
POD_MAKING_CUSTOM_KINDS = {("postgresql.cnpg.io", "Cluster"), ("postgresql.cnpg.io", "Pooler")}
KEYS = {"rbac": "powerful-rbac-from", "admission": "admission-control-from", "extensions": "api-extensions-from",
        "namespaces": "namespaces-from"}


def _finding(r: Resource, where: str, message: str) -> Finding:
    return Finding(ERROR, r.location, r.ref, where, message, CHECK)


def cluster_scope(git: list[Resource], everything: list[Resource], policies: PolicyConfig) -> list[Finding]:
    """Every finding of the rule above. `git`: what the Kustomizations apply; `everything`: that and chart output."""
    allowed = {"rbac": policies.powerful_rbac_from, "admission": policies.admission_control_from,
               "extensions": policies.api_extensions_from, "namespaces": policies.namespaces_from}
    roles = {(r.kind, r.namespace if r.kind == "Role" else "", r.name): r for r in everything
             if _is_rbac(r) and r.kind in ("Role", "ClusterRole")}
    findings = []
    for r in everything:
        for category, where, why in _trust_changes(r, roles):
            if r.applied_by not in allowed[category]:
                key = KEYS[category]
                findings.append(_finding(r, where, f"{why}: only the appliers in {key} in pyproject.toml may apply "
                                                   f"it ({', '.join(allowed[category]) or 'none'}), not "
                                                   f"{r.applied_by}"))
        findings += _flux_crd(r)
    findings += _namespaces(git, everything)
    return findings


def _is_rbac(r: Resource) -> bool:
    return r.api_version.startswith("rbac.authorization.k8s.io/")


def _trust_changes(r: Resource, roles: dict[tuple[str, str, str], Resource]) -> Iterator[tuple[str, str, str]]:
    """(category, field, why) for each way the object changes the cluster's trust."""
    group = r.api_version.split("/", 1)[0] if "/" in r.api_version else ""
    if _is_rbac(r) and r.kind in ("Role", "ClusterRole"):
        yield from (("rbac", where, why) for where, why in role_power(r))
    elif _is_rbac(r) and r.kind in ("RoleBinding", "ClusterRoleBinding"):
        yield from (("rbac", where, why) for where, why in binding_power(r, roles))
    elif r.kind in ADMISSION_KINDS and group == "admissionregistration.k8s.io":
        yield "admission", "kind", f"{r.kind} intercepts what the API server admits"
    elif r.kind == "CustomResourceDefinition" and group == "apiextensions.k8s.io":
        yield "extensions", "spec.group", f"a CustomResourceDefinition defines API {_crd_group(r)!r}"
    elif r.kind == "APIService" and group == "apiregistration.k8s.io":
        yield "extensions", "spec.service", "an APIService hands an API group to a service of its choice"
    elif r.kind == "Namespace" and r.api_version == "v1":
        yield "namespaces", "kind", "a Namespace sets the Pod Security every pod in it runs under"


def role_power(r: Resource) -> list[tuple[str, str]]:
    """(field, why) for what makes a Role or ClusterRole powerful; [] when nothing does."""
    found = []
    labels = mapping(mapping(r.obj.get("metadata")).get("labels"))
    for label in sorted(str(k) for k in labels if str(k).startswith(AGGREGATE_LABEL)):
        if str(labels[label]).lower() == "true":
            found.append((f'metadata.labels["{label}"]', f"it aggregates into the built-in role "
                                                         f"{label.removeprefix(AGGREGATE_LABEL)!r}"))
    if r.obj.get("aggregationRule") is not None:
        found.append(("aggregationRule", "it aggregates the rules of every ClusterRole its selector matches"))
    for position, rule in enumerate(sequence(r.obj.get("rules"))):
        rule = mapping(rule)
        verbs = [str(v) for v in sequence(rule.get("verbs"))]
        for verb in POWERFUL_VERBS:
            if verb in verbs:
                found.append((f"rules[{position}].verbs", f"verb {verb!r} "
                              + ("grants every verb" if verb == "*" else "lets its holder grant itself more")))
        for field in ("resources", "nonResourceURLs"):
            if "*" in [str(v) for v in sequence(rule.get(field))]:
                found.append((f"rules[{position}].{field}", f"{field} '*' reaches everything, Secrets included"))
    return found


def binding_power(r: Resource, roles: dict[tuple[str, str, str], Resource]) -> list[tuple[str, str]]:
    """(field, why) for what makes a RoleBinding or ClusterRoleBinding powerful; [] when nothing does."""
    found = []
    ref = mapping(r.obj.get("roleRef"))
    kind, name = string(ref.get("kind")) or "", string(ref.get("name")) or ""
    role = roles.get((kind, r.namespace if kind == "Role" else "", name))
    if kind == "ClusterRole" and name in POWERFUL_BUILTIN_ROLES:
        found.append(("roleRef.name", f"it binds the built-in {name!r}"))
    elif role is not None and (power := role_power(role)):
        found.append(("roleRef.name", f"it binds {kind} {name}, which is powerful ({power[0][1]})"))
    elif role is None and not (kind == "ClusterRole" and name in HARMLESS_BUILTIN_ROLES):
        found.append(("roleRef.name", f"it binds {kind} {name!r}, which Git does not hold: what it grants is not "
                                      "reviewed"))
    for position, subject in enumerate(sequence(r.obj.get("subjects"))):
        subject = mapping(subject)
        if (string(subject.get("kind")), string(subject.get("name"))) in EVERYONE:
            found.append((f"subjects[{position}].name", f"it grants {kind} {name} to everyone "
                                                        f"({subject.get('name')})"))
    return found


def _crd_group(r: Resource) -> str:
    return str(mapping(r.obj.get("spec")).get("group") or "")


def _flux_crd(r: Resource) -> list[Finding]:
    if r.kind != "CustomResourceDefinition" or not _crd_group(r).endswith(FLUX_GROUP_SUFFIX):
        return []
    if r.applied_by == BOOTSTRAP_APPLIER and r.source_file.endswith("/flux-system/gotk-components.yaml"):
        return []
    return [_finding(r, "spec.group", f"redefines Flux's own API {_crd_group(r)!r}: only flux bootstrap's "
                                      "gotk-components.yaml may define it, whatever api-extensions-from says")]


# --- namespaces ----------------------------------------------------------------------------------------------------

def _runs_pods(r: Resource) -> bool:
    group = r.api_version.split("/", 1)[0]
    return any(True for _ in pod_templates(r)) or (group, r.kind) in POD_MAKING_CUSTOM_KINDS


def _namespaces(git: list[Resource], everything: list[Resource]) -> list[Finding]:
    in_git = {r.name for r in git if r.kind == "Namespace" and r.api_version == "v1"}
    findings = []

    def missing(namespace: str) -> str:
        return (f"namespace {namespace!r} is not a Namespace in Git: nothing would hold it to Pod Security labels "
                "(add it, with its labels, where namespaces-from applies Namespaces)")

    for r in git:
        group = r.api_version.split("/", 1)[0]
        spec = mapping(r.obj.get("spec"))
        if r.kind == "HelmRelease" and group == "helm.toolkit.fluxcd.io":
            if mapping(spec.get("install")).get("createNamespace") is True:
                findings.append(_finding(r, "spec.install.createNamespace", "Helm would create the namespace itself, "
                                         "without Pod Security labels: put the Namespace in Git instead"))
            namespace = string(spec.get("targetNamespace")) or r.namespace
            if namespace and namespace not in in_git:
                field = "spec.targetNamespace" if spec.get("targetNamespace") else "metadata.namespace"
                findings.append(_finding(r, field, f"the release installs into {missing(namespace)}"))
        elif r.kind == "Kustomization" and group == "kustomize.toolkit.fluxcd.io":
            target = string(spec.get("targetNamespace"))
            if target and target not in in_git:
                findings.append(_finding(r, "spec.targetNamespace", f"every object it applies goes into "
                                                                    f"{missing(target)}"))
    reported = set()
    for r in everything:
        if r.namespace and r.namespace not in in_git and _runs_pods(r) and (r.applied_by, r.namespace) not in reported:
            reported.add((r.applied_by, r.namespace))
            findings.append(_finding(r, "metadata.namespace", f"it runs pods in {missing(r.namespace)}"))
    return findings

