"""consumer_users_guarded: act on the `users` asset only when its data really changed.

The course's dataset limit 1: a consumer fires whenever a producer *task succeeds*, whether or not
the data changed. Airflow 3 lets the producer say what happened in the asset event's metadata
(user_processing.store_user yields ``Metadata(USERS, {"row_count": n, "changed": n > 0})``) and lets
the consumer read the events that triggered its run (``triggering_asset_events``).

``users_really_changed`` is a short-circuit guard: with no event (a manual run) or only events saying
nothing changed (a rerun that inserted no row), everything downstream is skipped instead of redoing
work. The decision itself is ``include.assets.changed_events``, a plain function the tests call.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import dag, task
from include.assets import USERS, changed_events
from include.defaults import DEFAULT_ARGS, POSTGRES_CONN_ID


@dag(
    dag_id="consumer_users_guarded",
    schedule=USERS,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    # Asset-triggered: runs are created by asset events, never for past intervals, so there is
    # nothing to catch up. Set explicitly so nobody wonders.
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["course", "assets", "limit-1-metadata"],
    doc_md=__doc__,
)
def consumer_users_guarded():
    @task.short_circuit
    def users_really_changed(triggering_asset_events=None) -> bool:
        changed = changed_events(triggering_asset_events)
        print(f"{len(changed)} triggering event(s) report a real change")
        return bool(changed)

    @task
    def report_users() -> int:
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        (count,) = PostgresHook(postgres_conn_id=POSTGRES_CONN_ID).get_first("SELECT count(*) FROM users")
        print(f"users now holds {count} row(s)")
        return count

    users_really_changed() >> report_users()


consumer_users_guarded()
