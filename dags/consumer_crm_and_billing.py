"""consumer_crm_and_billing: wait for *both* producer_crm and producer_billing.

The course's dataset limit 3: when two producers update the data a consumer needs, the consumer fired
as soon as the first one finished. Airflow 3 gives each producer its own asset and schedules the
consumer on an asset *expression*: ``CRM_USERS & BILLING_USERS`` waits until both have a new event
since the consumer's last run (``|`` would mean "either").
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import dag, task
from include.assets import BILLING_USERS, CRM_USERS
from include.defaults import DEFAULT_ARGS


@dag(
    dag_id="consumer_crm_and_billing",
    schedule=CRM_USERS & BILLING_USERS,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    # Asset-triggered: nothing to catch up (runs come from asset events, not from past intervals).
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["course", "assets", "limit-3-and"],
    doc_md=__doc__,
)
def consumer_crm_and_billing():
    @task
    def merge_users(triggering_asset_events=None) -> dict:
        counts = {
            asset.name: sum(e.extra.get("row_count", 0) for e in events)
            for asset, events in (triggering_asset_events or {}).items()
        }
        print(f"merging {counts}")
        return counts

    merge_users()


consumer_crm_and_billing()
