"""Helper process of the DAG tests (used by conftest.DagRunner); prints one JSON line.

    python tests/dags/dag_test_runner.py dag DAG_ID [LOGICAL_DATE]
        dag.test() of one DAG of dags/: run state, task states, the asset events the run recorded.
    python tests/dags/dag_test_runner.py sequence DAG_ID [DAG_ID ...]
        dag.test() of each DAG in turn; after each, the asset-triggered DAGs the scheduler would now
        create a run for (DagModel.dags_needing_dagruns, the scheduler's own query).
    python tests/dags/dag_test_runner.py rest-asset-event ASSET_NAME EXTRA_JSON
        Sends the requests built by dags/include/airflow_rest.py to Airflow's real REST API app
        (in process, through FastAPI's TestClient: no socket, no network) and reports the asset event
        the API created and the consumer run it queued.

Runs in its own process, configured by the environment (AIRFLOW_HOME, SQLite metadata DB, connections
as AIRFLOW_CONN_*), so a test gets a clean Airflow and the real code runs: operators, hooks, XComs,
asset events, the API's validation and auth.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

MARKER = "DAG_TEST_RESULT="


def _bag():
    from airflow.dag_processing.dagbag import BundleDagBag

    dags_dir = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    bag = BundleDagBag(dag_folder=dags_dir, bundle_path=dags_dir, bundle_name="dags-folder")
    if bag.import_errors:
        raise SystemExit(f"import errors: {bag.import_errors}")
    return bag


def run_dag(dag_id: str, logical_date: str | None = None) -> dict:
    from airflow.models.asset import AssetEvent
    from airflow.sdk import timezone
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dag = _bag().dags[dag_id]
    kwargs = {"logical_date": timezone.parse(logical_date)} if logical_date else {}
    dag_run = dag.test(**kwargs)

    with create_session() as session:
        tasks = {ti.task_id: ti.state for ti in dag_run.get_task_instances(session=session)}
        events = session.scalars(
            select(AssetEvent)
            .where(AssetEvent.source_dag_id == dag_id, AssetEvent.source_run_id == dag_run.run_id)
            .order_by(AssetEvent.id)
        ).all()
        return {
            "dag_id": dag_id,
            "run_id": dag_run.run_id,
            "state": str(dag_run.state),
            "tasks": {task_id: (str(state) if state else None) for task_id, state in tasks.items()},
            "asset_events": [
                {
                    "asset": event.asset.name,
                    "uri": event.asset.uri,
                    "extra": event.extra,
                    "task_id": event.source_task_id,
                }
                for event in events
            ],
        }


def asset_triggered_ready() -> list[str]:
    """Asset-triggered DAGs whose schedule condition is met now, as the scheduler decides it."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        _, triggered_date_by_dag = DagModel.dags_needing_dagruns(session)
        session.rollback()  # release the row locks; decide only, create nothing
        return sorted(triggered_date_by_dag)


def sequence(*dag_ids: str) -> dict:
    steps = []
    for dag_id in dag_ids:
        step = run_dag(dag_id)
        step["asset_triggered_ready"] = asset_triggered_ready()
        steps.append(step)
    return {"steps": steps}


def rest_asset_event(asset_name: str, extra_json: str) -> dict:
    sys.path.append(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    from airflow.api_fastapi.app import create_app
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import sync_bag_to_db
    from airflow.models.asset import AssetDagRunQueue, AssetEvent
    from airflow.utils.session import create_session
    from fastapi.testclient import TestClient
    from include import airflow_rest
    from sqlalchemy import select

    # What the dag-processor does on the receiving instance: the DAGs (and so their assets) in the DB.
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(_bag(), "dags-folder", None)

    base = "http://testserver"
    sent = []
    with TestClient(create_app("core")) as client:

        def send(request):
            sent.append({"method": request.method, "url": request.url(base), "json": request.json})
            response = client.request(request.method, request.url(base), json=request.json, headers=dict(request.headers))
            if response.status_code >= 300:
                raise SystemExit(f"{request.method} {request.path}: {response.status_code} {response.text}")
            return response.json()

        user, password = os.environ["REST_TEST_LOGIN"].split(":", 1)
        token = airflow_rest.access_token(send(airflow_rest.token_request(user, password)))
        lookup = send(airflow_rest.asset_lookup_request(asset_name, token))
        asset_id = airflow_rest.asset_id_from_lookup(lookup, asset_name)
        created = send(airflow_rest.asset_event_request(asset_id, json.loads(extra_json), token))

    with create_session() as session:
        events = session.scalars(select(AssetEvent).where(AssetEvent.asset_id == asset_id)).all()
        queued = session.scalars(select(AssetDagRunQueue.target_dag_id).where(AssetDagRunQueue.asset_id == asset_id)).all()
        return {
            "asset_id": asset_id,
            "response": created,
            "events": [{"id": e.id, "extra": e.extra} for e in events],
            "queued_dag_runs": sorted(queued),
            "sent": sent,
        }


def main(argv: list[str]) -> int:
    mode, *args = argv
    modes = {"dag": run_dag, "sequence": sequence, "rest-asset-event": rest_asset_event}
    result = modes[mode](*args)
    print(MARKER + json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
