#!/usr/bin/env bash
# Rewrites the hash-locked requirements CI installs from (.ci/requirements/): `make lock` (needs PyPI).
# Each file pins every package, transitive ones included, by version and by the sha256 of each file PyPI serves for
# it; `pip install --require-hashes` (the Makefile when CI=true, scripts/checkov-venv.sh,
# scripts/airflow_gitops/dev/airflow_venvs.py) refuses anything else. Python 3.11 on x86_64 Linux: the CI container's.
set -euo pipefail
uv="${1:?usage: lock-requirements.sh UV}"
# Absolute before the cd below: `make lock` passes a path relative to the repository.
uv="$(cd "$(dirname "$uv")" && pwd)/$(basename "$uv")"
cd "$(dirname "$0")/../.ci/requirements"
compile() {  # OUTPUT INPUT... [uv options]
  local output="$1"
  shift
  "$uv" pip compile --quiet --generate-hashes --no-header --python-version 3.11 \
    --python-platform x86_64-unknown-linux-gnu --output-file "$output" "$@"
}
printf 'pip\nsetuptools>=68\n' | compile bootstrap.txt -
compile tool.txt ../../pyproject.toml
compile test.txt ../../pyproject.toml --extra test --extra dags
printf 'checkov==3.3.30\n' | compile checkov.txt -
# The Airflow releases of the downgrade tests, each with its image's FAB provider (scripts/airflow_gitops/dev/airflow_venvs.py
# packages(): the same list, one package a line).
for release in 3.3.2 3.2.2 3.1.8; do
  (cd ../.. && PYTHONPATH=scripts python3 -c "from airflow_gitops.dev.airflow_venvs import packages; \
print('\n'.join(packages('$release')))") | compile "airflow-$release.txt" -
done
