"""The real PostgreSQL of the DAG tests (CI's `$AIRFLOW_GITOPS_TEST_DATABASE_URL`, else one started here)."""

from tests.dags.conftest import pg_server_url, pg_url  # noqa: F401  (fixtures)
