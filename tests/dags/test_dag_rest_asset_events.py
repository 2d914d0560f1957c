"""Limit 4, cross-instance assets: the requests dags/include/airflow_rest.py builds for
``POST /api/v2/assets/events`` (and the token and asset-id look-up before it).

Nothing here opens a socket: the builders are checked as data, against the request models of
Airflow 3.3.2's own API, and then sent to Airflow's real API application in process (FastAPI's
TestClient), which must accept them, record the event and queue the consumer's run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
if str(DAGS_DIR) not in sys.path:
    sys.path.append(str(DAGS_DIR))

from include import airflow_rest  # noqa: E402


def test_token_request():
    request = airflow_rest.token_request("partner-bot", "s3cret")
    assert request.method == "POST"
    assert request.url("http://airflow-remote:8080") == "http://airflow-remote:8080/auth/token"
    assert request.json == {"username": "partner-bot", "password": "s3cret"}
    assert request.headers["Content-Type"] == "application/json"
    assert "Authorization" not in request.headers
    assert airflow_rest.access_token({"access_token": "jwt-abc"}) == "jwt-abc"
    with pytest.raises(ValueError):
        airflow_rest.token_request("partner-bot", "")
    with pytest.raises(ValueError):
        airflow_rest.access_token({"detail": "Invalid credentials"})


def test_asset_lookup_request_and_exact_name_match():
    request = airflow_rest.asset_lookup_request("partner_users", "jwt-abc")
    assert request.method == "GET"
    assert request.url("https://airflow.example.org/airflow/") == (
        "https://airflow.example.org/airflow/api/v2/assets?name_pattern=partner_users&limit=100"
    )
    assert request.headers["Authorization"] == "Bearer jwt-abc"
    # name_pattern is a pattern: similar names come back too, only the exact one counts.
    answer = {"assets": [{"id": 7, "name": "partner_users_v2"}, {"id": 3, "name": "partner_users"}]}
    assert airflow_rest.asset_id_from_lookup(answer, "partner_users") == 3
    with pytest.raises(LookupError, match="exactly one"):
        airflow_rest.asset_id_from_lookup({"assets": []}, "partner_users")


def test_asset_event_request():
    request = airflow_rest.asset_event_request(3, {"row_count": 42, "changed": True}, "jwt-abc")
    assert request.method == "POST"
    assert request.url("http://airflow-remote:8080") == "http://airflow-remote:8080/api/v2/assets/events"
    assert request.json == {"asset_id": 3, "extra": {"row_count": 42, "changed": True}}
    assert request.headers == {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "Authorization": "Bearer jwt-abc",
    }
    json.dumps(request.json)  # serialisable as is
    with pytest.raises(TypeError):
        airflow_rest.asset_event_request("3", {}, "jwt-abc")


def test_bodies_match_the_api_models_of_airflow_3_3():
    from airflow.api_fastapi.auth.managers.simple.datamodels.login import LoginBody
    from airflow.api_fastapi.core_api.datamodels.assets import CreateAssetEventsBody

    event = airflow_rest.asset_event_request(3, {"row_count": 42}, "jwt")
    parsed = CreateAssetEventsBody.model_validate(event.json)  # extra="forbid": no unknown field
    assert parsed.asset_id == 3 and parsed.extra["row_count"] == 42
    LoginBody.model_validate(airflow_rest.token_request("u", "p").json)


def test_real_api_accepts_the_requests_and_queues_the_consumer(run_dag):
    # The receiving instance: Airflow 3.3.2's API app with the simple auth manager, its DAGs in the DB.
    (run_dag.home / "passwords.json").write_text(json.dumps({"partner-bot": "s3cret"}))
    result = run_dag.helper(
        "rest-asset-event",
        "partner_users",
        json.dumps({"row_count": 42, "changed": True}),
        env={
            "AIRFLOW__CORE__AUTH_MANAGER": ("airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "partner-bot:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(run_dag.home / "passwords.json"),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "REST_TEST_LOGIN": "partner-bot:s3cret",
        },
    )
    assert [r["url"].removeprefix("http://testserver/") for r in result["sent"]] == [
        "auth/token",
        "api/v2/assets?name_pattern=partner_users&limit=100",
        "api/v2/assets/events",
    ]
    (event,) = result["events"]
    assert event["extra"] == {"row_count": 42, "changed": True, "from_rest_api": True}
    assert result["response"]["asset_id"] == result["asset_id"]
    assert result["queued_dag_runs"] == ["consumer_partner_users"]
