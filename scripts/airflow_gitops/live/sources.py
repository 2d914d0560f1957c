"""The local cluster's sources: a Git server over smart HTTP and a Helm chart repository, on 127.0.0.1.

source-controller clones with go-git, which speaks only Git's smart HTTP protocol; Debian's `git http-backend`
(a CGI program) is what serves it, run here behind the standard library's HTTP server. Everything under
``/git/`` goes to it (read-only: tests push by file path into the bare repository, as a user pushes to a remote).
``/charts/`` serves a folder of chart packages with the ``index.yaml`` that ``helm repo index`` wrote.

Run as ``python -m airflow_gitops.live.sources --root DIR --port N``: a process of its own, so that it outlives
``make live-up``; it stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import http.server
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

GIT_HTTP_BACKEND = ("/usr/lib/git-core/git-http-backend", "/usr/libexec/git-core/git-http-backend")


def http_backend() -> str:
    for candidate in GIT_HTTP_BACKEND:
        if os.access(candidate, os.X_OK):
            return candidate
    exec_path = subprocess.run(["git", "--exec-path"], capture_output=True, text=True).stdout.strip()
    candidate = os.path.join(exec_path, "git-http-backend")
    if os.access(candidate, os.X_OK):
        return candidate
    raise RuntimeError("git http-backend not found: install Debian's git")


class Handler(http.server.SimpleHTTPRequestHandler):
    root: Path
    backend: str

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, directory=str(self.root / "charts"), **kwargs)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def do_GET(self) -> None:
        if self.path.startswith("/git/"):
            self._git()
        elif self.path.startswith("/charts/"):
            self.path = self.path[len("/charts"):]
            super().do_GET()
        else:
            self.send_error(404)

    def do_HEAD(self) -> None:
        if self.path.startswith("/charts/"):
            self.path = self.path[len("/charts"):]
            super().do_HEAD()
        else:
            self.send_error(404)

    def do_POST(self) -> None:
        if self.path.startswith("/git/") and self.path.endswith("/git-upload-pack"):
            self._git()
        else:
            # git-receive-pack included: pushes go to the bare repository by path, never over HTTP.
            self.send_error(403)

    def _git(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.root / "git"),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": unquote(parts.path[len("/git"):]),
            "QUERY_STRING": parts.query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
            "HTTP_GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
        }
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        result = subprocess.run([self.backend], input=body, env=env, capture_output=True)
        head, _, payload = result.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = result.stdout.partition(b"\n\n")
        status = 200
        headers = []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name.strip(), value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        if result.returncode != 0 and result.stderr:
            sys.stderr.write(result.stderr.decode(errors="replace"))


def publish_charts(packages: list[Path], folder: Path, base_url: str, helm: Path) -> None:
    """Copy the chart packages into `folder` and write the repository index with the real helm CLI."""
    folder.mkdir(parents=True, exist_ok=True)
    for package in packages:
        shutil.copyfile(package, folder / package.name)
    subprocess.run([str(helm), "repo", "index", str(folder), "--url", base_url], check=True, capture_output=True)


def serve(root: Path, port: int) -> None:
    Handler.root = root
    Handler.backend = http_backend()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--port", required=True, type=int)
    args = parser.parse_args(argv)
    serve(args.root, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
