"""`airflow-gitops dev`: Airflow 3.3 on this repository's dags/, locally, offline, at http://localhost:8080.

What runs (each an ordinary Airflow component, as in the cluster, but with the LocalExecutor):

* a throwaway PostgreSQL 15 on 127.0.0.1 (localpg) holding the metadata DB ``airflow_meta`` and the
  DAGs' data DB ``airflow_data``;
* a stand-in for the user API (randomuser.me) on 127.0.0.1 serving the recorded payload
  (``dev/stand_ins.py``, shared with the DAG tests), so user_processing works without internet;
* ``airflow db migrate``, then ``api-server``, ``scheduler``, ``dag-processor`` and ``triggerer``.

AIRFLOW_HOME is ``.airflow-dev/`` (gitignored); component logs are in ``.airflow-dev/logs/dev/``.
Connections come from environment variables: ``postgres`` (the data DB), ``user_api`` (the stand-in)
and ``airflow_remote`` (this instance's own REST API, so producer_remote_partner has a "remote").
Login with the simple auth manager: ``admin`` and the password printed at start (``admin`` unless
``--password``). Ctrl+C (or SIGTERM) stops everything, PostgreSQL included.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from airflow_gitops.dev.stand_ins import RECORDED_PAYLOAD, UserApiStandIn, http_connection, postgres_connection

REPO = Path(__file__).resolve().parents[3]
DEFAULT_HOME = REPO / ".airflow-dev"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
META_DB = "airflow_meta"
DATA_DB = "airflow_data"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8080, help="API server / UI port (default: %(default)s).")
    parser.add_argument("--host", default="127.0.0.1", help="API server bind address (default: %(default)s).")
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME, help="AIRFLOW_HOME (default: %(default)s).")
    parser.add_argument("--dags", type=Path, default=REPO / "dags", help="DAGs folder (default: %(default)s).")
    parser.add_argument("--pg-dir", type=Path, default=None, help="PostgreSQL directory (default: HOME/pg).")
    parser.add_argument("--password", default="admin", help="The admin user's password (default: %(default)s).")
    parser.add_argument("--payload", type=Path, default=RECORDED_PAYLOAD, help="What the user API stand-in serves.")
    parser.add_argument("--keep-postgres", action="store_true", help="Leave PostgreSQL running on exit (faster restarts).")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _free_port_or_die(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            raise SystemExit(f"airflow-gitops dev: port {port} on {host} is in use (another `make dev`?)") from None


def _secrets(home: Path) -> dict[str, str]:
    """Keys every component must share, generated once per AIRFLOW_HOME."""
    path = home / "dev-secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    import base64

    values = {
        "fernet_key": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "jwt_secret": secrets.token_urlsafe(32),
        "secret_key": secrets.token_urlsafe(32),
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(values, f)
    return values


def _start_postgres(pg_dir: Path | None, home: Path):
    from airflow_gitops.dev import localpg

    candidates = [pg_dir] if pg_dir else [home / "pg", Path(os.environ.get("TMPDIR") or "/tmp") / "airflow-gitops-dev-pg"]
    error: Exception | None = None
    for directory in candidates:
        try:
            return localpg.start(directory)
        except localpg.PostgresUnavailable as exc:
            error = exc
            if "cannot reach" not in str(exc):  # only an untraversable HOME is worth another place
                break
    raise SystemExit(f"airflow-gitops dev: {error}")


def _environment(args: argparse.Namespace, home: Path, meta_url: str, data_url: str, user_api_port: int) -> dict:
    keys = _secrets(home)
    api = f"http://127.0.0.1:{args.port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(args.dags.resolve()),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__FERNET_KEY": keys["fernet_key"],
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
            "AIRFLOW__CORE__AUTH_MANAGER": ("airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "simple_auth_manager_passwords.json"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta_url.replace("postgresql://", "postgresql+psycopg2://", 1),
            "AIRFLOW__API__HOST": args.host,
            "AIRFLOW__API__PORT": str(args.port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": keys["secret_key"],
            "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
            # A DAG author wants to see an edit quickly: re-list the folder and re-parse files often.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            # Free ports rather than 8793/8794, so a second instance (the dev-loop test) can run beside.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
            "AIRFLOW_CONN_POSTGRES": postgres_connection(data_url),
            "AIRFLOW_CONN_USER_API": http_connection("127.0.0.1", user_api_port),
            "AIRFLOW_CONN_AIRFLOW_REMOTE": http_connection("127.0.0.1", args.port, login="admin", password=args.password),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _airflow(*argv: str) -> list[str]:
    return [sys.executable, "-m", "airflow", *argv]


def _wait_healthy(port: int, procs: dict[str, subprocess.Popen], timeout: float = 240) -> None:
    import urllib.error
    import urllib.request

    url = f"http://127.0.0.1:{port}/api/v2/monitor/health"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode} while starting")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                health = json.loads(response.read())
            if health.get("metadatabase", {}).get("status") == "healthy":
                return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(1)
    raise RuntimeError(f"the API server did not become healthy at {url} within {timeout:.0f}s")


def _stop(procs: dict[str, subprocess.Popen], grace: float = 30) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # each component leads its own process group
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run(args: argparse.Namespace) -> int:
    from airflow_gitops.dev import extras, localpg

    if missing := extras.airflow_missing("dev"):
        print(missing, file=sys.stderr)
        return 2
    home: Path = args.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    log_dir = home / "logs" / "dev"
    log_dir.mkdir(parents=True, exist_ok=True)
    _free_port_or_die(args.host, args.port)

    def _terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)

    pg = _start_postgres(args.pg_dir, home)
    procs: dict[str, subprocess.Popen] = {}
    stand_in = UserApiStandIn(args.payload).start()
    try:
        meta_url = localpg.create_database(pg, META_DB)
        data_url = localpg.create_database(pg, DATA_DB)
        (home / "simple_auth_manager_passwords.json").write_text(json.dumps({"admin": args.password}))
        env = _environment(args, home, meta_url, data_url, stand_in.port)

        print(f"PostgreSQL 15 on 127.0.0.1:{pg.port} ({pg.dir}); user API stand-in at {stand_in.base_url}/api/")
        print("airflow db migrate ...", flush=True)
        with open(log_dir / "db-migrate.log", "w") as log:
            migrate = subprocess.run(_airflow("db", "migrate"), env=env, stdout=log, stderr=subprocess.STDOUT)
        if migrate.returncode != 0:
            print(f"airflow db migrate failed; see {log_dir / 'db-migrate.log'}", file=sys.stderr)
            return 1

        for name in COMPONENTS:
            argv = _airflow(name) if name != "api-server" else _airflow(name, "--host", args.host, "--port", str(args.port))
            log = open(log_dir / f"{name}.log", "w")  # noqa: SIM115 (lives as long as the component)
            procs[name] = subprocess.Popen(
                argv,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        _wait_healthy(args.port, procs)
        print(
            f"\nAirflow is up: http://localhost:{args.port}  (user: admin, password: {args.password})\n"
            f"  DAGs folder: {args.dags.resolve()} (new and edited files show up within ~20 s)\n"
            f"  connections: postgres -> {DATA_DB} on 127.0.0.1:{pg.port}, user_api -> {stand_in.base_url}, "
            f"airflow_remote -> this instance\n"
            f"  logs: {log_dir}/*.log and {home / 'logs'}\n"
            "  Ctrl+C stops everything.",
            flush=True,
        )
        while True:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    print(
                        f"{name} exited with {proc.returncode}; see {log_dir / (name + '.log')}",
                        file=sys.stderr,
                    )
                    return 1
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        return 0
    except RuntimeError as exc:
        print(f"airflow-gitops dev: {exc}; logs in {log_dir}", file=sys.stderr)
        return 1
    finally:
        _stop(procs)
        stand_in.stop()
        if not args.keep_postgres:
            localpg.stop(pg.dir)
