"""The Assets (Airflow 3's datasets) the producer/consumer DAGs share, and the consumer-side guard.

One definition per asset, imported by producers and consumers alike: an asset is identified by its
name and URI, and a typo in one of two copies would silently create a second asset nobody produces.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from airflow.sdk import Asset

# Produced by user_processing.store_user (with metadata: rows inserted, changed flag).
USERS = Asset(name="users", group="users")

# Limit 3: two producers, one consumer that needs both (AND, not "whichever finishes first").
CRM_USERS = Asset(name="crm_users", group="users")
BILLING_USERS = Asset(name="billing_users", group="users")

# Limit 4: produced on *another* Airflow instance, which posts its events to our REST API.
PARTNER_USERS = Asset(name="partner_users", group="users")


def _extra(event: Any) -> Mapping[str, Any]:
    """An event's metadata, whether it is a task-context event, an ORM row or a REST API dict."""
    if isinstance(event, Mapping):
        return event.get("extra") or {}
    return getattr(event, "extra", None) or {}


def is_real_change(event: Any) -> bool:
    """Whether one asset event says its data really changed.

    Producers in this repository attach ``changed`` (bool) and ``row_count`` (int) to every event. An
    event saying ``changed: false`` or ``row_count: 0`` is a rerun or a no-op: not worth acting on.
    An event without that metadata (created from the UI, or by a producer we don't control) cannot
    say, so it counts as a change: better one useless run than a missed update.
    """
    extra = _extra(event)
    if extra.get("changed") is False:
        return False
    row_count = extra.get("row_count")
    return not (isinstance(row_count, int) and row_count <= 0)


def changed_events(triggering_asset_events: Mapping[Any, Sequence[Any]] | Iterable[Any] | None) -> list[Any]:
    """The events among a run's ``triggering_asset_events`` that report a real change.

    Accepts the task context's mapping (asset -> events) or a plain iterable of events. An empty result
    means "nothing to do": a manual or time-based run (no events), or only unchanged/empty updates.
    """
    if not triggering_asset_events:
        return []
    if isinstance(triggering_asset_events, Mapping):
        events: list[Any] = [e for evs in triggering_asset_events.values() for e in evs]
    else:
        events = list(triggering_asset_events)
    return [event for event in events if is_real_change(event)]
