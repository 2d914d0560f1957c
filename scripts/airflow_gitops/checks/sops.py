"""SOPS-encrypted Secrets in Git, checked the way kustomize-controller sees them.

kustomize-controller decrypts a Secret before it applies it, so the top-level `sops:` block never reaches the API
server: the schema check sees the Secret without it, and this module checks the block on its own. The format is
getsops/sops v3 (stores/stores.go `metadata`, aes/cipher.go): `mac` and every value are
`ENC[AES256_GCM,data:...,iv:...,tag:...,type:...]`, `lastmodified` is RFC 3339, `version` is set, and at least one
key (age, pgp, kms, gcp_kms, azure_kv, hc_vault, hckms; or `key_groups` of them) carries its encrypted data key."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from airflow_gitops.checks import policies
from airflow_gitops.kustomize_controller.api import kustomizations
from airflow_gitops.model import ERROR, Finding, Resource, mapping, sequence

CHECK = "sops"
ENCRYPTED = re.compile(r"^ENC\[AES256_GCM,data:[A-Za-z0-9+/=]*,iv:[A-Za-z0-9+/=]+,tag:[A-Za-z0-9+/=]+,"
                       r"type:(str|int|float|bool|bytes|comment)\]$")
# Fields each master key must carry (stores.go: agekey, pgpkey, kmskey, gcpkmskey, azkvkey, vaultkey, hckmskey).
KEY_FIELDS = {
    "age": ("recipient", "enc"),
    "pgp": ("fp", "enc", "created_at"),
    "kms": ("arn", "enc", "created_at"),
    "gcp_kms": ("resource_id", "enc", "created_at"),
    "azure_kv": ("vault_url", "name", "version", "enc", "created_at"),
    "hc_vault": ("vault_address", "engine_path", "key_name", "enc", "created_at"),
    "hckms": ("key_id", "enc", "created_at"),
}
# sops refuses more than one of these (stores.go ToInternal); any of them could leave data in plaintext.
CRYPT_RULES = ("unencrypted_suffix", "encrypted_suffix", "unencrypted_regex", "encrypted_regex",
               "unencrypted_comment_regex", "encrypted_comment_regex")


def is_sops(resource: Resource) -> bool:
    return resource.kind == "Secret" and "sops" in resource.obj


def without_sops(resource: Resource) -> Resource:
    """The object as kustomize-controller applies it (the values decrypted, which offline we cannot do)."""
    if not is_sops(resource):
        return resource
    obj = {k: v for k, v in resource.obj.items() if k != "sops"}
    return Resource(obj, resource.source_file, resource.applied_by, resource.template)


def check(git_resources: list[Resource]) -> list[Finding]:
    """A `sops:` block on a Secret in Git must be real SOPS metadata over encrypted data, decrypted by its
    Kustomization; a fake block would let a plaintext Secret past the plaintext-secret policy."""
    findings = []
    by_applier = {ks.applier: ks for ks in kustomizations(git_resources)}
    for r in git_resources:
        if "sops" not in r.obj:
            continue
        if r.kind != "Secret":
            continue  # sops can encrypt any file, but only Secrets are decrypted by kustomize-controller
        for path, message in _metadata_problems(r.obj.get("sops")):
            findings.append(policies.finding(r, ["sops", *path], message, CHECK))
        for field in ("data", "stringData"):
            for key, value in mapping(r.obj.get(field)).items():
                if not (isinstance(value, str) and ENCRYPTED.match(value)):
                    findings.append(policies.finding(r, [field, key], "not SOPS-encrypted (ENC[AES256_GCM,...]): a "
                                                     "Secret with a sops block must have every value encrypted", CHECK))
        ks = by_applier.get(r.applied_by)
        if ks is not None and ks.decryption_provider != "sops":
            findings.append(Finding(ERROR, ks.resource.source_file, ks.resource.ref, "spec.decryption.provider",
                                    f"applies the SOPS-encrypted {r.ref} ({r.source_file}) without "
                                    "decryption.provider: sops, so the ciphertext itself would be applied", CHECK))
    return findings


def _metadata_problems(sops: Any) -> list[tuple[list[Any], str]]:
    if not isinstance(sops, dict):
        return [([], "must be SOPS metadata (a mapping)")]
    problems = []
    if not (isinstance(sops.get("mac"), str) and ENCRYPTED.match(sops["mac"])):
        problems.append((["mac"], "missing or not ENC[AES256_GCM,...]: SOPS refuses a file without its MAC"))
    if not (isinstance(sops.get("version"), str) and re.match(r"^\d+\.\d+", sops["version"])):
        problems.append((["version"], "missing or not a SOPS version (e.g. \"3.10.2\")"))
    try:
        datetime.fromisoformat(str(sops.get("lastmodified")).replace("Z", "+00:00"))
    except ValueError:
        problems.append((["lastmodified"], "missing or not an RFC 3339 time"))
    rules = [rule for rule in CRYPT_RULES if sops.get(rule)]
    if len(rules) > 1:
        problems.append(([rules[1]], f"sops refuses more than one of {', '.join(CRYPT_RULES)}"))
    groups = [("", sops)] + [(f"key_groups[{i}].", g) for i, g in enumerate(sequence(sops.get("key_groups")))
                             if isinstance(g, dict)]
    keys = 0
    for prefix, group in groups:
        for kind, fields in KEY_FIELDS.items():
            entries = group.get(kind) or []
            if not isinstance(entries, list):
                problems.append(([prefix + kind], "must be a list of keys"))
                continue
            for index, entry in enumerate(entries):
                missing = [f for f in fields if not (isinstance(entry, dict) and entry.get(f))]
                if missing:
                    problems.append(([f"{prefix}{kind}[{index}]"], f"{kind} key without {', '.join(missing)}"))
                else:
                    keys += 1
    if not keys:
        problems.append(([], "no key group: no age, pgp, kms, gcp_kms, azure_kv, hc_vault or hckms key with its "
                             "encrypted data key, so nothing could decrypt this Secret"))
    return problems
