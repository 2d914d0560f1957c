"""The Helm SDK render (helm-controller's template step) in a child process the tool can stop.

Values come from the pull request, and charts run values through `tpl` (the official Airflow chart does, for
`command`, `args`, `env`, `extraContainers`, ...), so one value can make Go's template engine loop for hours or
allocate without end. The Helm SDK is a Go shared library: a call into it cannot be interrupted from Python, and a
Go runtime out of memory aborts its whole process. So each render runs in a child process, one per tool process,
reused from render to render (it keeps its charts loaded): the parent waits for the answer at most the time limit
and kills the child past it, and the kernel stops the child at the memory cap. The next render starts a new child.

- The child is a fresh interpreter (exec, never a bare fork): the parent may already run the Go runtime (the chart
  cache loads charts in-process), and Go does not survive fork. It runs render_child.py, which imports little more
  than the SDK.
- When a release's local chart (--chart) has no render in the render cache, `start()` is called before the parent
  loads the charts, so the child's start (an interpreter, the SDK and the chart, ~60 ms of CPU) overlaps the
  parent's own SDK import and chart load; otherwise the first render starts it, and a run whose renders all come
  from the cache starts none. A render costs one pipe round trip more than in-process (measured: the same).
- The memory cap is RLIMIT_DATA (writable private mappings), not RLIMIT_AS: Go reserves address space far beyond
  what it uses (measured here: a render under RLIMIT_AS 2 GiB died with 226 MB in use), while RLIMIT_DATA grows with
  the heap Go commits (a string-doubling template under RLIMIT_DATA 2 GiB died at 2.3 GB of peak RSS). GOMEMLIMIT
  is not set: it is soft, and stops nothing (under GOMEMLIMIT=512MiB the same template reached 13 GB of RSS).
  The Go runtime's other settings (GOGC, ...) come from the environment the child starts with, this process's.
- Messages are JSON, length-prefixed, over two pipes; the answer is bounded (source.bounds.MAX_OUTPUT_BYTES, as
  kustomize's output), so a runaway render never fills the parent's memory either.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from airflow_gitops.helm_controller import render_child

# What the Go runtime printed here when the kernel refused it memory: "runtime: out of memory", "out of memory
# allocating heap arena metadata", "runtime: cannot allocate memory"; and cgo's "pthread_create failed" (not seen,
# but a new thread's stack counts against the cap too).
_GO_OUT_OF_MEMORY = re.compile(rb"out of memory|cannot allocate memory|pthread_create failed")
# Larger limits (accepted, as "no limit" in practice) are clamped to what select() and setrlimit() take.
_MAX_LIMIT = 2**62
_MAX_LIMIT_S = 10**7


@dataclass(frozen=True)
class RenderLimits:
    timeout_s: float
    memory_bytes: int
    max_output_bytes: int


class RenderLimitExceeded(Exception):
    """The render was stopped: over its time limit, its memory cap or its output bound. `limit` says which."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


class RenderRefused(Exception):
    """The Helm SDK returned an error: the chart refused the values (a `fail`, a schema, a template error)."""


class RenderCrashed(Exception):
    """The render process ended without an answer, for a reason other than a limit."""


class Renderer:
    """The render child of this process: started on demand, killed on a breach, started again on the next render."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._requests = self._answers = -1
        self._stderr: IO[bytes] | None = None
        self._owner = 0
        # A render asked for ahead of need (prefetch): the request as sent, and its deadline.
        self._pending: tuple[bytes, float] | None = None

    def start(self, charts: list[Path] | None = None) -> None:
        """Start the child now, if none runs, so it is ready (`charts` loaded) when the first render needs it."""
        if self._owner != os.getpid():
            # Inherited through a fork: the child belongs to the parent process. Close this copy of its pipes (so
            # that the child still sees its parent go) and start a child of this process's own.
            for fd in (self._requests, self._answers):
                if fd >= 0:
                    os.close(fd)
            if self._stderr is not None:
                self._stderr.close()
            self._proc, self._requests, self._answers, self._stderr = None, -1, -1, None
            self._owner = os.getpid()
        if self._proc is not None and self._proc.poll() is None:
            return
        self.stop()
        requests_read, requests_write = os.pipe()
        answers_read, answers_write = os.pipe()
        self._stderr = tempfile.TemporaryFile(prefix="airflow-gitops-render-")  # noqa: SIM115 (lives as the child)
        try:
            # -I -S: no PYTHON* variables, user site or .pth files; the child imports the SDK from this process's
            # sys.path, so it renders with the very library the parent loaded.
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-S", render_child.__file__, json.dumps(sys.path), str(requests_read), str(answers_write),
                 json.dumps([os.path.abspath(chart) for chart in charts or []])],
                stdin=subprocess.DEVNULL, stdout=self._stderr, stderr=self._stderr,
                pass_fds=(requests_read, answers_write), cwd="/", close_fds=True)
        finally:
            os.close(requests_read)
            os.close(answers_write)
        self._requests, self._answers = requests_write, answers_read

    def render(self, chart_path: Path, chart_digest: str, values: dict, name: str, namespace: str,
               limits: RenderLimits) -> dict[str, str]:
        """The chart's manifests (template path -> text), as `helm_python.Chart.render(is_install=True)` gives them.
        The child keeps each chart loaded while its `chart_digest` (render_cache.chart_digest) stays the same.
        A render asked for ahead (`prefetch`) with the very same request is not rendered again."""
        request = _request(chart_path, chart_digest, values, name, namespace, limits)
        pending, self._pending = self._pending, None
        if pending is not None and self._owner == os.getpid():
            sent, deadline = pending
            if sent == request:
                return self._answer(limits, deadline)
            # The child answers in order, the guess's answer first. A wrong guess's failure is nobody's finding;
            # the child is started again below if it was stopped.
            with contextlib.suppress(RenderLimitExceeded, RenderRefused, RenderCrashed):
                self._answer(limits, deadline)
        self._send(request, limits)
        return self._answer(limits, time.monotonic() + limits.timeout_s)

    def prefetch(self, chart_path: Path, chart_digest: str, values: dict, name: str, namespace: str,
                 limits: RenderLimits) -> None:
        """Send a render the caller expects to ask for soon, and return at once; `render` with the same arguments
        then takes its answer. One at a time: a second guess while one is out is dropped."""
        if self._pending is not None and self._owner == os.getpid():
            return
        request = _request(chart_path, chart_digest, values, name, namespace, limits)
        try:
            self._send(request, limits)
        except RenderCrashed:
            return  # render() starts a child of its own when the time comes
        self._pending = (request, time.monotonic() + limits.timeout_s)

    def _send(self, request: bytes, limits: RenderLimits) -> None:
        for attempt in (1, 2):
            self.start()
            try:
                self._set_memory_cap(limits.memory_bytes)
                render_child.send(self._requests, request)
                return
            except (BrokenPipeError, ProcessLookupError):
                # The idle child is gone (killed from outside): once more with a new one.
                self.stop()
                if attempt == 2:
                    raise RenderCrashed("the render process could not be started") from None

    def _answer(self, limits: RenderLimits, deadline: float) -> dict[str, str]:
        try:
            wait_s = min(max(deadline - time.monotonic(), 0.0), _MAX_LIMIT_S)
            if not select.select([self._answers], [], [], wait_s)[0]:
                self.stop()
                raise RenderLimitExceeded("time", f"the render took over {limits.timeout_s:g} s and was stopped")
            answer = render_child.receive(self._answers, limits.max_output_bytes + 65536)
        except render_child.OversizedMessage as oversized:
            self.stop()
            raise RenderCrashed(f"the render process sent {oversized}") from None
        except BaseException:
            self.stop()  # an interrupt or a broken answer: never leave a child mid-render behind
            raise
        if answer is None:
            raise self._died(limits)
        reply = json.loads(answer)
        if "manifests" in reply:
            return reply["manifests"]
        if "refused" in reply:
            raise RenderRefused(reply["refused"])
        self.stop()
        raise RenderLimitExceeded("output", f"the render's output is over the {limits.max_output_bytes:,}-byte "
                                            "bound and was dropped")

    def stop(self) -> None:
        self._pending = None
        for fd in (self._requests, self._answers):
            if fd >= 0:
                os.close(fd)
        self._requests = self._answers = -1
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            self._proc = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _set_memory_cap(self, memory_bytes: int) -> None:
        assert self._proc is not None
        _, hard = resource.prlimit(self._proc.pid, resource.RLIMIT_DATA)
        cap = min(memory_bytes, _MAX_LIMIT if hard == resource.RLIM_INFINITY else hard)
        resource.prlimit(self._proc.pid, resource.RLIMIT_DATA, (cap, hard))

    def _died(self, limits: RenderLimits) -> Exception:
        assert self._proc is not None and self._stderr is not None
        code = self._proc.wait()
        self._stderr.seek(0)
        report = self._stderr.read(render_child.MAX_STDERR_BYTES)
        self.stop()
        if code == render_child.PYTHON_OUT_OF_MEMORY or _GO_OUT_OF_MEMORY.search(report):
            return RenderLimitExceeded(
                "memory", f"the render needed more than its {limits.memory_bytes // (1024 * 1024):,} MiB memory "
                          "cap and was stopped")
        lines = [line.strip() for line in report.decode(errors="replace").splitlines() if line.strip()]
        how = f"exit code {code}"
        if code < 0:
            try:
                how = f"signal {signal.Signals(-code).name}"
            except ValueError:
                how = f"signal {-code}"
        return RenderCrashed(f"the render process stopped ({how})" + (f": {lines[0][:300]}" if lines else ""))


def _request(chart_path: Path, chart_digest: str, values: dict, name: str, namespace: str,
             limits: RenderLimits) -> bytes:
    # Encoded here, as the SDK would: values that are not JSON fail in this process, as they did in-process.
    return json.dumps({"chart": os.path.abspath(chart_path), "digest": chart_digest, "values": values, "name": name,
                       "namespace": namespace, "max_output_bytes": limits.max_output_bytes}).encode()


RENDERER = Renderer()


@atexit.register
def _stop_at_exit() -> None:
    if RENDERER._owner == os.getpid():
        RENDERER.stop()
