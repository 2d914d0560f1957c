"""Content-addressed cache of chart renders under <cache>/renders, so that an unchanged release is not rendered again.

The key is a SHA-256 of everything the Helm SDK's render reads: the chart's content (every file of the folder or the
archive's bytes), the composed values, the release's name and namespace, the Kubernetes version the chart sees, and
the render code's version. The entry holds the SDK's raw output (template -> text); the tool parses and post-renders
it exactly as a fresh render, under the same bounds. An entry is never trusted blindly: one that does not parse, names
another key or fails its checksum is dropped and the release rendered again. The file name is the hex key, so no
input can choose where the cache writes. Writes are atomic (a temporary file, then rename); the folder is kept under
MAX_BYTES by removing the least recently used entries (a hit refreshes an entry's mtime).
AIRFLOW_GITOPS_RENDER_CACHE=0 or --no-render-cache turns it off.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

# Bump when the render call or the entry format changes: older entries then simply stop matching.
FORMAT = 1
MAX_BYTES = 256 * 1024 * 1024
# One entry: an Airflow chart render is ~0.5 MiB; kustomize's output bound (source.bounds) is the ceiling.
MAX_ENTRY_BYTES = 64 * 1024 * 1024

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def sdk_identity() -> str:
    """The Helm SDK's version. It renders with its built-in capabilities (helm's DefaultCapabilities), so it also
    stands for the Kubernetes version the chart's `.Capabilities.KubeVersion` sees."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"helm-python-sdk {version('helm-python-sdk')}"
    except PackageNotFoundError:
        return "helm-python-sdk (unknown version)"


def chart_digest(path: Path) -> str:
    """SHA-256 of a chart: an archive's bytes, or every file of a folder (relative path and content, sorted)."""
    digest = hashlib.sha256()
    if path.is_file():
        with path.open("rb") as archive:
            for block in iter(lambda: archive.read(1 << 20), b""):
                digest.update(block)
        return "archive:" + digest.hexdigest()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        relative = file.relative_to(path).as_posix().encode()
        content = file.read_bytes()
        digest.update(len(relative).to_bytes(8, "big") + relative + len(content).to_bytes(8, "big") + content)
    return "folder:" + digest.hexdigest()


def render_key(chart: str, values: Any, name: str, namespace: str, kube_version: str) -> str:
    identity = {"format": FORMAT, "chart": chart, "values": values, "name": name, "namespace": namespace,
                "kube_version": kube_version}
    # A value JSON cannot hold (a YAML timestamp, binary) is keyed by its repr: still deterministic.
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def _checksum(manifests: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(manifests, sort_keys=True).encode()).hexdigest()


class RenderCache:
    def __init__(self, folder: Path, max_bytes: int = MAX_BYTES) -> None:
        self.folder, self.max_bytes = folder, max_bytes

    def _path(self, key: str) -> Path:
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"render cache key must be a SHA-256 hex digest, got {key!r}")
        return self.folder / key[:2] / f"{key}.json"

    def holds(self, key: str) -> bool:
        """Whether an entry for `key` exists (unchecked: `get` checks it)."""
        return self._path(key).is_file()

    def get(self, key: str) -> dict[str, str] | None:
        """The cached render, or None when absent or not sound (a bad entry is removed)."""
        path = self._path(key)
        try:
            if path.stat().st_size > MAX_ENTRY_BYTES:
                raise ValueError("over the entry size bound")
            entry = json.loads(path.read_text(encoding="utf-8"))
            manifests = entry["manifests"]
            if entry.get("format") != FORMAT or entry.get("key") != key or not isinstance(manifests, dict) or \
                    not all(isinstance(k, str) and isinstance(v, str) for k, v in manifests.items()) or \
                    entry.get("sha256") != _checksum(manifests):
                raise ValueError("entry does not match its key or checksum")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            log.debug("render cache entry %s ignored: %s", path, error)
            path.unlink(missing_ok=True)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # least recently used goes first when pruning
        return manifests

    def put(self, key: str, manifests: dict[str, str]) -> None:
        """Store a render atomically; a cache that cannot be written only costs the next render."""
        path = self._path(key)
        text = json.dumps({"format": FORMAT, "key": key, "sha256": _checksum(manifests), "manifests": manifests},
                          sort_keys=True)
        if len(text) > MAX_ENTRY_BYTES:
            return
        temporary: Path | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, prefix=".tmp-", suffix=".json",
                                             delete=False) as handle:
                temporary = Path(handle.name)
                handle.write(text)
            os.replace(temporary, path)
        except OSError as error:
            log.debug("render cache entry %s not written: %s", path, error)
            if temporary is not None:
                temporary.unlink(missing_ok=True)
            return
        self.prune()

    def prune(self) -> None:
        """Remove the least recently used entries until the folder is under its size cap."""
        try:
            entries = [(p.stat().st_mtime, p.stat().st_size, p) for p in self.folder.glob("??/*.json")]
        except OSError:
            return
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries, key=lambda e: e[0]):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
