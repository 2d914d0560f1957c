"""producer_billing: the billing export, one of the two producers consumer_crm_and_billing waits for.

It updates the ``billing_users`` asset once a day. consumer_crm_and_billing (limit 3, the ``&`` of two
assets) starts only when ``crm_users`` has a new event too. The export task is shared with producer_crm
(``include.exports.export_users``) and says in its event whether the rows changed.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import dag
from include.assets import BILLING_USERS
from include.defaults import DEFAULT_ARGS
from include.exports import export_users


@dag(
    dag_id="producer_billing",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    # No catch-up, as producer_crm: each run exports the current state.
    catchup=False,
    # The billing export belongs to the billing team.
    default_args=DEFAULT_ARGS | {"owner": "billing-team"},
    tags=["course", "assets", "limit-3-and"],
    doc_md=__doc__,
)
def producer_billing():
    export_users(BILLING_USERS, "billing")


producer_billing()
