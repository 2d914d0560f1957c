"""DAG file parse times, measured the way Airflow 3.3's dag-processor measures them.

The dag-processor (``DagFileProcessorManager``) parses each file in a *forked* child
(``DagFileProcessorProcess``): before forking it pre-imports the ``airflow.*`` modules the file
imports (``[dag_processor] parsing_pre_import_modules``), then the child builds a ``BundleDagBag`` for
the file, serializes its DAGs and sends them back. The duration it records (``last_duration``,
metric ``dag_processing.last_duration.<file>``, the UI's "parse duration") runs from the fork to the
moment the result is collected.

``parse_report`` does exactly that, with the real ``DagFileProcessorProcess``, in a fresh Python
process with a throwaway AIRFLOW_HOME (nothing is written to ~/airflow, no database is needed). So
imports that are *not* ``airflow.*`` (kubernetes, pandas, your helper modules...) and top-level code
count; Airflow's own imports do not, as in the cluster.

    from airflow_gitops.dev.dagparse import parse_times
    parse_times("dags")  # -> [("parallel_dag.py", 0.41), ("user_processing.py", 0.09), ...]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

BUNDLE_NAME = "dags-folder"


class FileParse(NamedTuple):
    """One DAG file as the dag-processor saw it."""

    file: str  # relative to the DAGs folder, as the dag-processor reports it
    seconds: float  # median over the repeats of the fork-to-result duration
    dag_ids: list[str]
    import_errors: dict[str, str]  # relative file -> traceback (import or serialization errors)


def parse_report(
    dags_dir: str | os.PathLike[str],
    *,
    repeat: int = 3,
    timeout: float = 300,
    python: str | None = None,
) -> list[FileParse]:
    """Parse every DAG file of DAGS_DIR (honouring .airflowignore) REPEAT times in a fresh process.

    Files are listed as the dag-processor lists them (safe mode: only files mentioning "airflow" and
    "dag"). The result is sorted slowest first. Raises RuntimeError if the helper process fails.
    """
    dags_dir = Path(dags_dir).resolve()
    if not dags_dir.is_dir():
        raise FileNotFoundError(f"no DAGs folder at {dags_dir}")
    with tempfile.TemporaryDirectory(prefix="airflow-gitops-dagparse-") as home:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("AIRFLOW__") and not key.startswith("AIRFLOW_CONN_")
        }
        env.update(
            {
                "AIRFLOW_HOME": home,
                "AIRFLOW__CORE__DAGS_FOLDER": str(dags_dir),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": f"{home}/logs",
            }
        )
        proc = subprocess.run(
            [python or sys.executable, "-m", "airflow_gitops.dev.dagparse", str(dags_dir), str(repeat)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    marker = "AIRFLOW_GITOPS_DAGPARSE="
    lines = [line for line in proc.stdout.splitlines() if line.startswith(marker)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"parsing {dags_dir} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    rows = json.loads(lines[-1][len(marker) :])
    return sorted((FileParse(**row) for row in rows), key=lambda r: r.seconds, reverse=True)


def parse_times(dags_dir: str | os.PathLike[str], *, repeat: int = 3) -> list[tuple[str, float]]:
    """(file relative to DAGS_DIR, seconds) for every DAG file, slowest first: the dag-processor's timing."""
    return [(r.file, r.seconds) for r in parse_report(dags_dir, repeat=repeat)]


# --- the helper process (python -m airflow_gitops.dev.dagparse DAGS_DIR REPEAT) -------------------------


def _in_process_client():
    """The API client the manager hands its parsers (DagFileProcessorManager.client), built the same way."""
    from airflow.dag_processing.processor import in_process_api_server
    from airflow.sdk.api.client import Client

    client = Client(base_url=None, token="", dry_run=True, transport=in_process_api_server().transport)
    client.base_url = "http://in-process.invalid./"
    return client


def _parse_once(path: Path, dags_dir: Path, log_dir: Path, client, timeout: float = 120.0):
    import selectors
    import time

    import structlog
    from airflow.dag_processing.processor import DagFileProcessorProcess
    from airflow.sdk.log import logging_processors
    from uuid6 import uuid7

    rel = path.relative_to(dags_dir).as_posix()
    log_path = log_dir / f"{rel}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    filehandle = log_path.open("ab")
    logger = structlog.wrap_logger(
        structlog.BytesLogger(filehandle),
        processors=logging_processors(json_output=True),
        logger_name="processor",
    ).bind()
    selector = selectors.DefaultSelector()
    # The dag-processor's own class: pre-imports the file's airflow.* modules, forks, parses, serializes.
    proc = DagFileProcessorProcess.start(
        id=uuid7(),
        path=path,
        bundle_path=dags_dir,
        bundle_name=BUNDLE_NAME,
        dag_file_rel_path=rel,
        callbacks=[],
        selector=selector,
        logger=logger,
        logger_filehandle=filehandle,
        client=client,
    )
    deadline = proc.start_time + timeout
    while not proc.is_ready:
        # The manager's loop (_service_processor_sockets): read the child's sockets as data arrives.
        for key, _ in selector.select(timeout=0.05):
            handler, on_close = key.data
            try:
                need_more = handler(key.fileobj)
            except (BrokenPipeError, ConnectionResetError):
                need_more = False
            if not need_more:
                on_close(key.fileobj)
                key.fileobj.close()  # type: ignore[union-attr]  # the child's sockets
        if time.monotonic() > deadline:
            proc.kill()
            raise TimeoutError(f"parsing {rel} took more than {timeout}s")
    seconds = time.monotonic() - proc.start_time
    result = proc.parsing_result
    proc.close()
    selector.close()
    if result is None:
        return rel, seconds, [], {rel: f"the parsing process sent no result; see {log_path}"}
    dag_ids = sorted(dag.dag_id for dag in result.serialized_dags)
    return rel, seconds, dag_ids, dict(result.import_errors or {})


def _main(argv: list[str]) -> int:
    dags_dir = Path(argv[0]).resolve()
    repeat = max(1, int(argv[1])) if len(argv) > 1 else 3

    # What the dag-processor's manager process has imported before it forks its parsers: the CLI
    # command, the job runner, the manager and its in-process Execution API client.
    import airflow.cli.commands.dag_processor_command  # noqa: F401
    import airflow.dag_processing.manager  # noqa: F401
    from airflow.configuration import conf
    from airflow.utils.file import list_py_file_paths

    safe_mode = conf.getboolean("core", "DAG_DISCOVERY_SAFE_MODE", fallback=True)
    files = sorted(Path(p) for p in list_py_file_paths(dags_dir, safe_mode=safe_mode))
    log_dir = Path(os.environ.get("AIRFLOW_HOME", tempfile.gettempdir())) / "logs" / "dag_processor"
    client = _in_process_client()
    rows = []
    for path in files:
        times: list[float] = []
        for _ in range(repeat):
            rel, seconds, dag_ids, errors = _parse_once(path, dags_dir, log_dir, client)
            times.append(seconds)
        rows.append(
            {
                "file": rel,
                "seconds": round(statistics.median(times), 4),
                "dag_ids": dag_ids,
                "import_errors": errors,
            }
        )
    print("AIRFLOW_GITOPS_DAGPARSE=" + json.dumps(rows), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
