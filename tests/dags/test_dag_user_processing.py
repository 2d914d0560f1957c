"""user_processing end to end: dag.test() against a real PostgreSQL 15 and a real HTTP server on
127.0.0.1 serving the recorded randomuser.me payload; connections come from AIRFLOW_CONN_* only.

Run twice: the second run must succeed and must not duplicate the row (email primary key + ON CONFLICT
DO NOTHING), and its asset event must say that nothing changed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import psycopg
import pytest
from airflow_gitops.dev.stand_ins import RECORDED_PAYLOAD

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
if str(DAGS_DIR) not in sys.path:
    sys.path.append(str(DAGS_DIR))

from include.users import COLUMNS, flatten_user  # noqa: E402

EXPECTED_ROW = {
    "email": "ingrid.halvorsen@example.com",
    "firstname": "Ingrid",
    "lastname": "Halvorsen",
    "country": "Norway",
    "username": "purplecat482",
    "password": "sunshine",
}


def test_flatten_user_takes_the_courses_fields_from_a_randomuser_payload():
    assert flatten_user(json.loads(RECORDED_PAYLOAD.read_text())) == EXPECTED_ROW


def test_flatten_user_refuses_an_empty_answer():
    with pytest.raises(ValueError, match="without any user"):
        flatten_user({"results": [], "info": {}})


def _rows(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT {', '.join(COLUMNS)} FROM users ORDER BY email").fetchall()


def test_user_processing_end_to_end_twice(run_dag, pg_url, user_api):
    from airflow_gitops.dev.stand_ins import http_connection, postgres_connection

    run_dag.connections = {
        "postgres": postgres_connection(pg_url),
        "user_api": http_connection("127.0.0.1", user_api.port),
    }

    first = run_dag("user_processing")
    assert first["state"] == "success", first["tasks"]
    assert set(first["tasks"].values()) == {"success"}, first["tasks"]
    assert _rows(pg_url) == [tuple(EXPECTED_ROW[c] for c in COLUMNS)]
    assert user_api.requests >= 2  # the sensor's poke and the extract
    assert [e["extra"] for e in first["asset_events"]] == [{"row_count": 1, "changed": True}]
    assert first["asset_events"][0]["asset"] == "users"

    second = run_dag("user_processing")
    assert second["state"] == "success", second["tasks"]
    assert _rows(pg_url) == [tuple(EXPECTED_ROW[c] for c in COLUMNS)], "a rerun must not duplicate the user"
    assert [e["extra"] for e in second["asset_events"]] == [{"row_count": 0, "changed": False}]
