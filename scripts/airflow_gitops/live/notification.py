"""notification-controller on the local cluster: the EKS Receiver and Alerts (scripts/live/notification.yaml), an
HTTP sink their Providers deliver to, and GitHub-style webhook pushes.

- `Sink`: an HTTP server on 127.0.0.1 that keeps every JSON body posted to it, with its path and arrival time.
  The overlay points the repository's Providers at `<sink>/<provider name>` as `generic` webhooks, so a body is
  the event as notification-controller forwards it (involvedObject, severity, reason, message, metadata).
- `github_push`: a request as GitHub sends it (X-GitHub-Event, X-GitHub-Delivery, X-Hub-Signature-256 = HMAC-SHA256
  of the body with the Receiver's token), answered with its HTTP status.
- `overlay`: the notification overlay with the sink's address, and the Secret the Receiver reads (on EKS External
  Secrets makes it from AWS; here it is played).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import http.server
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from airflow_gitops.live.cluster import FLUX_NAMESPACE, Overlay

OVERLAY = Path(__file__).resolve().parents[2] / "live" / "notification.yaml"
WEBHOOK_SECRET = "flux-webhook-token"
"""The Secret infrastructure/configs/eks/flux-receiver.yaml names (key `token`)."""


@dataclasses.dataclass(frozen=True)
class Delivery:
    path: str
    body: dict[str, Any]
    at: float
    """time.time() when it arrived."""

    @property
    def provider(self) -> str:
        return self.path.strip("/").split("/", 1)[0]

    @property
    def involved(self) -> str:
        obj = self.body.get("involvedObject") or {}
        return f"{obj.get('kind')} {obj.get('namespace')}/{obj.get('name')}"

    def __str__(self) -> str:
        return (f"{self.provider}: {self.involved} {self.body.get('severity')} {self.body.get('reason')}: "
                f"{str(self.body.get('message'))[:200]}")


class Sink:
    """Keeps what is posted to it; `deliveries()` returns it. Start with `start()`, stop with `stop()`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[Delivery] = []
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"unparsed": raw.decode(errors="replace")}
                with sink._lock:
                    sink._received.append(Delivery(self.path, body if isinstance(body, dict) else {"body": body},
                                                   time.time()))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="notification-sink", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Sink:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def deliveries(self, provider: str | None = None, since: float = 0.0) -> list[Delivery]:
        with self._lock:
            found = list(self._received)
        return [d for d in found if d.at >= since and (provider is None or d.provider == provider)]


def webhook_token() -> str:
    return secrets.token_hex(20)


def overlay(sink_url: str, token: str) -> Overlay:
    """The notification overlay, filled with the sink's address, and the Receiver's Secret with `token`."""
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
              "metadata": {"name": WEBHOOK_SECRET, "namespace": FLUX_NAMESPACE,
                           "labels": {"app.kubernetes.io/managed-by": "live-up"}},
              "stringData": {"token": token}}
    return Overlay(OVERLAY, {"sink_url": sink_url}, (secret,))


def github_signature(token: str, body: bytes) -> str:
    """X-Hub-Signature-256 as GitHub computes it (and go-github's ValidatePayload checks it)."""
    return "sha256=" + hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


def push_payload(repository_url: str, branch: str, before: str, after: str) -> dict[str, Any]:
    """The fields of GitHub's `push` event that matter here."""
    name = repository_url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
    return {"ref": f"refs/heads/{branch}", "before": before, "after": after,
            "repository": {"name": name, "full_name": f"local/{name}", "clone_url": repository_url},
            "head_commit": {"id": after}, "pusher": {"name": "live-test"}}


def github_push(url: str, token: str, payload: dict[str, Any], *, event: str = "push",
                signature: str | None = None) -> int:
    """POST `payload` to the Receiver at `url` as GitHub does; `signature` overrides the right one (to send a wrong
    one). Returns the HTTP status notification-controller answers with."""
    body = json.dumps(payload).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/live-test", "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": signature or github_signature(token, body)})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
