"""A throwaway PostgreSQL 15 cluster on 127.0.0.1, for the DAG tests and `airflow-gitops dev`.

One directory holds everything: the data directory (``DIR/data``), the server log (``DIR/postgres.log``),
the unix socket (``DIR/.s.PGSQL.<port>``) and a small state file (``DIR/airflow-gitops-pg.json``) with
the port, role, password and database, so that a second ``start`` finds the running server and answers
with the same URL (idempotent), and a ``start`` after a reboot restarts the same cluster.

PostgreSQL refuses to run as root: when we are root, DIR is handed to the ``postgres`` user and every
server-side binary runs through ``runuser -u postgres --``.

Only the standard library is imported here, so the CLI and pytest fixtures can use it cheaply.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

ENV_URL = "AIRFLOW_GITOPS_TEST_DATABASE_URL"
"""The environment variable the exports set and the pytest fixtures read."""

ENV_BINDIR = "AIRFLOW_GITOPS_PG_BINDIR"
"""Overrides where the PostgreSQL binaries are looked for."""

DEFAULT_BINDIRS = ("/usr/lib/postgresql/15/bin",)
HOST = "127.0.0.1"
STATE_FILE = "airflow-gitops-pg.json"
DEFAULT_ROLE = "airflow_gitops"
DEFAULT_DATABASE = "airflow_gitops"
SUPERUSER = "postgres"
_NEEDED = ("initdb", "pg_ctl", "postgres", "psql")
# A unix socket path must fit in sockaddr_un.sun_path (108 bytes, NUL included).
_MAX_SOCKET_PATH = 107

# A throwaway cluster: durability is worth nothing, speed and a small footprint are.
_SERVER_SETTINGS = {
    "listen_addresses": f"'{HOST}'",
    "max_connections": "100",
    "shared_buffers": "'32MB'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "logging_collector": "off",
    "log_min_messages": "warning",
}


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL binaries are missing or the cluster could not be started."""


@dataclasses.dataclass(frozen=True)
class LocalPostgres:
    """A running local cluster and the role/database created for the tests."""

    dir: Path
    port: int
    user: str
    password: str
    database: str
    host: str = HOST

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        """A libpq URL for another database of the same server, same role."""
        # The generated password is URL-safe (token_urlsafe), so nothing needs quoting.
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def exports(self) -> str:
        """Shell lines for `eval "$(airflow-gitops postgres start ...)"`."""
        return f"export {ENV_URL}={shlex.quote(self.url)}\n"


def find_bindir() -> Path:
    """The directory of initdb, pg_ctl, postgres and psql; PostgresUnavailable says how to get them."""
    candidates: list[Path] = []
    if os.environ.get(ENV_BINDIR):
        candidates.append(Path(os.environ[ENV_BINDIR]))
    candidates.extend(Path(d) for d in DEFAULT_BINDIRS)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for bindir in candidates:
        if all(os.access(bindir / name, os.X_OK) for name in _NEEDED):
            return bindir
    looked = ", ".join(str(c) for c in candidates)
    raise PostgresUnavailable(
        "PostgreSQL 15 server binaries (initdb, pg_ctl, postgres, psql) were not found "
        f"(looked in: {looked}). Install them with `bash scripts/install-system-deps.sh` "
        f"(Debian's postgresql-15), or point {ENV_BINDIR} at their directory."
    )


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _as_owner(cmd: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Run server-side binaries as `postgres` when we are root (PostgreSQL refuses root)."""
    argv = [os.fspath(c) for c in cmd]
    if _running_as_root():
        return ["runuser", "-u", SUPERUSER, "--", *argv]
    return argv


def _run(cmd: Sequence[str], *, what: str, timeout: float = 120, input: str | None = None) -> str:
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        stdin=None if input else subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        raise PostgresUnavailable(
            f"{what} failed (exit {proc.returncode}): {shlex.join(cmd)}\n{proc.stdout}{proc.stderr}".rstrip()
        )
    return proc.stdout


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port nobody listens on at 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _read_state(directory: Path) -> dict | None:
    try:
        return json.loads((directory / STATE_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _write_state(directory: Path, pg: LocalPostgres) -> None:
    path = directory / STATE_FILE
    state = {"port": pg.port, "user": pg.user, "password": pg.password, "database": pg.database}
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(state, f)
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Serialise concurrent start/stop calls on one directory (two pytest sessions, say)."""
    with open(directory / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _prepare_dir(directory: Path) -> None:
    if len(str(directory)) + len("/.s.PGSQL.65535") > _MAX_SOCKET_PATH:
        raise PostgresUnavailable(f"{directory} is too long a path for PostgreSQL's unix socket; choose a shorter --dir.")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if _running_as_root():
        shutil.chown(directory, SUPERUSER, SUPERUSER)
        os.chmod(directory, 0o700)
        # Every parent must be traversable by `postgres`, or initdb/postgres fail with a vague error.
        probe = subprocess.run(["runuser", "-u", SUPERUSER, "--", "test", "-w", str(directory)], check=False)
        if probe.returncode != 0:
            raise PostgresUnavailable(
                f"user {SUPERUSER!r} cannot reach {directory}: a parent directory is not traversable "
                "(mode 0700?). Use a directory under /tmp or another world-traversable path."
            )


def _pg_ctl(bindir: Path, *args: str, what: str, timeout: float = 120) -> str:
    return _run(_as_owner([bindir / "pg_ctl", *args]), what=what, timeout=timeout)


def is_running(directory: str | os.PathLike[str], bindir: Path | None = None) -> bool:
    """Whether the cluster in DIR has a live postmaster."""
    data = Path(directory).resolve() / "data"
    if not (data / "PG_VERSION").exists():
        return False
    bindir = bindir or find_bindir()
    proc = subprocess.run(
        _as_owner([bindir / "pg_ctl", "status", "-D", data]),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    return proc.returncode == 0


def _write_server_conf(data: Path, directory: Path, port: int) -> None:
    settings = dict(_SERVER_SETTINGS, port=str(port), unix_socket_directories=f"'{directory}'")
    body = "# Written by airflow-gitops (scripts/airflow_gitops/dev/localpg.py) on every start.\n"
    body += "".join(f"{key} = {value}\n" for key, value in settings.items())
    conf = data / "airflow_gitops.conf"
    conf.write_text(body)
    if _running_as_root():
        shutil.chown(conf, SUPERUSER, SUPERUSER)
    main_conf = data / "postgresql.conf"
    include = "include_if_exists = 'airflow_gitops.conf'\n"
    if include not in main_conf.read_text():
        with main_conf.open("a") as f:
            f.write("\n" + include)


def _psql(bindir: Path, directory: Path, port: int, sql: str, *, what: str) -> str:
    # Over the unix socket in DIR, as the bootstrap superuser, trusted locally (initdb --auth-local=trust).
    cmd = [
        str(bindir / "psql"),
        "--no-psqlrc",
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        str(directory),
        "-p",
        str(port),
        "-U",
        SUPERUSER,
        "-d",
        "postgres",
        "-f",
        "-",
    ]
    return _run(cmd, what=what, input=sql)


def _ensure_role_and_database(bindir: Path, pg: LocalPostgres) -> None:
    user, password, database = pg.user, pg.password, pg.database
    sql = f"""
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{user}') THEN
    CREATE ROLE "{user}" LOGIN CREATEDB PASSWORD '{password}';
  ELSE
    ALTER ROLE "{user}" LOGIN CREATEDB PASSWORD '{password}';
  END IF;
END
$$;
SELECT 'CREATE DATABASE "{database}" OWNER "{user}"'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{database}')
\\gexec
"""
    _psql(bindir, pg.dir, pg.port, sql, what="creating the test role and database")


def _wait_ready(bindir: Path, pg: LocalPostgres, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    cmd = [
        str(bindir / "psql"),
        "-X",
        "-h",
        str(pg.dir),
        "-p",
        str(pg.port),
        "-U",
        SUPERUSER,
        "-c",
        "SELECT 1",
    ]
    while True:
        proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if proc.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise PostgresUnavailable(f"PostgreSQL in {pg.dir} does not accept connections: {proc.stderr}")
        time.sleep(0.2)


def _log_tail(directory: Path, lines: int = 30) -> str:
    try:
        return "\n".join((directory / "postgres.log").read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start(
    directory: str | os.PathLike[str],
    port: int | None = None,
    *,
    user: str = DEFAULT_ROLE,
    database: str = DEFAULT_DATABASE,
) -> LocalPostgres:
    """Start (or find running) the cluster in DIR; create its role and database. Idempotent.

    Without PORT, a running cluster keeps its port, a stopped one gets its previous port back when that
    is still free, a new one gets a free port.
    """
    directory = Path(directory).resolve()
    bindir = find_bindir()
    _prepare_dir(directory)
    data = directory / "data"
    with _locked(directory):
        saved = _read_state(directory)
        initialised = (data / "PG_VERSION").exists() and saved is not None
        state = saved or {}  # read only when initialised, where it is the saved state
        if initialised and is_running(directory, bindir):
            pg = LocalPostgres(directory, state["port"], state["user"], state["password"], state["database"])
            if port is not None and port != pg.port:
                raise PostgresUnavailable(
                    f"PostgreSQL in {directory} already runs on port {pg.port}; stop it to change the port."
                )
            _wait_ready(bindir, pg)
            _ensure_role_and_database(bindir, pg)
            return pg

        if not initialised:
            if data.exists():
                shutil.rmtree(data)  # a half-made cluster from an interrupted start
            password = secrets.token_urlsafe(18)
            pwfile = directory / ".superuser-password"
            pwfile.write_text(secrets.token_urlsafe(18) + "\n")
            if _running_as_root():
                shutil.chown(pwfile, SUPERUSER, SUPERUSER)
            try:
                _run(
                    _as_owner(
                        [
                            bindir / "initdb",
                            "-D",
                            data,
                            "-U",
                            SUPERUSER,
                            f"--pwfile={pwfile}",
                            "--auth-local=trust",
                            "--auth-host=scram-sha-256",
                            "--encoding=UTF8",
                            "--locale=C",
                            "--no-sync",
                        ]
                    ),
                    what="initdb",
                )
            finally:
                pwfile.unlink(missing_ok=True)
        else:
            password = state["password"]
            user, database = state["user"], state["database"]

        if port is None:
            previous = state.get("port") if initialised else None
            port = previous if previous and _port_is_free(previous) else free_port()
        elif not _port_is_free(port):
            raise PostgresUnavailable(f"port {port} on {HOST} is already in use")

        pg = LocalPostgres(directory, port, user, password, database)
        _write_server_conf(data, directory, port)
        log = directory / "postgres.log"
        if _running_as_root():
            log.touch()
            shutil.chown(log, SUPERUSER, SUPERUSER)
        try:
            _pg_ctl(bindir, "start", "-D", str(data), "-l", str(log), "-w", "-t", "60", what="pg_ctl start")
        except PostgresUnavailable as exc:
            raise PostgresUnavailable(f"{exc}\n--- {log} ---\n{_log_tail(directory)}") from None
        _wait_ready(bindir, pg)
        _ensure_role_and_database(bindir, pg)
        _write_state(directory, pg)
        return pg


def status(directory: str | os.PathLike[str]) -> LocalPostgres | None:
    """The running cluster in DIR, or None."""
    directory = Path(directory).resolve()
    state = _read_state(directory)
    if state is None or not is_running(directory):
        return None
    return LocalPostgres(directory, state["port"], state["user"], state["password"], state["database"])


def stop(directory: str | os.PathLike[str], *, purge: bool = False) -> bool:
    """Stop the cluster in DIR (fast shutdown). Returns whether it was running. PURGE deletes DIR too."""
    directory = Path(directory).resolve()
    was_running = False
    if (directory / "data" / "PG_VERSION").exists():
        bindir = find_bindir()
        with _locked(directory):
            if is_running(directory, bindir):
                _pg_ctl(bindir, "stop", "-D", str(directory / "data"), "-m", "fast", "-w", what="pg_ctl stop")
                was_running = True
    if purge and directory.exists():
        shutil.rmtree(directory)
    return was_running


def create_database(pg: LocalPostgres, name: str) -> str:
    """Create database NAME (owned by the cluster's role) if missing; return its URL."""
    if not name.replace("_", "").isalnum():
        raise ValueError(f"unsafe database name {name!r}")
    sql = (
        f'SELECT \'CREATE DATABASE "{name}" OWNER "{pg.user}"\' '
        f"WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{name}')\n\\gexec\n"
    )
    _psql(find_bindir(), pg.dir, pg.port, sql, what=f"creating database {name}")
    return pg.url_for(name)
