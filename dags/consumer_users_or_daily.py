"""consumer_users_or_daily: run when `users` is updated *or* every day at 06:00 UTC.

The course's dataset limit 2: a DAG had either a cron schedule or a dataset schedule, never both.
Airflow 3's ``AssetOrTimeSchedule`` combines a timetable with an asset condition: the summary is fresh
right after each update, and still produced at 06:00 on days without any update.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task
from include.assets import USERS
from include.defaults import DEFAULT_ARGS, POSTGRES_CONN_ID


@dag(
    dag_id="consumer_users_or_daily",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 6 * * *", timezone="UTC"), assets=USERS),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    # No catch-up: the time part would otherwise queue one run per 06:00 missed since start_date,
    # each summarising today's table under a past date. Only the latest summary matters.
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["course", "assets", "limit-2-asset-or-time"],
    doc_md=__doc__,
)
def consumer_users_or_daily():
    @task
    def summarize_users(dag_run=None, triggering_asset_events=None) -> dict:
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        reason = "asset update" if triggering_asset_events else "daily schedule"
        rows = PostgresHook(postgres_conn_id=POSTGRES_CONN_ID).get_records(
            "SELECT country, count(*) FROM users GROUP BY country ORDER BY 2 DESC, 1"
        )
        print(f"run {dag_run.run_id} ({reason}): {rows}")
        return {"reason": reason, "countries": {country: count for country, count in rows}}

    summarize_users()


consumer_users_or_daily()
