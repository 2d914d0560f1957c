"""The tool's side of the comparison with the real Flux CLI (scripts/flux-build-compare.sh, CI job flux-build).

`flux build kustomization NAME --path PATH --kustomization-file FILE --dry-run` (flux2 internal/build/build.go)
builds a Flux Kustomization as kustomize-controller does, without a cluster. Two things differ from a live build,
and both are handled here rather than by loosening the comparison:

- In dry-run mode it cannot read ConfigMaps or Secrets, so postBuild.substituteFrom is skipped (fluxcd/pkg
  kustomize.SubstituteVariables, DryRun). The Kustomization file written here therefore carries the variables the
  tool resolved from cluster-vars as inline postBuild.substitute, which Flux applies itself: Flux still does the
  substitution, only the lookup of the ConfigMap is ours.
- It adds the owner labels kustomize.toolkit.fluxcd.io/name and /namespace (setOwnerLabels) and masks SOPS data
  in Secrets (maskSopsData). The tool's objects get the same labels, which kustomize-controller also sets on the
  cluster; SOPS-encrypted values are masked on both sides, since only the cluster can decrypt them.

Both sides are printed in one canonical shape: objects sorted by kind, namespace and name (kustomize-controller
orders the apply itself), keys sorted, so that any remaining difference is a difference in content.
"""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass
from typing import Any

import yaml

from airflow_gitops import yamltext
from airflow_gitops.kustomize_controller import postbuild
from airflow_gitops.kustomize_controller.api import Kustomization
from airflow_gitops.kustomize_controller.api import kustomizations as flux_kustomizations
from airflow_gitops.kustomize_controller.reconcile import BOOTSTRAP_SOURCE
from airflow_gitops.model import ClusterState, Resource, mapping

OWNER_NAME = "kustomize.toolkit.fluxcd.io/name"
OWNER_NAMESPACE = "kustomize.toolkit.fluxcd.io/namespace"
SOPS_MASK = "**SOPS**"


@dataclass
class FluxKustomization:
    namespace: str
    name: str
    # The path `flux build --path` gets, relative to the repository root.
    path: str
    obj: dict[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def applier(self) -> str:
        return f"Kustomization {self.ref}"


def kustomizations(state: ClusterState) -> list[FluxKustomization]:
    """The root Kustomization (flux bootstrap's, or the one kind-up creates) and every one it leads to."""
    root = state.find("Kustomization", BOOTSTRAP_SOURCE, "flux-system")
    root_obj = root.obj if root is not None else {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": BOOTSTRAP_SOURCE, "namespace": "flux-system"},
        "spec": {"interval": "10m", "path": f"./clusters/{state.name}", "prune": True,
                 "sourceRef": {"kind": "GitRepository", "name": BOOTSTRAP_SOURCE}}}
    found = [_entry(Kustomization.parse(Resource(root_obj, "", "")))]
    for ks in flux_kustomizations(state.resources):
        if ks.id != f"flux-system/{BOOTSTRAP_SOURCE}":
            found.append(_entry(ks))
    return found


def _entry(ks: Kustomization) -> FluxKustomization:
    return FluxKustomization(ks.namespace, ks.name, ks.path.removeprefix("./") or ".", ks.resource.obj)


def kustomization_file(state: ClusterState, ks: FluxKustomization) -> dict[str, Any]:
    """The Kustomization as `flux build --dry-run` should read it: substituteFrom resolved into substitute."""
    obj = copy.deepcopy(ks.obj)
    parsed = Kustomization.parse(Resource(obj, "", ""))
    if parsed.post_build is not None:
        # The same resolution render uses (substituteFrom in order, optional ones skipped, substitute on top).
        variables = postbuild.collect_variables(ClusterState(state.name, resources=state.resources), parsed)
        # The copy written for `flux build` is edited here, not the typed view: it goes out as YAML.
        post_build = obj["spec"]["postBuild"]
        post_build.pop("substituteFrom", None)
        post_build["substitute"] = dict(sorted(variables.items()))
    obj.pop("status", None)
    return obj


def tool_objects(state: ClusterState, ks: FluxKustomization) -> list[dict[str, Any]]:
    """What render says this Kustomization applies, with the owner labels Flux sets."""
    objects = []
    for resource in state.resources:
        if resource.applied_by != ks.applier:
            continue
        obj = copy.deepcopy(resource.obj)
        labels = obj.setdefault("metadata", {}).setdefault("labels", {}) or {}
        labels[OWNER_NAME], labels[OWNER_NAMESPACE] = ks.name, ks.namespace
        # flux build sets commonMetadata after the owner labels (internal/build Build), so it wins a tie.
        labels.update(mapping(mapping(mapping(ks.obj.get("spec")).get("commonMetadata")).get("labels")))
        obj["metadata"]["labels"] = labels
        objects.append(obj)
    return objects


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (values files in ConfigMaps) as literal blocks, so a diff shows the changed line."""


_BlockDumper.add_representer(str, lambda dumper, value: dumper.represent_scalar(
    "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None))


def canonical(objects: list[dict[str, Any]]) -> str:
    """One stream both sides are printed in: sorted objects, sorted keys, a header line naming each object."""
    def key(obj: dict[str, Any]) -> tuple[str, str, str, str]:
        meta = obj.get("metadata") or {}
        return (str(obj.get("kind", "")), str(meta.get("namespace") or ""), str(meta.get("name", "")),
                str(obj.get("apiVersion", "")))

    parts = []
    for obj in sorted((_mask_sops(o) for o in objects if isinstance(o, dict)), key=key):
        kind, namespace, name, api_version = key(obj)
        header = f"# {api_version} {kind} {namespace + '/' if namespace else ''}{name}\n"
        parts.append(header + yaml.dump(obj, Dumper=_BlockDumper, sort_keys=True, width=1_000_000))
    return "---\n".join(parts)


def canonical_text(text: str) -> str:
    """Flux's output read with go-yaml v2's typing, as Kubernetes reads it: a number Flux's substitution made
    stays a number, so that it differs from a string on the tool's side (PyYAML would misread `1e+21`)."""
    return canonical([doc for doc in yamltext.from_yaml_all(text) if doc])


def _mask_sops(obj: dict[str, Any]) -> dict[str, Any]:
    """SOPS-encrypted Secret values as `flux build` prints them (maskSopsData, non-dockerconfigjson case)."""
    if obj.get("kind") != "Secret":
        return obj
    obj = copy.deepcopy(obj)
    whole = "sops" in obj and "mac: ENC[" in yaml.safe_dump(obj.get("sops"))
    if whole:
        del obj["sops"]
    masked_b64 = base64.b64encode(SOPS_MASK.encode()).decode()
    for key, value in list((obj.get("data") or {}).items()):
        try:
            decoded = base64.b64decode(str(value)).decode(errors="replace")
        except ValueError:
            decoded = ""
        if whole or ("sops" in decoded and "ENC[" in decoded):
            obj["data"][key] = masked_b64
    for key, value in list((obj.get("stringData") or {}).items()):
        if whole or ("sops" in str(value) and "ENC[" in str(value)):
            obj["stringData"][key] = SOPS_MASK if whole else masked_b64
    return obj
