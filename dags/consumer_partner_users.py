"""consumer_partner_users: act on ``partner_users`` events that another Airflow posts to this one.

The receiving side of the course's dataset limit 4 (producer_remote_partner is the sending side). It is
scheduled on ``partner_users``, which nothing on this instance produces: its events only ever come
through the REST API, ``POST /api/v2/assets/events``, and trigger it as a local update would.

It ships with every instance because every instance runs the same git-synced ``dags/``, and an asset
exists on an instance only while a parsed DAG there references it: without this DAG the sender's
asset lookup would find nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import dag, task
from include.assets import PARTNER_USERS, changed_events
from include.defaults import DEFAULT_ARGS


@dag(
    dag_id="consumer_partner_users",
    schedule=PARTNER_USERS,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    # Asset-triggered (by REST API events): nothing to catch up.
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["course", "assets", "limit-4-rest-api"],
    doc_md=__doc__,
)
def consumer_partner_users():
    @task
    def ingest_partner_users(triggering_asset_events=None) -> int:
        changed = changed_events(triggering_asset_events)
        for event in changed:
            print(f"partner update: {event.extra}")
        return len(changed)

    ingest_partner_users()


consumer_partner_users()
