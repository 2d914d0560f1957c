"""Offline tooling for the Airflow GitOps repository: render, validate and diff what Flux applies."""
