"""Operating a cluster, and the offline analysis the plans rest on: the rollback and downgrade plans and the Airflow
version change they read (analysed from Git alone), `eks up|down`, status and reconcile, the comparison with `flux
build`, push-to-live latencies. Beside checks/, not above it: neither imports the other (tests/structure)."""
