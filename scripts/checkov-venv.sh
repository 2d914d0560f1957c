#!/usr/bin/env bash
# checkov in its own venv (.venv-checkov): it pins many packages that must not enter the project's venv.
# Reinstalled only when the pinned version changes.
set -euo pipefail
cd "$(dirname "$0")/.."
CHECKOV_VERSION=3.3.30
VENV=${CHECKOV_VENV:-.venv-checkov}
PYTHON=${PYTHON:-python3}
stamp="$VENV/.checkov-$CHECKOV_VERSION"
if [ ! -f "$stamp" ]; then
  "$PYTHON" -m venv "$VENV"
  if [ "${CI:-}" = true ]; then
    # In CI every package by version and sha256 (.ci/requirements/checkov.txt, `make lock`).
    "$VENV/bin/pip" install --quiet --require-hashes -r .ci/requirements/bootstrap.txt >/dev/null
    "$VENV/bin/pip" install --quiet --require-hashes -r .ci/requirements/checkov.txt
  else
    "$VENV/bin/pip" install --quiet --upgrade pip >/dev/null
    "$VENV/bin/pip" install --quiet "checkov==$CHECKOV_VERSION"
  fi
  touch "$stamp"
fi
"$VENV/bin/checkov" --version
