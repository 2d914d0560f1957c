"""producer_remote_partner: publish a ``partner_users`` event on *another* Airflow, through its REST API.

The course's dataset limit 4: datasets only worked inside one Airflow instance. In Airflow 3 any
instance (or any system) creates an asset event on another one through the public REST API,
``POST /api/v2/assets/events``, and the asset's consumers there run as for a local update.

This DAG runs on the sending instance. It publishes to the Airflow behind the HTTP connection
``airflow_remote``: its host is the receiving API server's base URL, its login/password a user allowed
to create asset events there. The requests themselves are built by ``include.airflow_rest`` (token,
asset id lookup, event) and sent through the connection. consumer_partner_users is the receiving side.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import dag, task
from include.assets import PARTNER_USERS
from include.defaults import AIRFLOW_REMOTE_CONN_ID, DEFAULT_ARGS


def _connection_auth_is_a_token(*_args):
    # The connection's login/password are exchanged for a JWT (POST /auth/token) and sent as a Bearer
    # token; without this HttpHook would also send them as Basic auth, which would replace the Bearer.
    return None


@dag(
    dag_id="producer_remote_partner",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    # Triggered on demand (schedule=None): no intervals, nothing to catch up.
    catchup=False,
    # The partner team owns the link to the other instance. A third try rides out a rolling restart
    # of the remote API server (its pods go one by one, about a minute each).
    default_args=DEFAULT_ARGS | {"owner": "partner-team", "retries": 3},
    tags=["course", "assets", "limit-4-rest-api"],
    params={"row_count": 42},
    doc_md=__doc__,
)
def producer_remote_partner():
    @task
    def publish_partner_users(params=None, dag_run=None) -> dict:
        from airflow.providers.http.hooks.http import HttpHook
        from airflow.sdk import BaseHook
        from include.airflow_rest import (
            access_token,
            asset_event_request,
            asset_id_from_lookup,
            asset_lookup_request,
            token_request,
        )

        def send(request):
            hook = HttpHook(method=request.method, http_conn_id=AIRFLOW_REMOTE_CONN_ID, auth_type=_connection_auth_is_a_token)
            kwargs = {"json": dict(request.json)} if request.json is not None else {}
            data = dict(request.params) if request.params else None
            return hook.run(request.path, data=data, headers=dict(request.headers), **kwargs).json()

        conn = BaseHook.get_connection(AIRFLOW_REMOTE_CONN_ID)
        token = access_token(send(token_request(conn.login, conn.password)))
        asset_id = asset_id_from_lookup(send(asset_lookup_request(PARTNER_USERS.name, token)), PARTNER_USERS.name)
        row_count = int(params["row_count"])
        extra = {"row_count": row_count, "changed": row_count > 0, "source_run_id": dag_run.run_id}
        event = send(asset_event_request(asset_id, extra, token))
        print(f"asset event {event.get('id')} created on the remote instance for asset {asset_id}")
        return {"asset_id": asset_id, "event_id": event.get("id")}

    publish_partner_users()


producer_remote_partner()
