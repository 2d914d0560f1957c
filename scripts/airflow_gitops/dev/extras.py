"""The optional `dags` extra: Airflow and its providers, for the DAG side of the tool only.

`pip install .` gives every command that renders, validates or operates a cluster, with no Airflow and no
PostgreSQL. `dev` and the DAG parse times of `bench` run Airflow itself; without it they say what to install
(exit 2) instead of failing on an import.
"""

from __future__ import annotations

import importlib.util

INSTALL_DAGS = "pip install '.[dags]'"


def airflow_missing(command: str) -> str | None:
    """None when Airflow is importable here; otherwise the one-line message naming what to install."""
    if importlib.util.find_spec("airflow") is not None:
        return None
    return (f"airflow-gitops {command}: needs Apache Airflow, which is not installed in this environment: "
            f"run `{INSTALL_DAGS}` at the repository root (or `make setup`, which installs it with the test tools)")
