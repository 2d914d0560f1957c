"""producer_crm, producer_billing -> consumer_crm_and_billing: wait for *both* producers.

The course's dataset limit 3: when two producers update the data a consumer needs, the consumer fired
as soon as the first one finished. Airflow 3 gives each producer its own asset and schedules the
consumer on an asset *expression*: ``CRM_USERS & BILLING_USERS`` waits until both have a new event
since the consumer's last run (``|`` would mean "either").

The producers stand for two exports (no external system here: the rows are derived from the run's
logical date). Each one also shows the producer side of limit 1: it compares a fingerprint of its
data with the one in the asset's previous event (``inlet_events``) and says ``changed: false`` when
a rerun exported the same rows.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import Asset, Metadata, dag, task
from include.assets import BILLING_USERS, CRM_USERS
from include.defaults import DEFAULT_ARGS

START = datetime(2026, 1, 1, tzinfo=UTC)


def _export_task(asset: Asset, source: str):
    """A task that 'exports' rows for SOURCE and records the asset event with its metadata."""

    @task(task_id=f"export_{source}_users", inlets=[asset], outlets=[asset])
    def export(logical_date=None, inlet_events=None):
        import hashlib
        import json

        day = (logical_date or datetime.now(UTC)).date().isoformat()
        rows = [{"source": source, "user": f"{source}-{day}-{i}"} for i in range(3)]
        fingerprint = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16]
        previous = None
        try:
            events = inlet_events[asset] if inlet_events is not None else []
            previous = events[-1].extra.get("fingerprint") if events else None
        except Exception as exc:  # the previous event is an optimisation; never fail the export on it
            print(f"could not read the previous {asset.name} event ({exc}); assuming a change")
        changed = fingerprint != previous
        print(f"{source}: {len(rows)} rows, fingerprint {fingerprint}, changed={changed}")
        yield Metadata(asset, {"row_count": len(rows), "changed": changed, "fingerprint": fingerprint, "source": source})
        return len(rows)

    return export()


@dag(
    dag_id="producer_crm",
    schedule="@daily",
    start_date=START,
    # No catch-up: the export is of "today's" CRM state; there is nothing to re-export for past days.
    catchup=False,
    # The CRM export belongs to the CRM team: its failures are theirs to see.
    default_args=DEFAULT_ARGS | {"owner": "crm-team"},
    tags=["course", "assets", "limit-3-and"],
    doc_md=__doc__,
)
def producer_crm():
    _export_task(CRM_USERS, "crm")


@dag(
    dag_id="producer_billing",
    schedule="@daily",
    start_date=START,
    # No catch-up, as producer_crm: each run exports the current state.
    catchup=False,
    # The billing export belongs to the billing team.
    default_args=DEFAULT_ARGS | {"owner": "billing-team"},
    tags=["course", "assets", "limit-3-and"],
    doc_md=__doc__,
)
def producer_billing():
    _export_task(BILLING_USERS, "billing")


@dag(
    dag_id="consumer_crm_and_billing",
    schedule=CRM_USERS & BILLING_USERS,
    start_date=START,
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


producer_crm()
producer_billing()
consumer_crm_and_billing()
