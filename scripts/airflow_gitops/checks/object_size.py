"""The `object-size` check: objects over Kubernetes' own size limits, which the API server refuses, so Flux's apply
of the whole Kustomization would fail."""

from __future__ import annotations

import base64
import binascii
import json

from airflow_gitops.model import ERROR, Finding, Resource

# Kubernetes' limits: a ConfigMap's or Secret's data (1 MiB, enforced by the API server) and one object in
# etcd (--max-request-bytes, 1.5 MiB by default).
MAX_CONFIG_DATA_BYTES = 1024 * 1024
MAX_OBJECT_BYTES = 1536 * 1024


def object_sizes(resources: list[Resource]) -> list[Finding]:
    """Objects over Kubernetes' own limits: the API server refuses them, so Flux's apply would fail."""
    findings = []
    for r in resources:
        if r.kind in ("ConfigMap", "Secret"):
            total = 0
            for field in ("data", "binaryData", "stringData"):
                values = r.obj.get(field)
                for key, value in (values.items() if isinstance(values, dict) else []):
                    text = str(value)
                    if field == "stringData" or (field == "data" and r.kind == "ConfigMap"):
                        size = len(text.encode())
                    else:
                        try:
                            size = len(base64.b64decode(text))
                        except (binascii.Error, ValueError):
                            size = len(text)
                    total += len(str(key)) + size
            if total > MAX_CONFIG_DATA_BYTES:
                findings.append(Finding(ERROR, r.location, r.ref, "data",
                                        f"{total:,} bytes of data, over Kubernetes' {MAX_CONFIG_DATA_BYTES:,}-byte "
                                        f"limit for a {r.kind}", "object-size"))
                continue
        size = len(json.dumps(r.obj, separators=(",", ":"), default=str))
        if size > MAX_OBJECT_BYTES:
            findings.append(Finding(ERROR, r.location, r.ref, "(root)",
                                    f"{size:,} bytes as JSON, over etcd's {MAX_OBJECT_BYTES:,}-byte request limit",
                                    "object-size"))
    return findings
