"""The local loop of a DAG author: `airflow-gitops dev` (what `make dev` runs) brings up Airflow 3.3.2
on dags/ with the LocalExecutor, its own PostgreSQL and the user API stand-in; the REST API lists the
DAGs; user_processing, triggered through the API, succeeds; the asset consumers run as the real
scheduler decides (limit 1: a consumer run whose events all say "unchanged" skips its work; limit 4:
an event posted to the REST API by producer_remote_partner triggers consumer_partner_users); then
everything shuts down, PostgreSQL included.

Takes a few minutes on 2 cores; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import DAG_IDS, free_port

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[2]
EXPECTED_DAGS = set(DAG_IDS)
PASSWORD = "dev-loop-test"


def _wait(what: str, predicate, timeout: float, interval: float = 2.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


class Api:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.token = ""

    def call(self, method: str, path: str, body: dict | None = None):
        request = urllib.request.Request(
            f"{self.base}/{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def login(self, user: str, password: str) -> None:
        self.token = self.call("POST", "auth/token", {"username": user, "password": password})["access_token"]

    def runs(self, dag_id: str) -> list[dict]:
        return self.call("GET", f"api/v2/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        answer = self.call("GET", f"api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti["state"] for ti in answer["task_instances"]}

    def consumed_events(self, dag_id: str, run_id: str) -> list[dict]:
        return self.call("GET", f"api/v2/dags/{dag_id}/dagRuns/{run_id}/upstreamAssetEvents")["asset_events"]

    def unpause(self, dag_id: str) -> None:
        assert self.call("PATCH", f"api/v2/dags/{dag_id}", {"is_paused": False})["is_paused"] is False

    def trigger(self, dag_id: str) -> str:
        return self.call("POST", f"api/v2/dags/{dag_id}/dagRuns", {"logical_date": None})["dag_run_id"]


def _all_finished(runs: list[dict]) -> bool:
    return bool(runs) and all(r["state"] in ("success", "failed") for r in runs)


def test_dev_runs_the_dags_locally():
    from airflow_gitops.dev import localpg

    localpg.find_bindir()  # fails loudly, with the install hint, if PostgreSQL 15 is missing
    port = free_port()
    home = Path(tempfile.mkdtemp(prefix="airflow-gitops-dev-test-"))
    pg_dir = Path(tempfile.mkdtemp(prefix="airflow-gitops-dev-pg-"))  # under /tmp: `postgres` can reach it
    log_path = home / "dev.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    argv = [sys.executable, "-m", "airflow_gitops", "dev", "--port", str(port), "--home", str(home)]
    argv += ["--pg-dir", str(pg_dir), "--password", PASSWORD]
    with open(log_path, "w") as log:
        dev = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def output() -> str:
        return log_path.read_text(errors="replace")

    try:
        _wait("`airflow-gitops dev` to say Airflow is up", lambda: dev.poll() is not None or "Airflow is up" in output(), 420)
        assert dev.poll() is None, f"dev exited early:\n{output()}"
        assert f"password: {PASSWORD}" in output()

        api = Api(port)
        api.login("admin", PASSWORD)

        # The DAG list, as the UI at http://localhost:PORT shows it.
        def listed():
            dags = api.call("GET", "api/v2/dags?limit=100")["dags"]
            return {d["dag_id"] for d in dags} if {d["dag_id"] for d in dags} >= EXPECTED_DAGS else None

        assert _wait("the dag-processor to list every DAG", listed, 240) == EXPECTED_DAGS
        assert api.call("GET", "api/v2/importErrors")["total_entries"] == 0

        # user_processing through the API, with its consumer unpaused to see the asset trigger.
        api.unpause("consumer_users_guarded")
        api.unpause("user_processing")  # also lets the scheduler create the latest @daily run
        run_id = api.trigger("user_processing")
        run = _wait(
            "user_processing to finish",
            lambda: next((r for r in api.runs("user_processing") if r["dag_run_id"] == run_id and r["end_date"]), None),
            300,
        )
        assert run["state"] == "success", api.task_states("user_processing", run_id)
        assert set(api.task_states("user_processing", run_id).values()) == {"success"}
        _wait("every user_processing run to finish", lambda: _all_finished(api.runs("user_processing")), 300)

        # The row is in the dev data DB, once, whatever the number of runs.
        pg = localpg.status(pg_dir)
        import psycopg

        with psycopg.connect(pg.url_for("airflow_data")) as conn:
            assert conn.execute("SELECT email FROM users").fetchall() == [("ingrid.halvorsen@example.com",)]

        # Limit 1 with the real scheduler: every users event became (part of) a consumer run; a run
        # acts only if one of its events says the data changed.
        users_asset = next(a for a in api.call("GET", "api/v2/assets?name_pattern=users")["assets"] if a["name"] == "users")
        events = api.call("GET", f"api/v2/assets/events?asset_id={users_asset['id']}&limit=100")["asset_events"]
        assert sorted(e["extra"]["changed"] for e in events) == [False] * (len(events) - 1) + [True]

        def consumer_runs_settled():
            runs = api.runs("consumer_users_guarded")
            if not _all_finished(runs):
                return None
            consumed = {r["dag_run_id"]: api.consumed_events("consumer_users_guarded", r["dag_run_id"]) for r in runs}
            return consumed if sum(len(v) for v in consumed.values()) >= len(events) else None

        consumed = _wait("the consumer runs of every users event", consumer_runs_settled, 240)
        for consumer_run_id, run_events in consumed.items():
            states = api.task_states("consumer_users_guarded", consumer_run_id)
            acts = any(e["extra"].get("changed") for e in run_events)
            assert states == {"users_really_changed": "success", "report_users": "success" if acts else "skipped"}

        # Limit 4 over real HTTP: producer_remote_partner posts to this instance's REST API
        # (connection airflow_remote), which triggers consumer_partner_users.
        api.unpause("consumer_partner_users")
        api.unpause("producer_remote_partner")
        api.trigger("producer_remote_partner")
        _wait("producer_remote_partner to finish", lambda: _all_finished(api.runs("producer_remote_partner")), 240)
        assert [r["state"] for r in api.runs("producer_remote_partner")] == ["success"]
        _wait("consumer_partner_users to run", lambda: _all_finished(api.runs("consumer_partner_users")), 240)
        (partner_run,) = api.runs("consumer_partner_users")
        assert partner_run["state"] == "success" and partner_run["run_type"] == "asset_triggered"
        (partner_event,) = api.consumed_events("consumer_partner_users", partner_run["dag_run_id"])
        assert partner_event["extra"]["from_rest_api"] is True and partner_event["extra"]["row_count"] == 42

        # Ctrl+C / SIGTERM stops every component and the PostgreSQL.
        os.killpg(dev.pid, signal.SIGTERM)
        assert dev.wait(timeout=120) == 0, output()
        assert not localpg.is_running(pg_dir)
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5)
    finally:
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGKILL)
            dev.wait(timeout=30)
            subprocess.run(["pkill", "-KILL", "-s", str(dev.pid)], check=False)  # its components, same session
        localpg.stop(pg_dir, purge=True)
        shutil.rmtree(home, ignore_errors=True)
