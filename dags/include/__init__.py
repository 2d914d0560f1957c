"""Helpers shared by the DAG files; dags/.airflowignore lists this folder, so none is parsed as a DAG file.

Airflow puts the DAG bundle's root (this repository's ``dags/``) on ``sys.path``, so DAG files import
these as ``from include.users import ...`` both in the dag-processor and in the worker pods.
"""
