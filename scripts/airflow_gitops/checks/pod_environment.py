"""What a container receives, read as the kubelet reads it: its environment (envFrom, then env, `$(VAR)` expanded),
its command line, and the content of a file it mounts from a ConfigMap.

The order and precedence are the kubelet's, kubernetes/kubernetes pkg/kubelet/kubelet_pods.go
makeEnvironmentVariables:
- envFrom is processed first, in order: each source writes all its keys (with `prefix`), so a later source
  overrides an earlier one ("When a key exists in multiple sources, the value associated with the last source will
  take precedence", core/v1 Container.envFrom);
- then env, in order: each entry writes its name, so the last entry of a duplicated name wins, and env overrides
  envFrom ("Values defined by an Env with a duplicate key will take precedence");
- an entry's `value` has its `$(VAR)` references expanded against what is defined so far
  (third_party/forked/golang/expansion: `$$` is a literal `$`, an unknown `$(VAR)` stays as written), an empty
  value sets the variable to "", and a `valueFrom` that is optional and missing leaves the name as it was;
- command and args are expanded against the final environment (kubecontainer.ExpandContainerCommandAndArgs).

What comes from a Secret, the downward API or a ConfigMap that is not in the desired state cannot be known here;
it reads as a `Value` with `text` None, so that a policy can refuse what it cannot check."""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airflow_gitops.model import Resource, mapping, sequence, string

# The data of a ConfigMap in the desired state, by (namespace, name); None when it is not there.
ConfigMapLookup = Callable[[str, str], "dict[str, str] | None"]


@dataclass(frozen=True)
class Value:
    """What one variable (or file) holds: `text`, or None when it cannot be known offline; `where` is the field that
    set it, and `source` says what it is read from."""

    text: str | None
    where: str
    source: str = "a literal"

    @property
    def known(self) -> bool:
        return self.text is not None


@dataclass
class Environment:
    values: dict[str, Value] = field(default_factory=dict)
    # (prefix, where, source) of envFrom sources whose keys cannot be known: any name with the prefix may come from
    # them, unless env sets it afterwards.
    opaque: list[tuple[str, str, str]] = field(default_factory=list)

    def get(self, name: str) -> Value | None:
        if name in self.values:
            return self.values[name]
        for prefix, where, source in reversed(self.opaque):
            if name.startswith(prefix):
                return Value(None, where, source)
        return None


def environment(container: dict[str, Any], path: str, namespace: str, configmaps: ConfigMapLookup) -> Environment:
    """The environment the kubelet gives `container` (found at field `path` of its object)."""
    env = Environment()
    for index, source in enumerate(sequence(container.get("envFrom"))):
        _env_from(env, mapping(source), f"{path}.envFrom[{index}]", namespace, configmaps)
    for index, entry in enumerate(sequence(container.get("env"))):
        entry = mapping(entry)
        name = string(entry.get("name"))
        if name:
            value = _env_value(env, entry, f"{path}.env[{index}]", namespace, configmaps)
            if value is not None:
                env.values[name] = value
    return env


def _env_from(env: Environment, source: dict[str, Any], where: str, namespace: str,
              configmaps: ConfigMapLookup) -> None:
    prefix = string(source.get("prefix")) or ""
    ref = mapping(source.get("configMapRef"))
    data = configmaps(namespace, str(ref.get("name"))) if ref.get("name") else None
    if data is not None:
        for key, text in data.items():
            env.values[prefix + key] = Value(str(text), where, f"ConfigMap {namespace}/{ref['name']}")
        return
    described = (f"ConfigMap {namespace}/{ref.get('name')}, not in the desired state" if ref
                 else f"Secret {namespace}/{mapping(source.get('secretRef')).get('name')}")
    for name in [n for n in env.values if n.startswith(prefix)]:
        env.values[name] = Value(None, where, described)
    env.opaque.append((prefix, where, described))


def _env_value(env: Environment, entry: dict[str, Any], where: str, namespace: str,
               configmaps: ConfigMapLookup) -> Value | None:
    """The value one env entry gives its name; None when it leaves the name as it was (optional and missing)."""
    literal = entry.get("value")
    if literal not in (None, ""):
        return expand(str(literal), env, f"{where}.value")
    value_from = mapping(entry.get("valueFrom"))
    if not value_from:
        return Value("", f"{where}.value")
    ref = mapping(value_from.get("configMapKeyRef"))
    if ref:
        data = configmaps(namespace, str(ref.get("name")))
        if data is not None and str(ref.get("key")) in data:
            return Value(str(data[str(ref.get("key"))]), f"{where}.valueFrom",
                         f"ConfigMap {namespace}/{ref.get('name')} key {ref.get('key')}")
        if data is not None and ref.get("optional") is True:
            return None
        return Value(None, f"{where}.valueFrom", f"ConfigMap {namespace}/{ref.get('name')} key {ref.get('key')}, "
                                                 "not in the desired state")
    kind = next(iter(value_from), "valueFrom")
    secret = mapping(value_from.get("secretKeyRef"))
    source = f"Secret {namespace}/{secret.get('name')} key {secret.get('key')}" if secret else f"valueFrom.{kind}"
    return Value(None, f"{where}.valueFrom", source)


def expand(text: str, env: Environment, where: str) -> Value:
    """`$(VAR)` references of `text` expanded as the kubelet does (expansion.Expand): `$$` is `$`, an undefined
    variable stays `$(VAR)`, an unknown one makes the whole value unknown."""
    out: list[str] = []
    sources: list[str] = []
    cursor = 0
    while cursor < len(text):
        char = text[cursor]
        if char != "$" or cursor + 1 >= len(text):
            out.append(char)
            cursor += 1
            continue
        following = text[cursor + 1]
        if following == "$":
            out.append("$")
            cursor += 2
        elif following == "(" and (close := text.find(")", cursor + 2)) >= 0:
            name = text[cursor + 2:close]
            value = env.get(name)
            if value is None:
                out.append(f"$({name})")
            elif not value.known:
                return Value(None, where, f"$({name}), from {value.source}")
            else:
                out.append(value.text or "")
                sources.append(f"$({name})")
            cursor = close + 1
        else:
            out.append("$" + following)
            cursor += 2
    return Value("".join(out), where, f"a literal with {', '.join(sources)}" if sources else "a literal")


def command_line(container: dict[str, Any], env: Environment) -> tuple[list[Value], list[Value]]:
    """(command, args) as the runtime gets them, each expanded against the container's environment."""
    def expanded(key: str) -> list[Value]:
        return [expand(str(item), env, f"{key}[{index}]") for index, item in enumerate(sequence(container.get(key)))]

    return expanded("command"), expanded("args")


def mounted_file(path: str, container: dict[str, Any], pod_spec: dict[str, Any], namespace: str,
                 configmaps: ConfigMapLookup, where: str) -> Value | None:
    """The content of the file at `path` in the container when a volume mount provides it: the deepest mount at or
    above `path`, its subPath, the volume's `items` mapping and the ConfigMap's data. None when no mount covers the
    path (the image's own file); unknown when the volume is not a ConfigMap of the desired state."""
    path = posixpath.normpath(path)
    best = None
    for index, mount in enumerate(sequence(container.get("volumeMounts"))):
        mount_path = posixpath.normpath(str(mapping(mount).get("mountPath") or "/"))
        if (path == mount_path or path.startswith(mount_path.rstrip("/") + "/")) and (
                best is None or len(mount_path) > len(best[1])):
            best = (index, mount_path, mapping(mount))
    if best is None:
        return None
    index, mount_path, mount = best
    inside = posixpath.relpath(path, mount_path) if path != mount_path else ""
    file = posixpath.normpath(posixpath.join(str(mount.get("subPath") or ""), inside)).lstrip("./") if (
        mount.get("subPath") or inside) else ""
    mount_where = f"{where}.volumeMounts[{index}]"
    volume = next((mapping(v) for v in sequence(pod_spec.get("volumes")) if mapping(v).get("name") == mount.get("name")),
                  {})
    source = mapping(volume.get("configMap"))
    if not source:
        kind = next((k for k in volume if k != "name"), "no volume")
        return Value(None, mount_where, f"volume {mount.get('name')} ({kind})")
    key = next((str(mapping(item).get("key")) for item in sequence(source.get("items"))
                if posixpath.normpath(str(mapping(item).get("path"))) == file), None)
    if key is None and not sequence(source.get("items")):
        key = file
    data = configmaps(namespace, str(source.get("name")))
    described = f"ConfigMap {namespace}/{source.get('name')} key {key}"
    if data is None or key is None or key not in data:
        return Value(None, mount_where, f"{described}, not in the desired state")
    return Value(str(data[key]), mount_where, described)


def configmap_lookup(objects: list[Resource]) -> ConfigMapLookup:
    """Find a ConfigMap's data among `objects` (Git and chart output) by namespace and name."""
    found = {(r.namespace, r.name): {str(k): str(v) for k, v in mapping(r.obj.get("data")).items()}
             for r in objects if r.kind == "ConfigMap" and r.api_version == "v1"}
    return lambda namespace, name: found.get((namespace, name))
