"""The render process itself (see render_process.py): it loads charts and renders them with the Helm SDK, one request
at a time, and answers over a pipe. Run as a script by render_process.Renderer, under `python -I -S`: it imports the
standard library's smallest part and the SDK only, so that it starts fast; render_process imports its framing."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import struct
import sys

_HEADER = struct.Struct("!Q")
# The child exits with this when Python itself (not Go) runs out of memory.
PYTHON_OUT_OF_MEMORY = 3
# The child's stderr (Go's crash report) is a file of at most this size: SIGXFSZ ends a longer one.
MAX_STDERR_BYTES = 1024 * 1024
# The request carries the composed values: bounded by the YAML loader, far below this.
_MAX_REQUEST_BYTES = 256 * 1024 * 1024


class OversizedMessage(Exception):
    """A message header announcing more than the receiver accepts."""


def send(fd: int, payload: bytes) -> None:
    data = memoryview(_HEADER.pack(len(payload)) + payload)
    while data:
        data = data[os.write(fd, data):]


def _read_exactly(fd: int, size: int) -> bytes | None:
    parts, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def receive(fd: int, max_bytes: int) -> bytes | None:
    """One message, or None when the other side is gone."""
    header = _read_exactly(fd, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > max_bytes:
        raise OversizedMessage(f"{size:,} bytes, over the {max_bytes:,}-byte bound")
    return _read_exactly(fd, size)


def serve(requests: int, answers: int, preload: list[str]) -> None:
    # A parent that dies mid-render takes the child with it (Linux); an idle child sees the pipe close and exits.
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:
            return
    except (OSError, AttributeError):
        pass
    # No core file (it would land in a directory of the user's), and a bounded crash report.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_STDERR_BYTES, MAX_STDERR_BYTES))
    import helm_python

    # path -> (digest, chart); a preloaded chart's digest is the first request's (they are milliseconds apart).
    charts: dict[str, tuple[str | None, helm_python.Chart]] = {}
    for path in preload:
        with contextlib.suppress(helm_python.HelmError):  # loaded again, and reported, when a render asks for it
            charts[path] = (None, helm_python.Chart.load(path))
    while True:
        message = receive(requests, _MAX_REQUEST_BYTES)
        if message is None:
            return
        request = json.loads(message)
        try:
            path, digest = request["chart"], request["digest"]
            loaded_digest, chart = charts.get(path, ("", None))
            if chart is None or loaded_digest not in (None, digest):
                chart = helm_python.Chart.load(path)
            charts[path] = (digest, chart)
            manifests = chart.render(request["values"], name=request["name"], namespace=request["namespace"],
                                     is_install=True)
            reply = json.dumps({"manifests": manifests}, ensure_ascii=False).encode()
            if len(reply) > request["max_output_bytes"]:
                reply = json.dumps({"over_output": len(reply)}).encode()
            send(answers, reply)
        except helm_python.HelmError as error:
            send(answers, json.dumps({"refused": str(error)}).encode())
        except MemoryError:
            os._exit(PYTHON_OUT_OF_MEMORY)


if __name__ == "__main__":
    sys.path[:] = json.loads(sys.argv[1])
    serve(int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4]))
