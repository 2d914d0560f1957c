"""The DAG side (the optional `dags` extra): local PostgreSQL, DAG parse times, the extra's presence."""
