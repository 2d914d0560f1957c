"""Local stand-ins for what the DAGs reach outside the cluster, shared by `airflow-gitops dev` and the DAG tests
(tests/dags): the user API (randomuser.me) serving a recorded payload, and Airflow connections in their JSON form.

The payload (randomuser.json, beside this module) is one recorded answer of https://randomuser.me/api/ in its
format: user_processing works offline, and every run gets the same user."""

from __future__ import annotations

import json
import os
from pathlib import Path

RECORDED_PAYLOAD = Path(__file__).resolve().parent / "randomuser.json"


class UserApiStandIn:
    """A local stand-in for https://randomuser.me/: GET /api/ (or /api) answers the recorded payload.

    Binds 127.0.0.1 on PORT (0: a free one), serves from a daemon thread; use as a context manager.
    ``requests`` counts the requests served, for tests.
    """

    def __init__(self, payload_path: str | os.PathLike[str] = RECORDED_PAYLOAD, port: int = 0) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        body = Path(payload_path).read_bytes()
        json.loads(body)  # fail now, not at the first request, if the payload is broken
        stand_in = self
        self.requests = 0

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                stand_in.requests += 1
                if self.path.split("?", 1)[0].rstrip("/") != "/api":
                    self.send_error(404, "only /api/ is served here")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="user-api-stand-in", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> UserApiStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> UserApiStandIn:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def http_connection(host: str, port: int, *, login: str | None = None, password: str | None = None) -> str:
    """An AIRFLOW_CONN_* value (JSON form) for an HTTP connection."""
    conn = {"conn_type": "http", "host": host, "port": port, "schema": "http"}
    if login:
        conn.update(login=login, password=password)
    return json.dumps(conn)


def postgres_connection(url: str) -> str:
    """An AIRFLOW_CONN_* value (JSON form) for a postgresql:// URL."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    return json.dumps(
        {
            "conn_type": "postgres",
            "host": parts.hostname,
            "port": parts.port,
            "login": unquote(parts.username or ""),
            "password": unquote(parts.password or ""),
            "schema": parts.path.lstrip("/"),
        }
    )
