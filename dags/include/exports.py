"""The export task of producer_crm and producer_billing, written once for both.

Each producer stands for an export from another system (no external system here: the rows are derived
from the run's logical date). The task also shows the producer side of the course's dataset limit 1: it
compares a fingerprint of its rows with the one in the asset's previous event (``inlet_events``) and says
``changed: false`` when a rerun exported the same rows, so consumers can skip.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import Asset, Metadata, task


def export_users(asset: Asset, source: str):
    """Add to the current DAG a task ``export_<source>_users`` that updates ASSET with its rows' metadata."""

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
