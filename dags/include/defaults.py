"""What every DAG of this repository shares: its ``default_args`` and the ids of its connections.

Defined once here and imported by the DAG files, never copied into them (``tests/dags/test_dag_layout.py``
enforces it). A DAG that needs something else says only the difference, with a comment saying why:
``default_args=DEFAULT_ARGS | {"owner": "crm-team"}``.

Standard library only: every DAG file imports this module on every parse.
"""

from __future__ import annotations

from datetime import timedelta

# owner: shown in the UI and used to route failures; a team, never Airflow's default "airflow".
# retries: a task pod can be evicted or land on a node that is going away; two retries absorb that.
DEFAULT_ARGS = {
    "owner": "data-eng",
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
}

# Connection ids, never hosts: each environment defines them (AIRFLOW_CONN_* from the chart's values and
# Secrets in the clusters, local stand-ins in `make dev` and the tests).
POSTGRES_CONN_ID = "postgres"  # the data database the course's tables live in
USER_API_CONN_ID = "user_api"  # randomuser.me in the clusters, a stand-in on 127.0.0.1 locally
AIRFLOW_REMOTE_CONN_ID = "airflow_remote"  # another Airflow's API server, for cross-instance asset events
