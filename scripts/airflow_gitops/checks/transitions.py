"""Changes to an existing object that the API server or an operator's webhook refuses (`validate --base`).

The rule: an object (API group, kind, namespace, name) that the base already applies and the change applies again
must not change a field that is immutable or may only move one way. Such an update is refused on every reconcile, so
the Kustomization that applies it (or the HelmRelease that renders it) fails and holds back everything that depends
on it, while Git says otherwise. A revert is where this bites most: it moves fields back.

Three sources of such rules, each read from the real thing:

- CRD transition rules: `x-kubernetes-validations` whose rule reads `oldSelf`, in the CRDs of the schema folder
  (CloudNativePG's Pooler/ScheduledBackup `spec.cluster`, the whole `spec` of a Backup, a Database's `cluster`,
  `name`, `owner`, locale settings ...). The API server evaluates a transition rule only where the old object has the
  field too, and inside a list only when its items correlate (`x-kubernetes-list-type: map`); so does this.
- Kubernetes' own update validation (k8s.io/kubernetes v1.35 `pkg/apis/*/validation`: `ValidateStatefulSetUpdate`,
  `ValidateDeploymentUpdate`, `ValidateJobSpecUpdate`, `ValidatePersistentVolumeClaimUpdate`,
  `ValidateConfigMapUpdate`/`ValidateSecretUpdate`, `ValidateRoleBindingUpdate`, `ValidateStorageClassUpdate`,
  `ValidatePriorityClassUpdate`).
- CloudNativePG 1.30's validating webhook for `Cluster` (`internal/webhook/v1/cluster_webhook.go`
  `validateClusterChanges`): PostgreSQL major downgrade, storage shrink, walStorage/tablespaces removal, UID/GID,
  `wal_level` to minimal, the HA replication-slot prefix.

A transition rule of a form this module cannot evaluate is reported, never passed over
(tests/engine/test_transitions.py holds every rule of the schema folder to that).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from airflow_gitops.model import ERROR, WARNING, Finding, Resource, mapping, sequence, string

CHECK = "immutable-field"


@dataclass(frozen=True)
class Refusal:
    field: str
    message: str
    # Who refuses, and where its rule is written.
    source: str


def group_of(obj: dict[str, Any]) -> str:
    api_version = str(obj.get("apiVersion") or "")
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def identity(resource: Resource) -> tuple[str, str, str, str]:
    return group_of(resource.obj), resource.kind, resource.namespace, resource.name


# --- CRD transition rules --------------------------------------------------------------------------------------

# A path step: a field name, "[]" for the items of a list whose items correlate by `keys`, "{}" for map values.
Step = tuple[str, tuple[str, ...]]


@dataclass(frozen=True)
class TransitionRule:
    group: str
    kind: str
    path: tuple[Step, ...]
    rule: str
    message: str
    crd_file: str


def _collect(schema: dict[str, Any], path: tuple[Step, ...], out: list[tuple[tuple[Step, ...], str, str]]) -> None:
    for validation in sequence(schema.get("x-kubernetes-validations")):
        rule = string(mapping(validation).get("rule")) or ""
        if re.search(r"\boldSelf\b", rule):
            out.append((path, rule, string(mapping(validation).get("message")) or f"rule {rule!r} failed"))
    for name, child in mapping(schema.get("properties")).items():
        _collect(mapping(child), (*path, (str(name), ())), out)
    if isinstance(schema.get("additionalProperties"), dict):
        _collect(schema["additionalProperties"], (*path, ("{}", ())), out)
    if isinstance(schema.get("items"), dict):
        keys: tuple[str, ...] = ()
        if schema.get("x-kubernetes-list-type") == "map":
            keys = tuple(str(k) for k in sequence(schema.get("x-kubernetes-list-map-keys")))
        # Items of atomic and set lists do not correlate: the API server skips their transition rules.
        _collect(schema["items"], (*path, ("[]", keys)), out)


@lru_cache(maxsize=4)
def transition_rules(folder: Path) -> tuple[TransitionRule, ...]:
    """Every transition rule of every CRD in the schema folder (served versions)."""
    found: list[TransitionRule] = []
    for file in sorted(folder.rglob("*.yaml")):
        for doc in yaml.load_all(file.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = mapping(doc.get("spec"))
            kind, group = str(mapping(spec.get("names")).get("kind")), str(spec.get("group"))
            seen: set[tuple[tuple[Step, ...], str]] = set()
            for version in sequence(spec.get("versions")):
                if not mapping(version).get("served", True):
                    continue
                rules: list[tuple[tuple[Step, ...], str, str]] = []
                _collect(mapping(mapping(mapping(version).get("schema")).get("openAPIV3Schema")), (), rules)
                for path, rule, message in rules:
                    if (path, rule) not in seen:
                        seen.add((path, rule))
                        found.append(TransitionRule(group, kind, path, rule, message, str(file.relative_to(folder))))
    return tuple(found)


_ABSENT = object()


def _pairs(old: Any, new: Any, path: tuple[Step, ...], at: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any, Any]]:
    """(concrete path, old value, new value) wherever both objects have the node the rule sits on."""
    if not path:
        yield at, old, new
        return
    (step, keys), rest = path[0], path[1:]
    if step == "{}":
        old_map, new_map = mapping(old), mapping(new)
        for name in old_map.keys() & new_map.keys():
            yield from _pairs(old_map[name], new_map[name], rest, (*at, name))
    elif step == "[]":
        if not keys:
            return
        old_items = {tuple(mapping(i).get(k) for k in keys): i for i in sequence(old)}
        for index, item in enumerate(sequence(new)):
            key = tuple(mapping(item).get(k) for k in keys)
            if key in old_items:
                yield from _pairs(old_items[key], item, rest, (*at, index))
    else:
        old_map, new_map = mapping(old), mapping(new)
        if step in old_map and step in new_map:
            yield from _pairs(old_map[step], new_map[step], rest, (*at, step))


_WHOLE = re.compile(r"^\s*(self|oldSelf)\s*==\s*(self|oldSelf)\s*$")
_MEMBER = re.compile(r"^\s*(self|oldSelf)((?:\.[A-Za-z_]\w*)+)\s*==\s*(self|oldSelf)((?:\.[A-Za-z_]\w*)+)\s*$")
_HAS = re.compile(r"^\s*has\((self|oldSelf)\.([A-Za-z_]\w*)\)\s*==\s*has\((self|oldSelf)\.([A-Za-z_]\w*)\)\s*$")


class UnsupportedRule(ValueError):
    pass


def _member(value: Any, names: str) -> Any:
    for name in names.strip(".").split("."):
        value = mapping(value).get(name, _ABSENT) if value is not _ABSENT else _ABSENT
    return value


def rule_holds(rule: str, old: Any, new: Any) -> bool:
    """Whether a transition rule of the supported forms holds; UnsupportedRule for any other form."""
    bind = {"self": new, "oldSelf": old}
    if match := _WHOLE.match(rule):
        if match.group(1) == match.group(2):
            return True
        return bool(old == new)
    if (match := _MEMBER.match(rule)) and match.group(2) == match.group(4) and match.group(1) != match.group(3):
        return bool(_member(old, match.group(2)) == _member(new, match.group(2)))
    if (match := _HAS.match(rule)) and match.group(2) == match.group(4) and match.group(1) != match.group(3):
        return (match.group(2) in mapping(bind[match.group(1)])) == (match.group(2) in mapping(bind[match.group(3)]))
    raise UnsupportedRule(rule)


def supported(rule: str) -> bool:
    try:
        rule_holds(rule, None, None)
    except UnsupportedRule:
        return False
    return True


def crd_refusals(old: dict[str, Any], new: dict[str, Any], rules: tuple[TransitionRule, ...]) -> list[Refusal]:
    found: list[Refusal] = []
    for rule in rules:
        if rule.group != group_of(new) or rule.kind != new.get("kind"):
            continue
        for at, old_value, new_value in _pairs(old, new, rule.path):
            where = _field(at)
            source = f"x-kubernetes-validations of the {rule.kind} CRD ({rule.crd_file}), rule `{rule.rule}`"
            try:
                holds = rule_holds(rule.rule, old_value, new_value)
            except UnsupportedRule:
                found.append(Refusal(where, f"cannot evaluate this transition rule offline: {rule.message}",
                                     source + " (unsupported form: check it by hand)"))
                continue
            if not holds:
                found.append(Refusal(where, f"{rule.message} ({_short(old_value)} -> {_short(new_value)})", source))
    return found


# --- Kubernetes' own update validation (k8s.io/kubernetes v1.35.4 pkg/apis/*/validation) ---------------------------

K8S = "Kubernetes 1.35 update validation"
STATEFULSET_MUTABLE = {"replicas", "ordinals", "template", "updateStrategy", "revisionHistoryLimit",
                       "persistentVolumeClaimRetentionPolicy", "minReadySeconds"}


def _immutable(old: dict[str, Any], new: dict[str, Any], *path: str, why: str = "field is immutable",
               source: str = K8S) -> list[Refusal]:
    old_value, new_value = _member(old, ".".join(path)), _member(new, ".".join(path))
    if old_value is _ABSENT and new_value is _ABSENT or old_value == new_value:
        return []
    return [Refusal(".".join(path), f"{why} ({_short(old_value)} -> {_short(new_value)})", source)]


def _statefulset(old: dict[str, Any], new: dict[str, Any]) -> list[Refusal]:
    old_spec, new_spec = mapping(old.get("spec")), mapping(new.get("spec"))
    found = []
    for key in sorted((old_spec.keys() | new_spec.keys()) - STATEFULSET_MUTABLE):
        if old_spec.get(key, _ABSENT) != new_spec.get(key, _ABSENT):
            found.append(Refusal(f"spec.{key}", "updates to statefulset spec for fields other than 'replicas', "
                                 "'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', "
                                 "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden "
                                 f"({_short(old_spec.get(key, _ABSENT))} -> {_short(new_spec.get(key, _ABSENT))})",
                                 f"{K8S}, apps ValidateStatefulSetUpdate"))
    return found


def _selector(old: dict[str, Any], new: dict[str, Any]) -> list[Refusal]:
    return _immutable(old, new, "spec", "selector", source=f"{K8S}, apps (selector of {new.get('kind')})")


def _job(old: dict[str, Any], new: dict[str, Any]) -> list[Refusal]:
    # A Job with a TTL is deleted after it finishes and created anew by the next apply; the chart's Jobs are such,
    # and the rollback waits for them to go (docs/operate.md). A Job without one stays, and then these hold.
    if any("ttlSecondsAfterFinished" in mapping(o.get("spec")) for o in (old, new)):
        return []
    source = f"{K8S}, batch ValidateJobSpecUpdate"
    return [r for name in ("selector", "template", "completionMode", "podFailurePolicy", "backoffLimitPerIndex",
                           "managedBy", "successPolicy")
            for r in _immutable(old, new, "spec", name, source=source)]


def _quantity(value: Any) -> Decimal | None:
    match = re.fullmatch(r"\s*([0-9.]+)\s*([KMGTPE]i?|[mkMGTPE]|)\s*", str(value)) if value is not None else None
    if not match:
        return None
    factors: dict[str, Decimal | int] = {
        "": 1, "m": Decimal("0.001"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
        "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
    try:
        return Decimal(match.group(1)) * Decimal(factors[match.group(2)])
    except InvalidOperation:
        return None


def _shrink(old_size: Any, new_size: Any, where: str, source: str, why: str) -> list[Refusal]:
    old_q, new_q = _quantity(old_size), _quantity(new_size)
    if old_q is not None and new_q is not None and new_q < old_q:
        return [Refusal(where, f"{why} ({old_size} -> {new_size})", source)]
    return []


def _pvc(old: dict[str, Any], new: dict[str, Any]) -> list[Refusal]:
    source = f"{K8S}, core ValidatePersistentVolumeClaimUpdate"
    old_spec, new_spec = mapping(old.get("spec")), mapping(new.get("spec"))
    found = _shrink(_member(old_spec, "resources.requests.storage"), _member(new_spec, "resources.requests.storage"),
                    "spec.resources.requests.storage", source, "field can not be less than status.capacity")
    for key in sorted((old_spec.keys() | new_spec.keys()) - {"resources", "volumeAttributesClassName"}):
        if old_spec.get(key, _ABSENT) != new_spec.get(key, _ABSENT):
            found.append(Refusal(f"spec.{key}", "spec is immutable after creation except resources.requests and "
                                 "volumeAttributesClassName", source))
    return found


def _immutable_data(old: dict[str, Any], new: dict[str, Any]) -> list[Refusal]:
    kind = str(new.get("kind"))
    source = f"{K8S}, core Validate{kind}Update"
    found = _immutable(old, new, "type", source=source) if kind == "Secret" else []
    if old.get("immutable") is True:
        if new.get("immutable") is not True:
            found.append(Refusal("immutable", "field is immutable when `immutable` is set", source))
        for key in ("data", "binaryData", "stringData"):
            if old.get(key, _ABSENT) != new.get(key, _ABSENT):
                found.append(Refusal(key, "field is immutable when `immutable` is set", source))
    return found


def _role_binding(old: dict[str, Any], new: dict[str, Any]) -> list[Refusal]:
    return _immutable(old, new, "roleRef", why="cannot change roleRef",
                      source=f"{K8S}, rbac Validate{new.get('kind')}Update")


def _storage_class(old: dict[str, Any], new: dict[str, Any]) -> list[Refusal]:
    source = f"{K8S}, storage ValidateStorageClassUpdate"
    found = [r for name in ("provisioner", "reclaimPolicy", "volumeBindingMode")
             for r in _immutable(old, new, name, source=source)]
    if mapping(old.get("parameters")) != mapping(new.get("parameters")):
        found.append(Refusal("parameters", "updates to parameters are forbidden", source))
    return found


def _priority_class(old: dict[str, Any], new: dict[str, Any]) -> list[Refusal]:
    source = f"{K8S}, scheduling ValidatePriorityClassUpdate"
    return [*_immutable(old, new, "value", source=source), *_immutable(old, new, "preemptionPolicy", source=source)]


# --- CloudNativePG 1.30's Cluster webhook ------------------------------------------------------------------------

CNPG = "CloudNativePG 1.30 validating webhook, internal/webhook/v1/cluster_webhook.go"
CNPG_DEFAULT_ID = 26  # postgresUID/postgresGID when unset (api/v1 cluster_defaults.go)


def postgres_major(spec: dict[str, Any]) -> int | None:
    """The PostgreSQL major of a Cluster spec: `imageCatalogRef.major`, else the tag of `imageName`."""
    catalog = mapping(spec.get("imageCatalogRef"))
    if "major" in catalog:
        try:
            return int(catalog["major"])
        except (TypeError, ValueError):
            return None
    image = string(spec.get("imageName")) or ""
    match = re.search(r":(\d+)(?:[.\-_@]|$)", image.rsplit("/", 1)[-1])
    return int(match.group(1)) if match else None


def _cnpg_cluster(old: dict[str, Any], new: dict[str, Any]) -> list[Refusal]:
    old_spec, new_spec = mapping(old.get("spec")), mapping(new.get("spec"))
    found: list[Refusal] = []
    old_major, new_major = postgres_major(old_spec), postgres_major(new_spec)
    where = "spec.imageCatalogRef.major" if "imageCatalogRef" in new_spec else "spec.imageName"
    if old_major is not None and new_major is not None:
        if old_major > new_major:
            found.append(Refusal(where, f"can't downgrade from major {old_major} to {new_major}",
                                 f"{CNPG} validateImageChange"))
        elif old_major < new_major < 16:
            found.append(Refusal(where, "major upgrades are only supported to version 16 or higher",
                                 f"{CNPG} validateImageChange"))
    for section in ("storage", "walStorage"):
        found += _shrink(_member(old_spec, f"{section}.size"), _member(new_spec, f"{section}.size"), f"spec.{section}",
                         f"{CNPG} validateStorageConfigurationChange", "can't shrink existing storage")
    if "walStorage" in old_spec and "walStorage" not in new_spec:
        found.append(Refusal("spec.walStorage", "walStorage cannot be disabled once configured",
                             f"{CNPG} validateWalStorageChange"))
    old_spaces = {mapping(t).get("name"): mapping(t) for t in sequence(old_spec.get("tablespaces"))}
    new_spaces = {mapping(t).get("name"): mapping(t) for t in sequence(new_spec.get("tablespaces"))}
    for index, (name, space) in enumerate(old_spaces.items()):
        if name not in new_spaces:
            found.append(Refusal(f"spec.tablespaces[{index}]", f"no tablespace can be deleted once created ({name})",
                                 f"{CNPG} validateTablespacesChange"))
        else:
            found += _shrink(_member(space, "storage.size"), _member(new_spaces[name], "storage.size"),
                             f"spec.tablespaces[{index}]", f"{CNPG} validateTablespacesChange",
                             "can't shrink existing storage")
    for key in ("postgresUID", "postgresGID"):
        if old_spec.get(key, CNPG_DEFAULT_ID) != new_spec.get(key, CNPG_DEFAULT_ID):
            found.append(Refusal(f"spec.{key}", f"{key[-3:]} is an immutable field in the spec",
                                 f"{CNPG} validateUnixPermissionIdentifierChange"))
    old_wal = _member(old_spec, "postgresql.parameters.wal_level")
    new_wal = _member(new_spec, "postgresql.parameters.wal_level")
    if new_wal == "minimal" and old_wal not in (_ABSENT, "", "minimal"):
        found.append(Refusal("spec.postgresql.parameters.wal_level",
                             f"Change of `wal_level` to `minimal` not allowed on an existing cluster (from {old_wal})",
                             f"{CNPG} validateWALLevelChange"))
    old_ha = mapping(_member(old_spec, "replicationSlots.highAvailability"))
    if old_ha and old_ha.get("enabled", True) is not False:
        new_ha = _member(new_spec, "replicationSlots.highAvailability")
        if new_ha is _ABSENT:
            found.append(Refusal("spec.replicationSlots.highAvailability", "Cannot remove the section while "
                                 "highAvailability is enabled", f"{CNPG} validateReplicationSlotsChange"))
        elif mapping(new_ha).get("slotPrefix", "_cnpg_") != old_ha.get("slotPrefix", "_cnpg_"):
            found.append(Refusal("spec.replicationSlots.highAvailability.slotPrefix", "Cannot change replication "
                                 "slot prefix while highAvailability is enabled",
                                 f"{CNPG} validateReplicationSlotsChange"))
    return found


BUILT_IN: dict[tuple[str, str], Callable[[dict[str, Any], dict[str, Any]], list[Refusal]]] = {
    ("apps", "StatefulSet"): _statefulset,
    ("apps", "Deployment"): _selector,
    ("apps", "DaemonSet"): _selector,
    ("apps", "ReplicaSet"): _selector,
    ("batch", "Job"): _job,
    ("", "PersistentVolumeClaim"): _pvc,
    ("", "ConfigMap"): _immutable_data,
    ("", "Secret"): _immutable_data,
    ("rbac.authorization.k8s.io", "RoleBinding"): _role_binding,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): _role_binding,
    ("storage.k8s.io", "StorageClass"): _storage_class,
    ("scheduling.k8s.io", "PriorityClass"): _priority_class,
    ("postgresql.cnpg.io", "Cluster"): _cnpg_cluster,
}


def refusals(old: dict[str, Any], new: dict[str, Any], rules: tuple[TransitionRule, ...]) -> list[Refusal]:
    """What the API server or an operator refuses when `old` (live) is updated to `new`."""
    built_in = BUILT_IN.get((group_of(new), str(new.get("kind"))))
    return [*(built_in(old, new) if built_in else []), *crd_refusals(old, new, rules)]


def refused_changes(base: list[Resource], head: list[Resource], folder: Path | None) -> list[Finding]:
    """A finding for every refused change of an object that both trees apply."""
    rules = transition_rules(folder) if folder is not None else ()
    old_by_id = {identity(r): r for r in base}
    findings: list[Finding] = []
    for resource in head:
        old = old_by_id.get(identity(resource))
        if old is None:
            continue
        for refusal in refusals(old.obj, resource.obj, rules):
            unsupported = refusal.message.startswith("cannot evaluate")
            findings.append(Finding(
                WARNING if unsupported else ERROR, resource.location, resource.ref, refusal.field,
                f"{refusal.message}: {refusal.source}. The update of the existing object is refused, so "
                f"{resource.applied_by} fails on every reconcile and holds back what depends on it. Make it a new "
                "object (a new name, the old one removed) instead: docs/operate.md \"Changes the cluster refuses\"",
                CHECK))
    return findings


def _field(at: tuple[Any, ...]) -> str:
    text = ""
    for part in at:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(root)"


def _short(value: Any) -> str:
    if value is _ABSENT:
        return "(unset)"
    text = yaml.safe_dump(value, default_flow_style=True, width=1_000_000).strip() if not isinstance(value, str) \
        else value
    text = text.removesuffix("\n...").removesuffix(" ...")
    return text if len(text) <= 80 else text[:77] + "..."
