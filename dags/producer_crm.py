"""producer_crm: the CRM export, one of the two producers consumer_crm_and_billing waits for.

It updates the ``crm_users`` asset once a day. consumer_crm_and_billing (limit 3, the ``&`` of two
assets) starts only when ``billing_users`` has a new event too. The export task is shared with
producer_billing (``include.exports.export_users``) and says in its event whether the rows changed.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import dag
from include.assets import CRM_USERS
from include.defaults import DEFAULT_ARGS
from include.exports import export_users


@dag(
    dag_id="producer_crm",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    # No catch-up: the export is of "today's" CRM state; there is nothing to re-export for past days.
    catchup=False,
    # The CRM export belongs to the CRM team: its failures are theirs to see.
    default_args=DEFAULT_ARGS | {"owner": "crm-team"},
    tags=["course", "assets", "limit-3-and"],
    doc_md=__doc__,
)
def producer_crm():
    export_users(CRM_USERS, "crm")


producer_crm()
