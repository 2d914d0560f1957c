"""Kubernetes Pod Security Standards, checked offline on every pod the desired state makes.

The rules follow k8s.io/pod-security-admission (policy/check_*.go, read at commit 8f84a87 of
kubernetes/pod-security-admission), version by version where a rule changed, so a pod that passes here is
admitted by a namespace labelled `pod-security.kubernetes.io/enforce: <level>` on the cluster's Kubernetes
version. Each violation is one finding naming the file, the object and the exact field.

Levels: `baseline` for every pod; `restricted` for Airflow's own workloads (the Airflow release's chart
objects, postRenderers patches applied, and the worker pod template) and for every pod in a namespace whose
desired state enforces `restricted`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from airflow_gitops.checks.policies import finding
from airflow_gitops.model import Finding, Resource, mapping, pod_templates, sequence

BASELINE, RESTRICTED = "baseline", "restricted"
CHECK = "pod-security"
ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"

# check_capabilities_baseline.go: the container runtime's default set.
BASELINE_CAPABILITIES = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}
# check_sysctls.go: the namespaced, isolated ("safe") sysctls, by the version that allowed them.
SAFE_SYSCTLS = [
    ((1, 0), {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
              "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start"}),
    ((1, 27), {"net.ipv4.ip_local_reserved_ports"}),
    ((1, 29), {"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
               "net.ipv4.tcp_keepalive_probes"}),
    ((1, 32), {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}),
    ((1, 37), {"net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat"}),
]
# check_seLinuxOptions.go
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t"}
SELINUX_TYPES_1_31 = SELINUX_TYPES | {"container_engine_t"}
# check_restrictedVolumes.go: the only inline volume sources `restricted` allows.
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image", "persistentVolumeClaim",
                      "projected", "secret"}
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
CONTAINER_KINDS = ("initContainers", "containers", "ephemeralContainers")
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")

Path = list[Any]
Violation = tuple[Path, str]
# First element of a violation's path that lies in the pod's metadata instead of its spec.
METADATA = "<pod metadata>"


def parse_version(text: str | None) -> tuple[int, int]:
    """`"1.35"` or `"v1.35"` -> (1, 35); anything else means the newest rules."""
    try:
        major, minor = str(text).lstrip("v").split(".")[:2]
        return int(major), int(minor)
    except (ValueError, AttributeError):
        return (1, 99)


def _containers(spec: dict[str, Any]) -> Iterator[tuple[Path, dict[str, Any]]]:
    for key in CONTAINER_KINDS:
        for index, container in enumerate(sequence(spec.get(key))):
            if isinstance(container, dict):
                yield [key, index], container



def _context(node: dict[str, Any]) -> dict[str, Any]:
    return mapping(node.get("securityContext"))


def _name(container: dict[str, Any]) -> str:
    return repr(container.get("name", "?"))


# --- baseline ---------------------------------------------------------------------------------------

def baseline(metadata: dict[str, Any], spec: dict[str, Any], version: tuple[int, int]) -> list[Violation]:
    found: list[Violation] = []
    user_namespace = spec.get("hostUsers") is False
    pod_context = _context(spec)
    for field in ("hostNetwork", "hostPID", "hostIPC"):  # check_hostNamespaces.go
        if spec.get(field):
            found.append(([field], f"{field}: true shares the node's namespace (host namespaces are forbidden)"))
    for index, volume in enumerate(sequence(spec.get("volumes"))):  # check_hostPathVolumes.go
        if isinstance(volume, dict) and "hostPath" in volume:
            found.append((["volumes", index, "hostPath"], f"volume {volume.get('name')!r} mounts a hostPath"))
    found += _sysctls(pod_context, version)
    found += _selinux(["securityContext"], pod_context, version)
    found += _seccomp_type(["securityContext"], pod_context)
    found += _apparmor_field(["securityContext"], pod_context)
    if mapping(pod_context.get("windowsOptions")).get("hostProcess"):  # check_windowsHostProcess.go
        found.append((["securityContext", "windowsOptions", "hostProcess"], "Windows HostProcess pods are forbidden"))
    for key, value in mapping(metadata.get("annotations")).items():  # check_appArmorProfile.go (annotations)
        if str(key).startswith(APPARMOR_ANNOTATION) and value and value != "runtime/default" \
                and not str(value).startswith("localhost/"):
            found.append(([METADATA, "annotations", key],
                          f"AppArmor profile {value!r}: only runtime/default or localhost/* are allowed"))
    for path, container in _containers(spec):
        context = _context(container)
        where = [*path, "securityContext"]
        if context.get("privileged"):  # check_privileged.go
            found.append(([*where, "privileged"], f"container {_name(container)} is privileged"))
        added = set(map(str, sequence(mapping(context.get("capabilities")).get("add"))))
        beyond = sorted(added - BASELINE_CAPABILITIES)  # check_capabilities_baseline.go
        if beyond:
            found.append(([*where, "capabilities", "add"],
                          f"container {_name(container)} adds {', '.join(beyond)}, beyond the default capabilities"))
        for index, port in enumerate(sequence(container.get("ports"))):  # check_hostPorts.go
            if isinstance(port, dict) and port.get("hostPort"):
                found.append(([*path, "ports", index, "hostPort"],
                              f"container {_name(container)} binds host port {port['hostPort']}"))
        proc_mount = context.get("procMount")  # check_procMount_baseline.go (relaxed in user namespaces from 1.35)
        if proc_mount not in (None, "Default") and not (user_namespace and version >= (1, 35)):
            found.append(([*where, "procMount"], f"container {_name(container)} sets procMount {proc_mount!r}"))
        found += _selinux(where, context, version)
        found += _seccomp_type(where, context)
        found += _apparmor_field(where, context)
        if mapping(context.get("windowsOptions")).get("hostProcess"):
            found.append(([*where, "windowsOptions", "hostProcess"], "Windows HostProcess containers are forbidden"))
        if version >= (1, 34):  # check_hostProbesAndhostLifecycle.go
            found += _host_handlers(path, container)
    return found


def _sysctls(pod_context: dict[str, Any], version: tuple[int, int]) -> list[Violation]:
    allowed = set().union(*(names for since, names in SAFE_SYSCTLS if version >= since))
    return [
        (["securityContext", "sysctls", index, "name"], f"sysctl {mapping(sysctl).get('name')!r} is not in the safe set")
        for index, sysctl in enumerate(sequence(pod_context.get("sysctls")))
        if str(mapping(sysctl).get("name")) not in allowed
    ]


def _selinux(where: Path, context: dict[str, Any], version: tuple[int, int]) -> list[Violation]:
    options = mapping(context.get("seLinuxOptions"))
    allowed = SELINUX_TYPES_1_31 if version >= (1, 31) else SELINUX_TYPES
    found = []
    kind = options.get("type") or ""
    if not isinstance(kind, str) or kind not in allowed:
        found.append(([*where, "seLinuxOptions", "type"], f"SELinux type {kind!r} is not allowed"))
    for field in ("user", "role"):
        if options.get(field):
            found.append(([*where, "seLinuxOptions", field], f"a custom SELinux {field} is forbidden"))
    return found


def _seccomp_type(where: Path, context: dict[str, Any]) -> list[Violation]:
    """check_seccompProfile_baseline.go: a type that is set must be RuntimeDefault or Localhost."""
    kind = mapping(context.get("seccompProfile")).get("type")
    if kind is not None and kind not in ("RuntimeDefault", "Localhost"):
        return [([*where, "seccompProfile", "type"], f"seccomp profile {kind} is forbidden")]
    return []


def _apparmor_field(where: Path, context: dict[str, Any]) -> list[Violation]:
    kind = mapping(context.get("appArmorProfile")).get("type")
    if kind not in (None, "RuntimeDefault", "Localhost"):
        return [([*where, "appArmorProfile", "type"], f"AppArmor profile type {kind!r} is forbidden")]
    return []


def _host_handlers(path: Path, container: dict[str, Any]) -> list[Violation]:
    handlers = [([probe], container.get(probe)) for probe in PROBES]
    handlers += [(["lifecycle", hook], mapping(container.get("lifecycle")).get(hook)) for hook in ("postStart", "preStop")]
    found = []
    for where, handler in handlers:
        for action in ("httpGet", "tcpSocket"):
            host = mapping(mapping(handler).get(action)).get("host")
            if host:
                found.append(([*path, *where, action, "host"],
                              f"container {_name(container)} probes or hooks host {host!r}; only the pod itself"))
    return found


# --- restricted -------------------------------------------------------------------------------------

def restricted(metadata: dict[str, Any], spec: dict[str, Any], version: tuple[int, int]) -> list[Violation]:
    found: list[Violation] = []
    windows = mapping(spec.get("os")).get("name") == "windows"
    user_namespace = spec.get("hostUsers") is False and version >= (1, 35)
    pod_context = _context(spec)
    for index, volume in enumerate(sequence(spec.get("volumes"))):  # check_restrictedVolumes.go
        if not isinstance(volume, dict):
            continue
        sources = sorted(set(volume) - {"name"} - RESTRICTED_VOLUMES)
        if sources:
            found.append((["volumes", index, sources[0]],
                          f"volume {volume.get('name')!r} uses {', '.join(sources)}; restricted allows only "
                          f"{', '.join(sorted(RESTRICTED_VOLUMES))}"))
    pod_non_root = pod_context.get("runAsNonRoot")
    if pod_non_root is False and not user_namespace:  # check_runAsNonRoot.go
        found.append((["securityContext", "runAsNonRoot"], "runAsNonRoot must not be false"))
    if pod_context.get("runAsUser") == 0 and not user_namespace:  # check_runAsUser.go
        found.append((["securityContext", "runAsUser"], "runAsUser 0 (root) is forbidden"))
    pod_seccomp = mapping(pod_context.get("seccompProfile")).get("type")
    for path, container in _containers(spec):
        context = _context(container)
        where = [*path, "securityContext"]
        name = _name(container)
        if not windows and context.get("allowPrivilegeEscalation") is not False:  # check_allowPrivilegeEscalation.go
            found.append(([*where, "allowPrivilegeEscalation"], f"container {name} must set allowPrivilegeEscalation: false"))
        if not user_namespace:
            non_root = context.get("runAsNonRoot")
            if non_root is False or (non_root is None and pod_non_root is not True):
                found.append(([*where, "runAsNonRoot"],
                              f"container {name} must run as non-root: set runAsNonRoot: true here or on the pod"))
            if context.get("runAsUser") == 0:
                found.append(([*where, "runAsUser"], f"container {name} runs as user 0 (root)"))
        seccomp = mapping(context.get("seccompProfile")).get("type") or pod_seccomp
        if not windows and seccomp not in ("RuntimeDefault", "Localhost"):  # check_seccompProfile_restricted.go
            found.append(([*where, "seccompProfile", "type"], f"container {name} needs seccomp RuntimeDefault or "
                                                              "Localhost (here or on the pod)"))
        capabilities = mapping(context.get("capabilities"))
        if not windows:  # check_capabilities_restricted.go
            if "ALL" not in [str(c) for c in sequence(capabilities.get("drop"))]:
                found.append(([*where, "capabilities", "drop"], f"container {name} must drop ALL capabilities"))
            extra = sorted(set(map(str, sequence(capabilities.get("add")))) - {"NET_BIND_SERVICE"})
            if extra:
                found.append(([*where, "capabilities", "add"],
                              f"container {name} may add only NET_BIND_SERVICE, not {', '.join(extra)}"))
        if version >= (1, 35) and context.get("procMount") not in (None, "Default"):  # check_procMount_restricted.go
            found.append(([*where, "procMount"], f"container {name} sets procMount {context['procMount']!r}"))
    return found


# --- the policy -------------------------------------------------------------------------------------

def check_pod(metadata: dict[str, Any], spec: dict[str, Any], level: str, version: tuple[int, int]) -> list[Violation]:
    found = baseline(metadata, spec, version)
    if level == RESTRICTED:
        known = {tuple(path) for path, _ in found}
        found += [v for v in restricted(metadata, spec, version) if tuple(v[0]) not in known]
    return found


def namespace_levels(resources: list[Resource]) -> dict[str, str]:
    """The enforced Pod Security level of each Namespace in the desired state."""
    return {
        r.name: str(mapping(mapping(r.obj.get("metadata")).get("labels")).get(ENFORCE_LABEL))
        for r in resources if r.kind == "Namespace" and r.api_version == "v1"
    }


def pod_security(resources: list[Resource], airflow_workloads: list[Resource], kubernetes_version: str | None,
                 namespaces: list[Resource] | None = None) -> list[Finding]:
    """Baseline on `resources`; restricted on `airflow_workloads` and on pods in namespaces enforcing it."""
    version = parse_version(kubernetes_version)
    levels = namespace_levels(namespaces if namespaces is not None else resources)
    airflow_ids = {id(r) for r in airflow_workloads}
    unique = {id(r): r for r in [*resources, *airflow_workloads]}
    findings = []
    for resource in unique.values():
        namespace_level = levels.get(resource.namespace)
        level = RESTRICTED if id(resource) in airflow_ids or namespace_level == RESTRICTED else BASELINE
        for spec_path, metadata, spec in pod_templates(resource):
            if not isinstance(spec, dict):
                continue
            for path, message in check_pod(metadata, spec, level, version):
                if path and path[0] == METADATA:
                    full = [*spec_path[:-1], "metadata", *path[1:]] if spec_path != ["spec"] else ["metadata", *path[1:]]
                else:
                    full = [*spec_path, *path]
                findings.append(finding(resource, full, f"Pod Security {level}: {message}", CHECK))
    return findings


def namespace_labels(resources: list[Resource], restricted_namespaces: set[str]) -> list[Finding]:
    """Pod Security Admission on every Namespace in Git: `baseline` enforced at least, `restricted` where Airflow
    runs, each mode pinned to a version so a Kubernetes upgrade cannot change the rules under running pods."""
    findings = []
    for r in resources:
        if r.kind != "Namespace" or r.api_version != "v1":
            continue
        labels = mapping(mapping(r.obj.get("metadata")).get("labels"))
        want = RESTRICTED if r.name in restricted_namespaces else BASELINE
        allowed = (RESTRICTED,) if want == RESTRICTED else (BASELINE, RESTRICTED)
        enforce = labels.get(ENFORCE_LABEL)
        if enforce not in allowed:
            findings.append(finding(r, ["metadata", "labels", ENFORCE_LABEL],
                                    f"Pod Security Admission must enforce {want}"
                                    f"{'' if want == RESTRICTED else ' at least'}; got {enforce!r}", CHECK))
        for mode in ("enforce", "warn", "audit"):
            key = f"pod-security.kubernetes.io/{mode}-version"
            if not re.fullmatch(r"v1\.\d+", str(labels.get(key, ""))):
                findings.append(finding(r, ["metadata", "labels", key], f"pin the {mode} version (e.g. v1.35, "
                                        f"not {labels.get(key)!r}): 'latest' changes with each Kubernetes upgrade", CHECK))
    return findings
