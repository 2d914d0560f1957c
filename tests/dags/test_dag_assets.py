"""The producer/consumer DAGs and how they answer the course's four dataset limits in Airflow 3.

1. Metadata: a producer's run records an asset event carrying its metadata (dag.test() + the
   asset_event table); the consumer's guard acts on real changes and skips empty/unchanged events,
   both on events read back from Airflow's DB and on a real consumer run without events.
2. AssetOrTimeSchedule: the consumer's timetable is the class that combines cron and assets.
3. AND: after one producer the scheduler does not start the consumer, after both it does
   (DagModel.dags_needing_dagruns, the scheduler's own decision, over real events).
4. REST API: see test_dag_rest_asset_events.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
if str(DAGS_DIR) not in sys.path:
    sys.path.append(str(DAGS_DIR))

from include.assets import BILLING_USERS, CRM_USERS, PARTNER_USERS, USERS, changed_events  # noqa: E402


def _event(**extra):
    """Shaped like the task context's AssetEventDagRunReferenceResult: only `.extra` is read."""
    return SimpleNamespace(extra=extra)


# --- limit 1: metadata on the event, a guard on the consumer ---------------------------------------


def test_producer_run_records_an_asset_event_with_its_metadata(run_dag):
    first = run_dag("producer_crm", logical_date="2026-03-01T00:00:00+00:00")
    assert first["state"] == "success"
    (event,) = first["asset_events"]
    assert event["asset"] == CRM_USERS.name and event["task_id"] == "export_crm_users"
    assert event["extra"]["row_count"] == 3
    assert event["extra"]["changed"] is True
    assert event["extra"]["source"] == "crm"

    # Same logical date again: same rows, same fingerprint; the producer says nothing changed
    # (it read its previous event through inlet_events).
    again = run_dag("producer_crm", logical_date="2026-03-01T00:00:00+00:00")
    (event_again,) = again["asset_events"]
    assert event_again["extra"]["fingerprint"] == event["extra"]["fingerprint"]
    assert event_again["extra"]["changed"] is False

    # The guard, fed the events exactly as Airflow stored them.
    assert changed_events([event]) == [event]
    assert changed_events([event_again]) == []


def test_guard_acts_on_real_changes():
    real = _event(row_count=1, changed=True)
    assert changed_events({USERS: [real]}) == [real]
    # Events without metadata (UI button, a producer we don't control) count as changes.
    unknown = _event()
    assert changed_events({USERS: [unknown]}) == [unknown]
    # One real change among no-ops is enough, and only it is returned.
    assert changed_events({USERS: [_event(row_count=0, changed=False), real]}) == [real]


@pytest.mark.parametrize(
    "events",
    [
        None,  # a manual run: the context has no triggering events
        {},
        {USERS: []},
        {USERS: [_event(row_count=0, changed=False)]},  # user_processing rerun: nothing inserted
        {USERS: [_event(changed=False)]},
        {USERS: [_event(row_count=0)]},
    ],
)
def test_guard_skips_empty_and_unchanged_events(events):
    assert changed_events(events) == []


def test_guarded_consumer_without_events_skips_its_work(run_dag):
    # A real run with no triggering event (dag.test() is a manual run): the short-circuit guard
    # returns False and report_users is skipped; nothing touches PostgreSQL (no connection is set).
    result = run_dag("consumer_users_guarded")
    assert result["state"] == "success"
    assert result["tasks"] == {"users_really_changed": "success", "report_users": "skipped"}


# --- limit 2: cron OR assets -----------------------------------------------------------------------


def test_or_time_consumer_combines_a_cron_with_the_asset(dagbag):
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    timetable = dagbag.dags["consumer_users_or_daily"].timetable
    assert isinstance(timetable, AssetOrTimeSchedule)
    assert isinstance(timetable.timetable, CronTriggerTimetable)
    assert timetable.timetable.expression == "0 6 * * *"
    assert timetable.asset_condition == USERS


# --- limit 3: wait for both producers --------------------------------------------------------------


def test_all_of_consumer_is_scheduled_on_an_and_expression(dagbag):
    from airflow.sdk import AssetAll

    condition = dagbag.dags["consumer_crm_and_billing"].timetable.asset_condition
    assert isinstance(condition, AssetAll)
    assert set(condition.objects) == {CRM_USERS, BILLING_USERS}


def test_scheduler_waits_for_both_producers(run_dag):
    # Consumers must be unpaused for their asset events to be queued, as in a real deployment.
    result = run_dag.helper(
        "sequence",
        "producer_crm",
        "producer_billing",
        env={"AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False"},
    )
    after_crm, after_billing = result["steps"]
    assert after_crm["state"] == after_billing["state"] == "success"
    assert "consumer_crm_and_billing" not in after_crm["asset_triggered_ready"]
    assert "consumer_crm_and_billing" in after_billing["asset_triggered_ready"]


# --- every consumer is scheduled on the assets its producers update ---------------------------------


def test_producers_declare_the_assets_consumers_wait_for(dagbag):
    outlets = {
        (dag.dag_id, task.task_id): set(task.outlets) for dag in dagbag.dags.values() for task in dag.tasks if task.outlets
    }
    assert outlets[("user_processing", "store_user")] == {USERS}
    assert outlets[("producer_crm", "export_crm_users")] == {CRM_USERS}
    assert outlets[("producer_billing", "export_billing_users")] == {BILLING_USERS}
    assert dagbag.dags["consumer_users_guarded"].timetable.asset_condition == USERS
    # Nothing here produces partner_users: its events only come through the REST API (limit 4).
    assert not any(PARTNER_USERS in o for o in outlets.values())
    assert dagbag.dags["consumer_partner_users"].timetable.asset_condition == PARTNER_USERS
