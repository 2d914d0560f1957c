"""One task per cluster in worker processes, so that the clusters' renders (the Helm SDK, single-threaded per
call) run on every core, with each cluster's output replayed in the parent byte for byte as a serial run prints it.

The Helm SDK (helm_python) is a Go shared library: importing it starts the Go runtime and its threads, and a child
forked after that inherits a runtime without its threads (Go does not support fork without exec). So the pool
forks only while this process has not imported helm_python (the CLI's `validate all`: the parent renders nothing);
otherwise it uses forkserver, whose server is a fresh interpreter that imports the tool but never the SDK.
The pool is started once per process and its workers keep their chart and schema caches warm between calls.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

PARALLEL_ENV = "AIRFLOW_GITOPS_PARALLEL"
_pool: ProcessPoolExecutor | None = None
_pool_size = 0


def workers_for(tasks: int) -> int:
    """Worker processes for `tasks` clusters: one per core, none (serial) for one task or with
    AIRFLOW_GITOPS_PARALLEL=0; AIRFLOW_GITOPS_PARALLEL=N caps them at N."""
    cap = os.environ.get(PARALLEL_ENV, "").strip()
    limit = os.cpu_count() or 1
    if cap:
        try:
            limit = max(0, int(cap))
        except ValueError:
            raise SystemExit(f"{PARALLEL_ENV}: expected a number of worker processes, got {cap!r}") from None
    count = min(limit, tasks)
    return count if count > 1 else 0


class WorkerCrashed(Exception):
    """A worker process died (killed, out of memory, a crash in native code) before it returned its result."""


class _Recorder:
    """stdout and stderr of one task as ordered (stream, text) chunks, so the parent can replay them."""

    def __init__(self, chunks: list[tuple[str, str]], stream: str) -> None:
        self.chunks, self.stream = chunks, stream

    def write(self, text: str) -> int:
        if text:
            self.chunks.append((self.stream, text))
        return len(text)

    def flush(self) -> None:
        pass


class _WarningCapture(logging.Handler):
    """The engine's warnings of one task, replayed through the parent's logging (which prints each once)."""

    def __init__(self, chunks: list[tuple[str, str]]) -> None:
        super().__init__(logging.WARNING)
        self.chunks = chunks

    def emit(self, record: logging.LogRecord) -> None:
        self.chunks.append((f"log:{record.name}:{record.levelno}", record.getMessage()))


def _portable(error: BaseException) -> BaseException:
    """The exception itself if it survives pickling, else one that keeps its type name and message."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")


def _run_captured(task: Callable[..., Any], args: tuple) -> tuple[list[tuple[str, str]], Any, BaseException | None]:
    chunks: list[tuple[str, str]] = []
    logger = logging.getLogger("airflow_gitops")
    handlers, propagate = logger.handlers[:], logger.propagate
    logger.handlers, logger.propagate = [_WarningCapture(chunks)], False
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Recorder(chunks, "stdout"), _Recorder(chunks, "stderr")
    try:
        return chunks, task(*args), None
    except BaseException as error:  # replayed, then raised in the parent, where the CLI's one guard reports it
        return chunks, None, _portable(error)
    finally:
        sys.stdout, sys.stderr = stdout, stderr
        logger.handlers, logger.propagate = handlers, propagate


def _replay(chunks: list[tuple[str, str]]) -> None:
    for stream, text in chunks:
        if stream == "stdout":
            sys.stdout.write(text)
        elif stream == "stderr":
            sys.stderr.write(text)
        else:
            _, name, level = stream.split(":")
            _replay_warning(name, int(level), text)


def _replay_warning(name: str, level: int, message: str) -> None:
    # A serial run warns of a chart once per process (ChartCache.warned); the workers each keep their own set.
    from airflow_gitops.helm_controller import chart

    if message in chart.PROCESS.warned:
        return
    chart.PROCESS.warned.add(message)
    logging.getLogger(name).log(level, message)


def _executor(size: int, task: Callable[..., Any]) -> ProcessPoolExecutor:
    global _pool, _pool_size
    if _pool is None or _pool_size < size:
        shutdown()
        context: multiprocessing.context.BaseContext
        if "helm_python" in sys.modules:
            context = forkserver = multiprocessing.get_context("forkserver")
            # Imported by the forkserver before it forks a worker: the task's module (the engine, never the Helm
            # SDK, see above), named by the caller rather than here, which is below every caller.
            forkserver.set_forkserver_preload([task.__module__])
        else:
            context = multiprocessing.get_context("fork")
        _pool, _pool_size = ProcessPoolExecutor(max_workers=size, mp_context=context), size
    return _pool


def shutdown() -> None:
    global _pool, _pool_size
    if _pool is not None:
        _pool.shutdown(wait=True, cancel_futures=True)
    _pool, _pool_size = None, 0


def run_in_order(task: Callable[..., Any], args_list: list[tuple]) -> Iterator[tuple[Any, BaseException | None]]:
    """task(*args) for each args, in worker processes; yields in the given order, each after its printed output
    has been replayed. A task's exception is yielded (after its output), not raised; a worker that died yields
    WorkerCrashed. `task` must be a module-level function (it is pickled by name)."""
    size = workers_for(len(args_list))
    if not size:
        for args in args_list:
            yield task(*args), None
        return
    pool = _executor(size, task)
    futures = [pool.submit(_run_captured, task, args) for args in args_list]
    broken = False
    for future, args in zip(futures, args_list, strict=True):
        if broken and (not future.done() or future.exception() is not None):
            outcome = _run_alone(task, args)
        else:
            try:
                outcome = future.result()
            except BrokenProcessPool:
                # A worker that dies breaks every task still in the pool, not only its own. So each task without
                # an answer runs again alone in a fresh process: only the one that dies again is reported.
                shutdown()
                broken = True
                outcome = _run_alone(task, args)
        if isinstance(outcome, WorkerCrashed):
            yield None, outcome
            continue
        chunks, result, error = outcome
        _replay(chunks)
        yield result, error


def _run_alone(task: Callable[..., Any], args: tuple):
    """One task in a pool of its own (the pool is shut down after); WorkerCrashed if its worker dies."""
    pool = _executor(1, task)
    try:
        return pool.submit(_run_captured, task, args).result()
    except BrokenProcessPool as error:
        return WorkerCrashed(f"a worker process stopped before it returned ({error})")
    finally:
        shutdown()
