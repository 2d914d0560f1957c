"""user_processing: the course's first pipeline, for Airflow 3.3 and the KubernetesExecutor.

create_table >> is_api_available >> extract_user >> process_user >> store_user

* ``create_table`` creates the ``users`` table (SQLExecuteQueryOperator, connection ``postgres``).
* ``is_api_available`` waits for the user API (HttpSensor, connection ``user_api``, endpoint ``api/``).
* ``extract_user`` fetches one user (randomuser.me JSON), ``process_user`` flattens it to a row
  (firstname, lastname, country, username, password, email), ``store_user`` inserts it.

Differences from the course, because each task runs in its own pod under the KubernetesExecutor:

* No ``/tmp/processed_user.csv`` hand-over: a file written by one task's pod is gone when the next
  task's pod starts. The row travels as a small XCom instead (XComs live in the metadata DB).
* Reruns are safe: ``email`` is the primary key and the insert says ``ON CONFLICT (email) DO NOTHING``,
  so fetching the same user again neither duplicates the row nor fails.
* ``store_user`` updates the ``users`` asset and says in the event's metadata how many rows it really
  inserted; the guarded consumer (dags/consumer_users_guarded.py) skips when nothing changed.
* Hosts and passwords live in the connections (``AIRFLOW_CONN_POSTGRES``, ``AIRFLOW_CONN_USER_API`` or
  a secrets backend), never in this file.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.providers.http.sensors.http import HttpSensor
from airflow.sdk import Metadata, dag, task
from include.assets import USERS
from include.defaults import DEFAULT_ARGS, POSTGRES_CONN_ID, USER_API_CONN_ID
from include.users import CREATE_USERS_TABLE, api_is_up, flatten_user

USER_API_ENDPOINT = "api/"


@dag(
    dag_id="user_processing",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    # No catch-up: each run fetches "a random user now"; replaying past days would fetch today's
    # users under yesterday's dates, which means nothing. Backfill stays available on demand.
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["course", "postgres", "http", "assets"],
    doc_md=__doc__,
)
def user_processing():
    create_table = SQLExecuteQueryOperator(
        task_id="create_table",
        conn_id=POSTGRES_CONN_ID,
        sql=CREATE_USERS_TABLE,
    )

    # Poke mode with a short interval: the API is normally up at once, so the sensor's pod lives a few
    # seconds. For long waits use deferrable=True (the triggerer waits, no pod held).
    is_api_available = HttpSensor(
        task_id="is_api_available",
        http_conn_id=USER_API_CONN_ID,
        endpoint=USER_API_ENDPOINT,
        response_check=api_is_up,
        poke_interval=5,
        timeout=300,
        mode="poke",
    )

    @task
    def extract_user() -> dict:
        from airflow.providers.http.hooks.http import HttpHook

        response = HttpHook(method="GET", http_conn_id=USER_API_CONN_ID).run(USER_API_ENDPOINT)
        return response.json()

    @task
    def process_user(payload: dict) -> dict:
        return flatten_user(payload)

    @task(outlets=[USERS])
    def store_user(row: dict):
        from airflow.providers.postgres.hooks.postgres import PostgresHook
        from include.users import INSERT_USER, row_values

        hook = PostgresHook(postgres_conn_id=POSTGRES_CONN_ID)
        with hook.get_conn() as conn, conn.cursor() as cursor:
            cursor.execute(INSERT_USER, row_values(row))
            inserted = cursor.rowcount
            conn.commit()
        print(f"users: {inserted} row(s) inserted for {row['email']}")
        # The asset event says whether the data really changed (limit 1 of the course's datasets).
        yield Metadata(USERS, {"row_count": inserted, "changed": inserted > 0})
        return inserted

    payload = extract_user()
    create_table >> is_api_available >> payload
    store_user(process_user(payload))


user_processing()
